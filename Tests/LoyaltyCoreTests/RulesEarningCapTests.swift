import Foundation
import LoyaltyCore
import Testing

/// `earn.max_award_per_basket`: a basket earns at most the cap, the cut shared over its lines by largest remainder.
@Suite("Rules: the earning cap per basket")
struct RulesEarningCapTests {
    /// 1 point per 100 minor units, no minimum basket, floored per line, capped at `cap`.
    func ruleSet(cap: Int64?) throws -> RuleSet {
        var earn = RulesFixture.earn(defaultRateBp: 100, minimumBasketMinor: 0)
        earn.maxAwardPerBasket = cap
        return try RulesFixture.ruleSet(earn: earn)
    }

    func quote(_ prices: [Int64], cap: Int64?) throws -> Quote {
        let lines = prices.enumerated().map { RulesFixture.line("l\($0)", price: $1) }
        return try RulesFixture.quote(lines, ruleSet: try ruleSet(cap: cap))
    }

    @Test("at or below the cap nothing changes and no cap step is written")
    func belowCap() throws {
        let quote = try quote([1_000, 3_000], cap: 40)
        #expect(quote.totalAward == 40)
        #expect(quote.lines.map(\.award) == [10, 30])
        #expect(!quote.explanation.contains { $0.rule == .earningCap })
        #expect(!quote.lines.contains { $0.explanation.contains { $0.rule == .earningCap } })
    }

    @Test("46 points capped at 20: 10, 30, 6 become 4, 13, 3 (the unit left over to the largest remainder)")
    func cut() throws {
        let quote = try quote([1_000, 3_000, 600], cap: 20)
        // 10×20/46 = 4 r16, 30×20/46 = 13 r2, 6×20/46 = 2 r28: 19, and the last unit to the remainder 28.
        #expect(quote.lines.map(\.award) == [4, 13, 3])
        #expect(quote.totalAward == 20)
        let basket = try #require(quote.explanation.first { $0.rule == .earningCap })
        #expect(basket.detail.contains("would earn 46 points") && basket.detail.contains("cap of 20 per basket"))
        #expect(quote.lines[0].explanation.last?.detail == "capped with the basket: 10 points become 4")
        #expect(quote.lines[2].explanation.last?.detail == "capped with the basket: 6 points become 3")
    }

    @Test("the cut survives the compact form the ledger stores")
    func storedForm() throws {
        let quote = try quote([1_000, 3_000, 600], cap: 20)
        let stored = CompactExplanation.encode(quote)
        #expect(stored.contains("[\"cap\",46,20]") && stored.contains("[\"cl\",10,4]"))
        #expect(try CompactExplanation.decode(Data(stored.utf8), rulesVersion: nil) == quote)
    }

    @Test("random baskets: total is min(uncapped, cap), no line gains, lines add up (2,000 cases)")
    func properties() throws {
        var rng = RulesSeededGenerator(state: 11)
        for _ in 0..<2_000 {
            let prices = (0..<Int.random(in: 1...12, using: &rng)).map { _ in Int64.random(in: 0...20_000, using: &rng) }
            let cap = Int64.random(in: 1...500, using: &rng)
            let free = try quote(prices, cap: nil)
            let capped = try quote(prices, cap: cap)
            #expect(capped.totalAward == min(free.totalAward, cap), "\(prices) cap \(cap)")
            #expect(capped.lines.map(\.award).reduce(0, +) == capped.totalAward)
            #expect(zip(capped.lines, free.lines).allSatisfy { $0.award <= $1.award && $0.award >= 0 }, "\(prices) cap \(cap)")
            // Proportional: no line is more than one unit away from its exact share.
            if free.totalAward > cap {
                for (line, original) in zip(capped.lines, free.lines) {
                    let exact = Double(original.award) * Double(cap) / Double(free.totalAward)
                    #expect(abs(Double(line.award) - exact) < 1, "\(prices) cap \(cap)")
                }
            }
        }
    }

    @Test("a cap below 1 or above the limit is refused")
    func limits() throws {
        #expect(throws: (any Error).self) { try ruleSet(cap: 0) }
        #expect(throws: (any Error).self) { try ruleSet(cap: RuleLimits.maxAwardPerBasket + 1) }
        #expect(try ruleSet(cap: RuleLimits.maxAwardPerBasket).earn.maxAwardPerBasket == RuleLimits.maxAwardPerBasket)
    }
}
