import Foundation
import LoyaltyCore
import Testing

/// A small program used by the rules tests: EUR, points, 1 point per euro (100 bp) by default, silver 125 bp and
/// gold 150 bp, own_brand ×2, SKU FEATURED ×3, tobacco / gift_cards / lottery excluded, minimum basket 1.00 EUR.
enum RulesFixture {
    static let tiers = [
        TierLevel(code: "base", rank: 0, qualificationSpendMinor: 0, windowDays: 365),
        TierLevel(code: "silver", rank: 1, qualificationSpendMinor: 50_000, windowDays: 365),
        TierLevel(code: "gold", rank: 2, qualificationSpendMinor: 150_000, windowDays: 365),
    ]

    static func earn(
        unit: LedgerUnit = .points, defaultRateBp: Int64 = 100, rounding: RoundingMode = .floorPerLine,
        minimumBasketMinor: Int64 = 100
    ) -> EarnRules {
        EarnRules(
            unit: unit, defaultRateBp: defaultRateBp, tierRatesBp: ["silver": 125, "gold": 150],
            categoryMultipliersBp: ["own_brand": 20_000], skuMultipliersBp: ["FEATURED": 30_000],
            excludedCategories: ["tobacco", "gift_cards", "lottery"], minimumBasketMinor: minimumBasketMinor,
            rounding: rounding)
    }

    static func ruleSet(
        earn: EarnRules = earn(),
        redemption: RedemptionRules = RedemptionRules(pointValueMinor: 1, minimumPoints: 500, maxShareOfBasketBp: 5_000,
                                                      nonRedeemableCategories: ["tobacco"])
    ) throws -> RuleSet {
        try RuleSet(name: "Test program", currency: "EUR", earn: earn, redemption: redemption, returnWindowDays: 14,
                    expiryDays: 730, tierReview: TierReview(reviewEveryDays: 30, graceDays: 30))
    }

    static func line(_ id: String, sku: String = "SKU", category: String = "grocery", quantity: Int64 = 1,
                     price: Int64, discount: Int64 = 0) -> BasketLine {
        BasketLine(lineID: id, sku: sku, category: category, quantity: quantity, unitPriceMinor: price,
                   discountMinor: discount)
    }

    static let now = Date(timeIntervalSince1970: 1_750_000_000)

    static func quote(
        _ lines: [BasketLine], tier: String = "base", ruleSet: RuleSet? = nil, campaigns: [CampaignMultiplier] = [],
        segments: Set<Int64> = [], balance: Int64 = 0, version: String? = nil, tierRate: Int64? = nil
    ) throws -> Quote {
        let evaluator = RulesEvaluator(ruleSet: try ruleSet ?? self.ruleSet(), rulesVersion: version)
        return try evaluator.quote(basket: Basket(currency: "EUR", lines: lines), tierCode: tier,
                                   campaigns: campaigns, memberSegments: segments, now: now,
                                   availableBalance: balance, tierRateOverrideBp: tierRate)
    }
}

@Suite("Rules: earning per rule kind")
struct RulesEvaluatorTests {
    @Test("default rate: 100 bp of 12.34 EUR is 12.34 points, floored to 12")
    func baseRate() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", price: 1_234)])
        #expect(quote.totalAward == 12)
        #expect(quote.unit == .points)
        let steps = quote.lines[0].explanation
        #expect(steps.map(\.rule) == [.baseRate, .rounding])
        #expect(steps[0].effectBp == 100)
        #expect(steps[1].detail.contains("12.34"))
    }

    @Test("tier rate: gold earns 150 bp, 12.34 EUR → 18.51 → 18")
    func tierRate() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", price: 1_234)], tier: "gold")
        #expect(quote.totalAward == 18)
        #expect(quote.lines[0].explanation.first == ExplanationStep(
            rule: .tierRate, detail: "tier gold earns 150 bp of the paid amount", effectBp: 150))
    }

    @Test("a rate set on the tier itself wins over the rules; out of range is refused")
    func tierOverride() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", price: 1_000)], tier: "gold", tierRate: 300)
        #expect(quote.totalAward == 30)
        #expect(quote.lines[0].explanation[0].rule == .tierRate)
        #expect(quote.lines[0].explanation[0].detail.contains("set on the tier"))
        #expect(throws: QuoteError.invalidTierRate(100_001)) {
            try RulesFixture.quote([RulesFixture.line("1", price: 1_000)], tierRate: 100_001)
        }
    }

    @Test("an unknown tier code earns the default rate")
    func unknownTierUsesDefault() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", price: 1_000)], tier: "platinum")
        #expect(quote.totalAward == 10)
        #expect(quote.lines[0].explanation[0].rule == .baseRate)
    }

    @Test("category multiplier: own_brand ×2, 10.00 EUR → 20")
    func categoryMultiplier() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", category: "own_brand", price: 1_000)])
        #expect(quote.totalAward == 20)
        #expect(quote.lines[0].explanation.map(\.rule) == [.baseRate, .categoryMultiplier, .rounding])
        #expect(quote.lines[0].explanation[1].effectBp == 20_000)
    }

    @Test("SKU multiplier wins over its category's: FEATURED in own_brand earns ×3, not ×2 or ×6")
    func skuPrecedence() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", sku: "FEATURED", category: "own_brand", price: 1_000)])
        #expect(quote.totalAward == 30)
        let steps = quote.lines[0].explanation
        #expect(steps.map(\.rule) == [.baseRate, .skuMultiplier, .rounding])
        #expect(steps[1].detail.contains("wins over category own_brand"))
    }

    @Test("excluded category earns 0, says why, and does not count toward the minimum basket")
    func exclusion() throws {
        let quote = try RulesFixture.quote([
            RulesFixture.line("t", category: "tobacco", price: 5_000),
            RulesFixture.line("g", price: 1_000),
        ])
        #expect(quote.lines.map(\.award) == [0, 10])
        #expect(quote.lines[0].explanation.map(\.rule) == [.excluded])
        #expect(quote.earningPaidMinor == 1_000)
        #expect(quote.paidTotalMinor == 6_000)

        let below = try RulesFixture.quote([
            RulesFixture.line("t", category: "tobacco", price: 5_000),
            RulesFixture.line("g", price: 99),
        ])
        #expect(below.totalAward == 0)
    }

    @Test("minimum basket: 0.99 EUR earns nothing; exactly 1.00 EUR earns 1 point")
    func minimumBasket() throws {
        let below = try RulesFixture.quote([RulesFixture.line("1", category: "own_brand", price: 99)])
        #expect(below.totalAward == 0)
        #expect(below.lines[0].explanation.map(\.rule) == [.minimumBasket])
        #expect(below.explanation.contains { $0.rule == .minimumBasket && $0.detail.contains("below") })

        let exactly = try RulesFixture.quote([RulesFixture.line("1", price: 100)])
        #expect(exactly.totalAward == 1)
    }

    @Test("line paid = quantity × price − discount: 3 × 5.00 − 2.00 = 13.00 → 13")
    func discount() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", quantity: 3, price: 500, discount: 200)])
        #expect(quote.lines[0].paidMinor == 1_300)
        #expect(quote.lines[0].quantity == 3)
        #expect(quote.totalAward == 13)
        #expect(quote.lineAwards.map(\.award) == [13])
    }

    @Test("cashback: 200 bp of 12.34 EUR → 24.68 cents, floored to 24")
    func cashback() throws {
        let ruleSet = try RulesFixture.ruleSet(
            earn: RulesFixture.earn(unit: .cashbackMinor, defaultRateBp: 200),
            redemption: RedemptionRules(pointValueMinor: 1, minimumPoints: 0, maxShareOfBasketBp: 10_000))
        let quote = try RulesFixture.quote([RulesFixture.line("1", price: 1_234)], ruleSet: ruleSet)
        #expect(quote.unit == .cashbackMinor)
        #expect(quote.totalAward == 24)
        #expect(quote.lines[0].explanation.last?.detail.contains("cashback minor units") == true)
    }

    @Test("the quote carries the rules version and is deterministic")
    func versionAndDeterminism() throws {
        let lines = [RulesFixture.line("a", category: "own_brand", price: 777),
                     RulesFixture.line("b", sku: "FEATURED", quantity: 2, price: 333)]
        let first = try RulesFixture.quote(lines, version: "0123456789abcdef")
        let second = try RulesFixture.quote(lines, version: "0123456789abcdef")
        #expect(first == second)
        #expect(first.rulesVersion == "0123456789abcdef")
        #expect(try RulesFixture.quote(lines).rulesVersion == nil)
    }

    @Test("explanation steps encode as JSON with snake_case keys and omit absent fields")
    func explanationJSON() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let step = ExplanationStep(rule: .campaign, detail: "x", campaignID: 7, effectBp: 20_000)
        let json = String(decoding: try encoder.encode(step), as: UTF8.self)
        #expect(json == #"{"campaign_id":7,"detail":"x","effect_bp":20000,"rule":"campaign"}"#)
        let plain = String(decoding: try encoder.encode(ExplanationStep(rule: .excluded, detail: "y")), as: UTF8.self)
        #expect(plain == #"{"detail":"y","rule":"excluded"}"#)

        let quote = try RulesFixture.quote([RulesFixture.line("1", category: "own_brand", price: 1_000)])
        let decoded = try JSONDecoder().decode(Quote.self, from: try encoder.encode(quote))
        #expect(decoded == quote)
    }

    @Test("an award too large for 64 bits is an error, not a wrap")
    func overflow() throws {
        let line = RulesFixture.line("1", category: "own_brand", quantity: 10_000, price: Int64.max / 10_000)
        let ruleSet = try RulesFixture.ruleSet(earn: RulesFixture.earn(defaultRateBp: 100_000))
        #expect(throws: QuoteError.self) { try RulesFixture.quote([line], ruleSet: ruleSet) }
    }
}
