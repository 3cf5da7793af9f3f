import LoyaltyCore
import Testing

/// Fixture: 1 point = 1 minor unit, at least 500 points, at most 50 % of the basket, tobacco not payable.
@Suite("Rules: redemption cap")
struct RulesRedemptionTests {
    func cap(_ lines: [BasketLine], balance: Int64, ruleSet: RuleSet? = nil) throws -> Int64 {
        try RulesFixture.quote(lines, ruleSet: ruleSet, balance: balance).maxRedeemablePoints
    }

    let hundredEuros = [RulesFixture.line("1", price: 10_000)]

    @Test("at most 50 % of the basket: 100.00 EUR → 5000 points with a large balance")
    func shareCap() throws {
        #expect(try cap(hundredEuros, balance: 100_000) == 5_000)
    }

    @Test("never more than the balance")
    func balanceCap() throws {
        #expect(try cap(hundredEuros, balance: 800) == 800)
    }

    @Test("below the minimum of 500 points: 0 (balance 499, or a basket whose cap is 450)")
    func minimumPoints() throws {
        #expect(try cap(hundredEuros, balance: 499) == 0)
        #expect(try cap(hundredEuros, balance: 500) == 500)
        let quote = try RulesFixture.quote([RulesFixture.line("1", price: 900)], balance: 10_000)
        #expect(quote.maxRedeemablePoints == 0)
        #expect(quote.explanation.contains { $0.rule == .redemption && $0.detail.contains("below the minimum") })
    }

    @Test("non-redeemable categories do not count: 100.00 tobacco + 20.00 groceries → 1000")
    func nonRedeemable() throws {
        let lines = [RulesFixture.line("t", category: "tobacco", price: 10_000), RulesFixture.line("g", price: 2_000)]
        let quote = try RulesFixture.quote(lines, balance: 100_000)
        #expect(quote.redeemablePaidMinor == 2_000)
        #expect(quote.maxRedeemablePoints == 1_000)
    }

    @Test("a point worth 3 minor units: floor(5000 / 3) = 1666")
    func pointValue() throws {
        let ruleSet = try RulesFixture.ruleSet(
            redemption: RedemptionRules(pointValueMinor: 3, minimumPoints: 0, maxShareOfBasketBp: 5_000))
        #expect(try cap(hundredEuros, balance: 100_000, ruleSet: ruleSet) == 1_666)
    }

    @Test("a negative balance is refused")
    func negativeBalance() throws {
        #expect(throws: QuoteError.negativeBalance(-1)) { try cap(hundredEuros, balance: -1) }
    }
}
