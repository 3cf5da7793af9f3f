import LoyaltyCore
import Testing

/// Rate 10 bp and no minimum basket, so 999 minor units give exactly 0.999 points.
@Suite("Rules: rounding modes")
struct RulesRoundingTests {
    func ruleSet(_ rounding: RoundingMode) throws -> RuleSet {
        try RulesFixture.ruleSet(earn: RulesFixture.earn(defaultRateBp: 10, rounding: rounding, minimumBasketMinor: 0))
    }

    func quote(_ prices: [Int64], _ rounding: RoundingMode, categories: [String]? = nil) throws -> Quote {
        let lines = prices.enumerated().map { index, price in
            RulesFixture.line("l\(index)", category: categories?[index] ?? "grocery", price: price)
        }
        return try RulesFixture.quote(lines, ruleSet: try ruleSet(rounding))
    }

    @Test("0.999 points floors to 0 in either mode")
    func almostOne() throws {
        #expect(try quote([999], .floorPerLine).totalAward == 0)
        #expect(try quote([999], .floorPerBasket).totalAward == 0)
        #expect(try quote([1_000], .floorPerLine).totalAward == 1)
    }

    @Test("per line: three lines of 0.999 earn 0; per basket: floor(2.997) = 2, to the first two lines on a tie")
    func threeAlmostOnes() throws {
        let perLine = try quote([999, 999, 999], .floorPerLine)
        #expect(perLine.lines.map(\.award) == [0, 0, 0])
        let perBasket = try quote([999, 999, 999], .floorPerBasket)
        #expect(perBasket.totalAward == 2)
        #expect(perBasket.lines.map(\.award) == [1, 1, 0])
        #expect(perBasket.lines[0].explanation.last?.detail.contains("left over") == true)
        #expect(perBasket.lines[2].explanation.last?.detail.contains("left over") == false)
        #expect(perBasket.explanation.contains { $0.rule == .rounding && $0.detail.contains("2.997") })
    }

    @Test("per basket: leftover units go to the largest remainders (0.3, 0.9, 0.8 → 0, 1, 1)")
    func largestRemainder() throws {
        let quote = try quote([300, 900, 800], .floorPerBasket)
        #expect(quote.totalAward == 2)
        #expect(quote.lines.map(\.award) == [0, 1, 1])
    }

    @Test("per basket: 1.5 + 2.5 + 0.4 → floors 1 + 2 + 0, floor(4.4) = 4, the one left over to the earlier 0.5")
    func ownFloorsFirst() throws {
        let quote = try quote([1_500, 2_500, 400], .floorPerBasket)
        #expect(quote.lines.map(\.award) == [2, 2, 0])
    }

    @Test("two lines of 0.6: per line 0, per basket 1")
    func modesDiffer() throws {
        #expect(try quote([600, 600], .floorPerLine).totalAward == 0)
        let perBasket = try quote([600, 600], .floorPerBasket)
        #expect(perBasket.lines.map(\.award) == [1, 0])
    }

    @Test("whole awards need no distribution")
    func exact() throws {
        #expect(try quote([1_000, 2_000], .floorPerBasket).lines.map(\.award) == [1, 2])
    }

    @Test("an excluded line never receives a leftover unit")
    func excludedGetsNothing() throws {
        let quote = try quote([600, 5_000, 600], .floorPerBasket, categories: ["grocery", "tobacco", "grocery"])
        #expect(quote.lines.map(\.award) == [1, 0, 0])
    }
}
