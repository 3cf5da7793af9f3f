/// How the tiers the rules name (their `earn.tier_rates_bp` keys) and the database's tier ladder differ. A tier
/// the rules name but the ladder lacks is a rate no member can get (a typo, or a tier not created yet); a tier of
/// the ladder the rules do not name earns `default_rate_bp` (or the tier's own override). Both are worth a
/// warning, neither stops the program.
public struct TierCoverage: Sendable, Equatable {
    /// Named by the rules, missing from the ladder; sorted.
    public let missingFromLadder: [String]
    /// In the ladder, not named by the rules; sorted.
    public let notInRules: [String]

    public init(rules: RuleSet, ladderCodes: some Sequence<String>) {
        self.init(rulesCodes: rules.earn.tierRatesBp.keys, ladderCodes: ladderCodes)
    }

    public init(rulesCodes: some Sequence<String>, ladderCodes: some Sequence<String>) {
        let named = Set(rulesCodes)
        let ladder = Set(ladderCodes)
        self.missingFromLadder = named.subtracting(ladder).sorted()
        self.notInRules = ladder.subtracting(named).sorted()
    }

    public var isConsistent: Bool { missingFromLadder.isEmpty && notInRules.isEmpty }

    /// One line per kind of difference, empty when consistent.
    public var warnings: [String] {
        var lines: [String] = []
        if !missingFromLadder.isEmpty {
            lines.append(
                "the rules give earn rates to tiers the database's tier ladder lacks: \(missingFromLadder.joined(separator: ", ")) "
                    + "(no member can be in them; create them with POST /v1/tiers or fix earn.tier_rates_bp)")
        }
        if !notInRules.isEmpty {
            lines.append(
                "the database's tier ladder has tiers the rules do not name: \(notInRules.joined(separator: ", ")) "
                    + "(they earn earn.default_rate_bp unless the tier sets earn_rate_override_bp)")
        }
        return lines
    }
}
