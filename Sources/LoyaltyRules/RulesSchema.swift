import LoyaltyCore
import Yams

/// A top-level section as found in one of the files.
struct Section {
    let fileIndex: Int
    let file: String
    let value: Node
}

/// The rules-file schema: section and field names, and how their values become a `RuleSet`. Walks every section
/// even after a problem, so one run reports all of them; `RuleSet`'s own checks (ranges, cross references) are
/// then mapped back to the line of the field they name.
struct RulesSchema {
    static let sections = ["program", "earn", "redemption", "pending", "expiry", "tiers"]
    static let programKeys = ["name", "currency"]
    static let earnKeys = ["unit", "rounding", "minimum_basket_minor", "default_rate_bp", "tier_rates_bp",
                           "categories", "skus", "excluded_categories", "max_award_per_basket"]
    static let earnRequired = ["unit", "rounding", "minimum_basket_minor", "default_rate_bp"]
    static let multiplierKeys = ["multiplier_bp"]
    static let redemptionKeys = ["point_value_minor", "minimum_points", "max_share_of_basket_bp",
                                 "non_redeemable_categories"]
    static let tiersKeys = ["review_every_days", "downgrade_grace_days"]

    let reader: YAMLReader
    init(reader: YAMLReader) { self.reader = reader }

    /// The rule set, or nil when any problem was reported to `reader`.
    func build(_ sections: [String: Section], firstFile: String) -> RuleSet? {
        func fields(_ name: String, _ known: [String], _ required: [String]) -> Fields? {
            guard let section = sections[name] else { return nil }
            reader.file = section.file
            reader.fileIndex = section.fileIndex
            return reader.mapping(section.value, path: name, known: known, required: required)
        }

        let program = fields("program", Self.programKeys, Self.programKeys)
        let name = program.flatMap { reader.string($0, "name") }
        let currency = program.flatMap { reader.string($0, "currency") }

        let earnFields = fields("earn", Self.earnKeys, Self.earnRequired)
        let earn = earnFields.map(readEarn) ?? EarnRules(unit: .points, defaultRateBp: 0)

        let redemptionFields = fields("redemption", Self.redemptionKeys, Array(Self.redemptionKeys.prefix(3)))
        let redemption = RedemptionRules(
            pointValueMinor: redemptionFields.flatMap { reader.int($0, "point_value_minor") } ?? 1,
            minimumPoints: redemptionFields.flatMap { reader.int($0, "minimum_points") } ?? 0,
            maxShareOfBasketBp: redemptionFields.flatMap { reader.int($0, "max_share_of_basket_bp") } ?? 0,
            nonRedeemableCategories: Set(redemptionFields.flatMap { reader.codeList($0, "non_redeemable_categories") }
                ?? []))

        let pending = fields("pending", ["return_window_days"], ["return_window_days"])
        let returnWindow = pending.flatMap { reader.smallInt($0, "return_window_days") } ?? 0
        let expiry = fields("expiry", ["days"], ["days"])
        let expiryDays = expiry.flatMap { reader.smallInt($0, "days") } ?? 0

        let tierFields = fields("tiers", Self.tiersKeys, Self.tiersKeys)
        let review = tierFields.flatMap { reader.smallInt($0, "review_every_days") } ?? 1
        let grace = tierFields.flatMap { reader.smallInt($0, "downgrade_grace_days") } ?? 0

        do throws(RuleSetError) {
            let ruleSet = try RuleSet(
                name: name ?? "?", currency: currency ?? "?", earn: earn, redemption: redemption,
                returnWindowDays: returnWindow, expiryDays: expiryDays,
                tierReview: TierReview(reviewEveryDays: review, graceDays: grace))
            return reader.issues.isEmpty ? ruleSet : nil
        } catch {
            for issue in error.issues where !isExplained(issue.field) {
                reader.report(issue.field, at: locate(issue.field), issue.message, fallbackFile: firstFile)
            }
            return nil
        }
    }

    private func readEarn(_ fields: Fields) -> EarnRules {
        let unit = reader.choice(fields, "unit", LedgerUnit.allCases.map(\.rawValue)).flatMap(LedgerUnit.init)
        let rounding = reader.choice(fields, "rounding", RoundingMode.allCases.map(\.rawValue))
            .flatMap(RoundingMode.init)
        return EarnRules(
            unit: unit ?? .points,
            defaultRateBp: reader.int(fields, "default_rate_bp") ?? 0,
            tierRatesBp: codeMap(fields, "tier_rates_bp") { reader.int($0, $1) },
            categoryMultipliersBp: codeMap(fields, "categories", multiplier),
            skuMultipliersBp: codeMap(fields, "skus", multiplier),
            excludedCategories: Set(reader.codeList(fields, "excluded_categories") ?? []),
            minimumBasketMinor: reader.int(fields, "minimum_basket_minor") ?? 0,
            rounding: rounding ?? .floorPerLine,
            maxAwardPerBasket: reader.int(fields, "max_award_per_basket"))
    }

    /// `code: {multiplier_bp: N}`.
    private func multiplier(_ codes: Fields, _ code: String) -> Int64? {
        guard let node = codes[code],
              let entry = reader.mapping(node, path: codes.child(code), known: Self.multiplierKeys,
                                         required: Self.multiplierKeys)
        else { return nil }
        return reader.int(entry, "multiplier_bp")
    }

    /// A mapping of codes (any key) to values read by `value`; entries that fail are left out.
    private func codeMap<T>(_ fields: Fields, _ key: String, _ value: (Fields, String) -> T?) -> [String: T] {
        guard let node = fields[key],
              let codes = reader.mapping(node, path: fields.child(key), known: nil)
        else { return [:] }
        var result: [String: T] = [:]
        for pair in codes.pairs {
            if let parsed = value(codes, pair.key) { result[pair.key] = parsed }
        }
        return result
    }

    /// True when `field`, or a field it is part of, already has a reported problem.
    private func isExplained(_ field: String) -> Bool {
        var path = field
        while true {
            if reader.failed.contains(path) { return true }
            guard let dot = path.lastIndex(of: ".") else { return false }
            path = String(path[..<dot])
        }
    }

    /// Where `field` was written, or the nearest enclosing field that was.
    private func locate(_ field: String) -> SourceLocation? {
        var path = field
        while true {
            if let location = reader.locations[path] { return location }
            guard let dot = path.lastIndex(of: ".") else { return nil }
            path = String(path[..<dot])
        }
    }
}
