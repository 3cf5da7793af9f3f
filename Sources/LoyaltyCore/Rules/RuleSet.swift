/// One problem of a rule set: the rules-file field it is about (dotted path, see docs/rules.md) and what is wrong.
public struct RuleSetIssue: Sendable, Hashable, CustomStringConvertible {
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// A rule set was refused; `issues` lists every problem found, in a stable order.
public struct RuleSetError: Error, Sendable, Hashable, CustomStringConvertible {
    public let issues: [RuleSetIssue]

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// How purchases earn. Rates are basis points of the paid amount in minor units, in the earn unit: for points,
/// 100 bp = 1 point per 100 minor units (1 point per euro); for cashback, 200 bp = 2 % back in minor units.
/// Multipliers are basis points too (10_000 = ×1). Checked only as part of a `RuleSet`.
public struct EarnRules: Sendable, Hashable {
    public var unit: LedgerUnit
    /// Rate for tiers not in `tierRatesBp`.
    public var defaultRateBp: Int64
    public var tierRatesBp: [String: Int64]
    /// Multiplier per category; a SKU multiplier wins over its category's.
    public var categoryMultipliersBp: [String: Int64]
    public var skuMultipliersBp: [String: Int64]
    /// Lines of these categories earn nothing and do not count toward the minimum basket.
    public var excludedCategories: Set<String>
    /// Baskets whose earning lines are paid less than this earn nothing.
    public var minimumBasketMinor: Int64
    public var rounding: RoundingMode
    /// The most one basket earns, in the earn unit, after rounding; nil: no cap. A cut is shared over the earning
    /// lines in proportion to their awards (see `RulesEvaluator`).
    public var maxAwardPerBasket: Int64?

    public init(
        unit: LedgerUnit, defaultRateBp: Int64, tierRatesBp: [String: Int64] = [:],
        categoryMultipliersBp: [String: Int64] = [:], skuMultipliersBp: [String: Int64] = [:],
        excludedCategories: Set<String> = [], minimumBasketMinor: Int64 = 0, rounding: RoundingMode = .floorPerLine,
        maxAwardPerBasket: Int64? = nil
    ) {
        self.unit = unit
        self.defaultRateBp = defaultRateBp
        self.tierRatesBp = tierRatesBp
        self.categoryMultipliersBp = categoryMultipliersBp
        self.skuMultipliersBp = skuMultipliersBp
        self.excludedCategories = excludedCategories
        self.minimumBasketMinor = minimumBasketMinor
        self.rounding = rounding
        self.maxAwardPerBasket = maxAwardPerBasket
    }
}

/// How a balance pays: one unit is worth `pointValueMinor` minor units; at least `minimumPoints` per redemption;
/// at most `maxShareOfBasketBp` of the paid amount of lines not in `nonRedeemableCategories`.
/// Checked only as part of a `RuleSet`.
public struct RedemptionRules: Sendable, Hashable {
    public var pointValueMinor: Int64
    public var minimumPoints: Int64
    public var maxShareOfBasketBp: Int64
    public var nonRedeemableCategories: Set<String>

    public init(pointValueMinor: Int64, minimumPoints: Int64, maxShareOfBasketBp: Int64,
                nonRedeemableCategories: Set<String> = []) {
        self.pointValueMinor = pointValueMinor
        self.minimumPoints = minimumPoints
        self.maxShareOfBasketBp = maxShareOfBasketBp
        self.nonRedeemableCategories = nonRedeemableCategories
    }
}

/// How often tiers are reviewed and how long a member keeps a tier the spend no longer earns. Checked only as
/// part of a `RuleSet`. Downgrades are always by one rank per review (see `TierPolicy`).
public struct TierReview: Sendable, Hashable {
    public var reviewEveryDays: Int
    public var graceDays: Int

    public init(reviewEveryDays: Int, graceDays: Int) {
        self.reviewEveryDays = reviewEveryDays
        self.graceDays = graceDays
    }
}

/// A validated loyalty program: every value exists only after all checks passed (ranges of `RuleLimits`,
/// a three-letter upper-case currency, valid codes, no category both multiplied and excluded, expiry longer than
/// the return window). Immutable and deterministic to evaluate. The tier ladder itself lives in the database;
/// the program holds the earn rate per tier code and the review policy.
public struct RuleSet: Sendable, Hashable {
    public let name: String
    /// ISO 4217 code, three upper-case letters; baskets in another currency are refused.
    public let currency: String
    public let earn: EarnRules
    public let redemption: RedemptionRules
    /// Days an earning stays pending so a return can take it back.
    public let returnWindowDays: Int
    /// Days until earned units expire; 0 = never.
    public let expiryDays: Int
    public let tierReview: TierReview

    public init(
        name: String, currency: String, earn: EarnRules, redemption: RedemptionRules,
        returnWindowDays: Int, expiryDays: Int, tierReview: TierReview
    ) throws(RuleSetError) {
        let issues = Self.problems(name: name, currency: currency, earn: earn, redemption: redemption,
                                   returnWindowDays: returnWindowDays, expiryDays: expiryDays, tierReview: tierReview)
        guard issues.isEmpty else { throw RuleSetError(issues: issues) }
        self.name = name
        self.currency = currency
        self.earn = earn
        self.redemption = redemption
        self.returnWindowDays = returnWindowDays
        self.expiryDays = expiryDays
        self.tierReview = tierReview
    }

    /// The review policy applied to a tier ladder (e.g. the database's tiers).
    public func tierPolicy(tiers: [TierLevel]) throws(TierPolicyError) -> TierPolicy {
        try TierPolicy(tiers: tiers, reviewEveryDays: tierReview.reviewEveryDays, graceDays: tierReview.graceDays)
    }

    /// The earn rate of a tier: its own rate when listed, else the default (`fromTier` says which).
    public func rateBp(forTier code: String) -> (rateBp: Int64, fromTier: Bool) {
        if let rate = earn.tierRatesBp[code] { return (rate, true) }
        return (earn.defaultRateBp, false)
    }

    private static func problems(
        name: String, currency: String, earn: EarnRules, redemption: RedemptionRules,
        returnWindowDays: Int, expiryDays: Int, tierReview: TierReview
    ) -> [RuleSetIssue] {
        var issues: [RuleSetIssue] = []
        func check(_ ok: Bool, _ field: String, _ message: @autoclosure () -> String) {
            if !ok { issues.append(RuleSetIssue(field: field, message: message())) }
        }
        func range<T: BinaryInteger>(_ value: T, _ bounds: ClosedRange<T>, _ field: String) {
            check(bounds.contains(value), field,
                  "must be between \(bounds.lowerBound) and \(bounds.upperBound), got \(value)")
        }
        func codes<S: Sequence<String>>(_ codes: S, _ field: String) {
            for code in codes.sorted() {
                check(RuleLimits.isValidCode(code), "\(field).\(code)",
                      "must be 1 to \(RuleLimits.maxCodeLength) printable characters without spaces")
            }
        }
        func count(_ value: Int, _ field: String) {
            check(value <= RuleLimits.maxListEntries, field,
                  "at most \(RuleLimits.maxListEntries) entries, got \(value)")
        }

        check(!name.trimmingCharactersIsEmpty && name.count <= RuleLimits.maxNameLength, "program.name",
              "must be 1 to \(RuleLimits.maxNameLength) characters")
        check(RuleLimits.isValidCurrency(currency), "program.currency",
              "must be 3 upper-case letters (ISO 4217, e.g. EUR), got \"\(currency)\"")

        let maxRate = earn.unit == .points ? RuleLimits.maxPointsRateBp : RuleLimits.maxCashbackRateBp
        range(earn.defaultRateBp, 0...maxRate, "earn.default_rate_bp")
        count(earn.tierRatesBp.count, "earn.tier_rates_bp")
        for (code, rate) in earn.tierRatesBp.sorted(by: { $0.key < $1.key }) {
            check(RuleLimits.isValidTierCode(code), "earn.tier_rates_bp.\(code)",
                  "tier codes are lower_snake_case: a letter, then letters, digits or _, at most "
                    + "\(RuleLimits.maxTierCodeLength) characters")
            range(rate, 0...maxRate, "earn.tier_rates_bp.\(code)")
        }
        count(earn.categoryMultipliersBp.count, "earn.categories")
        codes(earn.categoryMultipliersBp.keys, "earn.categories")
        for (code, bp) in earn.categoryMultipliersBp.sorted(by: { $0.key < $1.key }) {
            range(bp, 0...RuleLimits.maxMultiplierBp, "earn.categories.\(code).multiplier_bp")
            check(!earn.excludedCategories.contains(code), "earn.categories.\(code)",
                  "category \(code) is also in earn.excluded_categories: remove it from one of them")
        }
        count(earn.skuMultipliersBp.count, "earn.skus")
        codes(earn.skuMultipliersBp.keys, "earn.skus")
        for (code, bp) in earn.skuMultipliersBp.sorted(by: { $0.key < $1.key }) {
            range(bp, 0...RuleLimits.maxMultiplierBp, "earn.skus.\(code).multiplier_bp")
        }
        count(earn.excludedCategories.count, "earn.excluded_categories")
        codes(earn.excludedCategories, "earn.excluded_categories")
        range(earn.minimumBasketMinor, 0...RuleLimits.maxMinimumBasketMinor, "earn.minimum_basket_minor")
        if let cap = earn.maxAwardPerBasket {
            range(cap, 1...RuleLimits.maxAwardPerBasket, "earn.max_award_per_basket")
        }

        range(redemption.pointValueMinor, 1...RuleLimits.maxPointValueMinor, "redemption.point_value_minor")
        if earn.unit == .cashbackMinor {
            check(redemption.pointValueMinor == 1, "redemption.point_value_minor",
                  "must be 1 when earn.unit is cashback_minor (cashback is already in minor units)")
        }
        range(redemption.minimumPoints, 0...RuleLimits.maxMinimumPoints, "redemption.minimum_points")
        range(redemption.maxShareOfBasketBp, 0...RuleLimits.bpPerUnit, "redemption.max_share_of_basket_bp")
        count(redemption.nonRedeemableCategories.count, "redemption.non_redeemable_categories")
        codes(redemption.nonRedeemableCategories, "redemption.non_redeemable_categories")

        range(returnWindowDays, 0...RuleLimits.maxReturnWindowDays, "pending.return_window_days")
        range(expiryDays, 0...RuleLimits.maxExpiryDays, "expiry.days")
        // Units must not expire while a return could still take them back.
        check(expiryDays == 0 || expiryDays > returnWindowDays, "expiry.days",
              "must be 0 (never) or more than pending.return_window_days (\(returnWindowDays)), got \(expiryDays)")
        range(tierReview.reviewEveryDays, 1...RuleLimits.maxReviewEveryDays, "tiers.review_every_days")
        range(tierReview.graceDays, 0...RuleLimits.maxGraceDays, "tiers.downgrade_grace_days")
        return issues
    }
}

extension String {
    fileprivate var trimmingCharactersIsEmpty: Bool { allSatisfy(\.isWhitespace) }
}
