import LoyaltyCore
import Testing

@Suite("Rules: rule set validation")
struct RulesRuleSetTests {
    func issues(
        currency: String = "EUR", earn: EarnRules = RulesFixture.earn(),
        redemption: RedemptionRules = RedemptionRules(pointValueMinor: 1, minimumPoints: 500, maxShareOfBasketBp: 5_000),
        returnWindowDays: Int = 14, expiryDays: Int = 730,
        tierReview: TierReview = TierReview(reviewEveryDays: 30, graceDays: 30)
    ) -> [RuleSetIssue] {
        do {
            _ = try RuleSet(name: "P", currency: currency, earn: earn, redemption: redemption,
                            returnWindowDays: returnWindowDays, expiryDays: expiryDays, tierReview: tierReview)
            return []
        } catch {
            return error.issues
        }
    }

    @Test("the fixture is valid")
    func valid() { #expect(issues().isEmpty) }

    @Test("currency must be three upper-case letters")
    func currency() {
        for bad in ["eur", "EURO", "E1R", ""] {
            #expect(issues(currency: bad).map(\.field) == ["program.currency"])
        }
    }

    @Test("rates: not negative, not above the limit for the unit")
    func rates() {
        var earn = RulesFixture.earn()
        earn.defaultRateBp = -1
        earn.tierRatesBp["gold"] = RuleLimits.maxPointsRateBp + 1
        earn.categoryMultipliersBp["own_brand"] = -5
        #expect(issues(earn: earn).map(\.description) == [
            "earn.default_rate_bp: must be between 0 and 100000, got -1",
            "earn.tier_rates_bp.gold: must be between 0 and 100000, got 100001",
            "earn.categories.own_brand.multiplier_bp: must be between 0 and 100000, got -5",
        ])
        let cashback = RulesFixture.earn(unit: .cashbackMinor, defaultRateBp: 10_001)
        #expect(issues(earn: cashback).map(\.field) == ["earn.default_rate_bp"])
    }

    @Test("a category both multiplied and excluded is refused")
    func multipliedAndExcluded() {
        var earn = RulesFixture.earn()
        earn.categoryMultipliersBp["tobacco"] = 20_000
        #expect(issues(earn: earn).map(\.field) == ["earn.categories.tobacco"])
    }

    @Test("tier rate keys are tier codes as the database accepts them (lower_snake_case, at most 32)")
    func tierCodes() {
        for bad in ["Gold", "1st", "gold-plus", String(repeating: "a", count: 33)] {
            var earn = RulesFixture.earn()
            earn.tierRatesBp[bad] = 200
            #expect(issues(earn: earn).map(\.field) == ["earn.tier_rates_bp.\(bad)"])
        }
        var earn = RulesFixture.earn()
        earn.tierRatesBp["gold_plus_2"] = 200
        #expect(issues(earn: earn).isEmpty)
    }

    @Test("review policy ranges")
    func review() {
        #expect(issues(tierReview: TierReview(reviewEveryDays: 0, graceDays: -1)).map(\.field)
            == ["tiers.review_every_days", "tiers.downgrade_grace_days"])
    }

    @Test("expiry must outlast the return window; cashback points are worth 1 minor")
    func crossChecks() {
        #expect(issues(expiryDays: 14).map(\.field) == ["expiry.days"])
        #expect(issues(expiryDays: 0).isEmpty)
        #expect(issues(earn: RulesFixture.earn(unit: .cashbackMinor),
                       redemption: RedemptionRules(pointValueMinor: 2, minimumPoints: 0, maxShareOfBasketBp: 1))
            .map(\.field) == ["redemption.point_value_minor"])
    }
}
