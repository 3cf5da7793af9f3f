import LoyaltyCore
import Testing

@Suite("Proportional reversal of returns and refunds")
struct ReversalProportionalTests {
    typealias P = ProportionalReversal

    @Test func thirdsCarryTheRemainderToTheLastReturn() throws {
        let pieces = try (Int64(0)..<3).map {
            try P.pointsToReverse(linePoints: 100, lineQuantity: 3, returnedQuantityBefore: $0, returningNow: 1)
        }
        #expect(pieces == [33, 33, 34])
        #expect(try P.pointsToReverse(linePoints: 100, lineQuantity: 3, returnedQuantityBefore: 0, returningNow: 3)
            == 100)
        #expect(try P.pointsToReverse(linePoints: 100, lineQuantity: 3, returnedQuantityBefore: 1, returningNow: 0) == 0)
    }

    @Test("ten partial returns add up to the line's points (2,000 random lines)")
    func tenPartialReturnsAddUp() throws {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<2_000 {
            let points = Int64.random(in: 0...1_000_000, using: &generator)
            let quantity = Int64.random(in: 10...5_000, using: &generator)
            let cuts = (0..<9).map { _ in Int64.random(in: 0...quantity, using: &generator) }.sorted()
            let bounds = [0] + cuts + [quantity]
            var total: Int64 = 0
            for index in 0..<10 {
                let piece = try P.pointsToReverse(
                    linePoints: points, lineQuantity: quantity, returnedQuantityBefore: bounds[index],
                    returningNow: bounds[index + 1] - bounds[index])
                #expect(piece >= 0 && piece <= points)
                total += piece
            }
            #expect(total == points, "points \(points) quantity \(quantity) cuts \(cuts)")
        }
    }

    @Test("a full return takes back exactly the points, even at the extremes")
    func fullReturnEqualsPoints() throws {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<1_000 {
            let points = Int64.random(in: 0...Int64.max, using: &generator)
            let quantity = Int64.random(in: 1...Int64.max, using: &generator)
            #expect(try P.pointsToReverse(linePoints: points, lineQuantity: quantity, returnedQuantityBefore: 0,
                                          returningNow: quantity) == points)
            let half = quantity / 2
            let first = try P.pointsToReverse(linePoints: points, lineQuantity: quantity, returnedQuantityBefore: 0,
                                              returningNow: half)
            let second = try P.pointsToReverse(linePoints: points, lineQuantity: quantity,
                                               returnedQuantityBefore: half, returningNow: quantity - half)
            #expect(first + second == points)
        }
        #expect(try P.pointsToReverse(linePoints: .max, lineQuantity: .max, returnedQuantityBefore: 0,
                                      returningNow: .max - 1) == .max - 1)
    }

    @Test func refundsRestoreRedeemedPointsInProportionToMoney() throws {
        // 500 points paid part of a 12.99 basket; refunded in three parts.
        let parts: [Int64] = [433, 433, 433]
        var before: Int64 = 0
        var restored: [Int64] = []
        for part in parts {
            restored.append(try P.pointsToRestore(redeemedPoints: 500, basketTotalMinor: 1_299,
                                                  refundedMinorBefore: before, refundingNowMinor: part))
            before += part
        }
        #expect(restored == [166, 167, 167])
        #expect(restored.reduce(0, +) == 500)
        #expect(throws: ProportionalReversalError.exceedsQuantity(total: 1_300, quantity: 1_299)) {
            try P.pointsToRestore(redeemedPoints: 500, basketTotalMinor: 1_299, refundedMinorBefore: 1_299,
                                  refundingNowMinor: 1)
        }
        #expect(throws: ProportionalReversalError.nonPositiveQuantity(field: "basketTotalMinor", value: 0)) {
            try P.pointsToRestore(redeemedPoints: 500, basketTotalMinor: 0, refundedMinorBefore: 0,
                                  refundingNowMinor: 0)
        }
    }

    @Test func overReturnsAndBadValuesAreRefused() {
        #expect(throws: ProportionalReversalError.exceedsQuantity(total: 4, quantity: 3)) {
            try P.pointsToReverse(linePoints: 100, lineQuantity: 3, returnedQuantityBefore: 2, returningNow: 2)
        }
        #expect(throws: ProportionalReversalError.exceedsQuantity(total: .max, quantity: 3)) {
            try P.pointsToReverse(linePoints: 100, lineQuantity: 3, returnedQuantityBefore: 2, returningNow: .max)
        }
        #expect(throws: ProportionalReversalError.nonPositiveQuantity(field: "lineQuantity", value: 0)) {
            try P.pointsToReverse(linePoints: 100, lineQuantity: 0, returnedQuantityBefore: 0, returningNow: 0)
        }
        #expect(throws: ProportionalReversalError.negativeValue(field: "linePoints", value: -1)) {
            try P.pointsToReverse(linePoints: -1, lineQuantity: 3, returnedQuantityBefore: 0, returningNow: 1)
        }
        #expect(throws: ProportionalReversalError.negativeValue(field: "returnedQuantityBefore", value: -1)) {
            try P.pointsToReverse(linePoints: 1, lineQuantity: 3, returnedQuantityBefore: -1, returningNow: 1)
        }
        #expect(throws: ProportionalReversalError.negativeValue(field: "returningNow", value: -2)) {
            try P.pointsToReverse(linePoints: 1, lineQuantity: 3, returnedQuantityBefore: 0, returningNow: -2)
        }
    }

    @Test func basketReturnsPerLine() throws {
        let lines = [
            LineAward(lineID: "a", quantity: 3, points: 100),
            LineAward(lineID: "b", quantity: 1, points: 42),
            LineAward(lineID: "c", quantity: 7, points: 0),
        ]
        let first = try P.reversal(for: lines, returned: [:], returning: ["a": 1, "b": 1])
        #expect(first.total == 75 && first.perLine == ["a": 33, "b": 42])
        let second = try P.reversal(for: lines, returned: ["a": 1, "b": 1], returning: ["a": 2, "c": 7])
        #expect(second.total == 67 && second.perLine == ["a": 67, "c": 0])
        #expect(first.total + second.total == 142)
    }

    @Test func basketErrorsNameTheLine() {
        let lines = [LineAward(lineID: "a", quantity: 3, points: 100)]
        #expect(throws: ProportionalReversalError.unknownLine("z")) {
            try P.reversal(for: lines, returned: [:], returning: ["z": 1])
        }
        #expect(throws: ProportionalReversalError.unknownLine("y")) {
            try P.reversal(for: lines, returned: ["y": 1], returning: ["a": 1])
        }
        #expect(throws: ProportionalReversalError.duplicateLine("a")) {
            try P.reversal(for: lines + lines, returned: [:], returning: ["a": 1])
        }
        #expect(throws: ProportionalReversalError.line("a", .exceedsQuantity(total: 4, quantity: 3))) {
            try P.reversal(for: lines, returned: ["a": 2], returning: ["a": 2])
        }
        #expect(throws: ProportionalReversalError.overflow) {
            try P.reversal(for: [LineAward(lineID: "a", quantity: 1, points: .max),
                                 LineAward(lineID: "b", quantity: 1, points: 1)],
                           returned: [:], returning: ["a": 1, "b": 1])
        }
        #expect(ProportionalReversalError.line("a", .unknownLine("b")).description == "line a: line b is not in the "
            + "purchase: use the line ids of the original purchase")
    }
}
