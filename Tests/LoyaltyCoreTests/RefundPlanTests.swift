import LoyaltyCore
import Testing

@Suite("Refund plans for returns at the till")
struct RefundPlanTests {
    /// 2 × 10.00 (20 points), 1 × 30.00 (60 points), 1 × 10.00 (0 points); 600 points redeemed.
    let lines = [
        CheckoutLine(lineID: "A", quantity: 2, paidMinor: 2_000, award: 20),
        CheckoutLine(lineID: "B", quantity: 1, paidMinor: 3_000, award: 60),
        CheckoutLine(lineID: "C", quantity: 1, paidMinor: 1_000, award: 0),
    ]

    @Test func oneLineBackTakesItsAwardAndPaysBackItsShareOfTheRedemption() throws {
        let plan = try RefundPlan.plan(lines: lines, returnedBefore: [:], returning: ["B": 1], redeemedPoints: 600,
                                       refundedBeforeMinor: 0)
        #expect(plan == RefundPlan(awardToReverse: 60, pointsToRestore: 300, refundedMinor: 3_000, returnedAfter: ["B": 1]))
    }

    @Test func aReturnOfEverythingInPiecesEqualsAFullReturn() throws {
        var returned: [String: Int64] = [:]
        var refunded: Int64 = 0
        var award: Int64 = 0
        var restored: Int64 = 0
        for piece: [String: Int64] in [["A": 1], ["C": 1, "A": 1], ["B": 1]] {
            let plan = try RefundPlan.plan(lines: lines, returnedBefore: returned, returning: piece, redeemedPoints: 599,
                                           refundedBeforeMinor: refunded)
            returned = plan.returnedAfter
            refunded += plan.refundedMinor
            award += plan.awardToReverse
            restored += plan.pointsToRestore
        }
        #expect(award == 80 && restored == 599 && refunded == 6_000)
        #expect(returned == ["A": 2, "B": 1, "C": 1])
    }

    @Test func badReturnsAreRefusedWithTheLineTheyAreAbout() {
        #expect(throws: ProportionalReversalError.line("A", .exceedsQuantity(total: 3, quantity: 2))) {
            try RefundPlan.plan(lines: lines, returnedBefore: [:], returning: ["A": 3], redeemedPoints: 0, refundedBeforeMinor: 0)
        }
        #expect(throws: ProportionalReversalError.line("A", .exceedsQuantity(total: 3, quantity: 2))) {
            try RefundPlan.plan(lines: lines, returnedBefore: ["A": 2], returning: ["A": 1], redeemedPoints: 0, refundedBeforeMinor: 0)
        }
        #expect(throws: ProportionalReversalError.unknownLine("Z")) {
            try RefundPlan.plan(lines: lines, returnedBefore: [:], returning: ["Z": 1], redeemedPoints: 0, refundedBeforeMinor: 0)
        }
        #expect(throws: ProportionalReversalError.line("B", .nonPositiveQuantity(field: "quantity", value: 0))) {
            try RefundPlan.plan(lines: lines, returnedBefore: [:], returning: ["B": 0], redeemedPoints: 0, refundedBeforeMinor: 0)
        }
    }

    @Test("random baskets returned in random pieces add up exactly (1,000 baskets)")
    func randomPiecesAddUp() throws {
        var generator = SplitMix64(seed: 2_026)
        for _ in 0..<1_000 {
            let count = Int.random(in: 1...6, using: &generator)
            let basket = (0..<count).map { index in
                CheckoutLine(lineID: "L\(index)", quantity: Int64.random(in: 1...20, using: &generator),
                             paidMinor: Int64.random(in: 0...100_000, using: &generator),
                             award: Int64.random(in: 0...5_000, using: &generator))
            }
            let redeemed = Int64.random(in: 0...50_000, using: &generator)
            var remaining = Dictionary(uniqueKeysWithValues: basket.map { ($0.lineID, $0.quantity) })
            var returned: [String: Int64] = [:]
            var totals = (award: Int64(0), restored: Int64(0), refunded: Int64(0))
            while let lineID = remaining.filter({ $0.value > 0 }).keys.sorted().randomElement(using: &generator) {
                let quantity = Int64.random(in: 1...remaining[lineID]!, using: &generator)
                let plan = try RefundPlan.plan(lines: basket, returnedBefore: returned, returning: [lineID: quantity],
                                               redeemedPoints: redeemed, refundedBeforeMinor: totals.refunded)
                #expect(plan.awardToReverse >= 0 && plan.pointsToRestore >= 0 && plan.refundedMinor >= 0)
                remaining[lineID]! -= quantity
                returned = plan.returnedAfter
                totals.award += plan.awardToReverse
                totals.restored += plan.pointsToRestore
                totals.refunded += plan.refundedMinor
            }
            let paid = basket.reduce(0) { $0 + $1.paidMinor }
            #expect(totals.award == basket.reduce(0) { $0 + $1.award })
            #expect(totals.refunded == paid)
            #expect(totals.restored == (paid == 0 ? 0 : redeemed))
        }
    }
}

