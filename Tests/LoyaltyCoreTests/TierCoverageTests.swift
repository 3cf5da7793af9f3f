import LoyaltyCore
import Testing

@Suite("Tier coverage: the rules' tier rates against the tier ladder")
struct TierCoverageTests {
    @Test("names tiers the ladder lacks and tiers the rules do not name, sorted; none when they agree")
    func differences() {
        let coverage = TierCoverage(rulesCodes: ["base", "silver", "gold", "platinum"], ladderCodes: ["gold", "base", "bronze"])
        #expect(coverage.missingFromLadder == ["platinum", "silver"])
        #expect(coverage.notInRules == ["bronze"])
        #expect(!coverage.isConsistent)
        #expect(coverage.warnings.count == 2)
        #expect(coverage.warnings[0].contains("lacks: platinum, silver"))
        #expect(coverage.warnings[1].contains("do not name: bronze"))

        let same = TierCoverage(rulesCodes: ["base", "gold"], ladderCodes: ["gold", "base"])
        #expect(same.isConsistent && same.warnings.isEmpty)
    }
}
