import Foundation
import LoyaltyCore
import Testing

@Suite("Rules: tier policy")
struct RulesTierPolicyTests {
    let policy = try! RulesFixture.ruleSet().tierPolicy(tiers: RulesFixture.tiers)
    let day: TimeInterval = 86_400
    let start = Date(timeIntervalSince1970: 1_700_000_000)

    @Test("thresholds must increase with rank; the error names both tiers")
    func increasing() {
        let tiers = [TierLevel(code: "base", rank: 0, qualificationSpendMinor: 0, windowDays: 365),
                     TierLevel(code: "silver", rank: 1, qualificationSpendMinor: 50_000, windowDays: 365),
                     TierLevel(code: "gold", rank: 2, qualificationSpendMinor: 50_000, windowDays: 365)]
        let expected = TierPolicyError.thresholdsNotIncreasing(lower: "silver", lowerSpend: 50_000,
                                                               higher: "gold", higherSpend: 50_000)
        #expect(throws: expected) { try TierPolicy(tiers: tiers, reviewEveryDays: 30, graceDays: 30) }
        #expect(expected.description.contains("gold") && expected.description.contains("silver"))
    }

    @Test("other tier list problems")
    func listProblems() {
        #expect(throws: TierPolicyError.noTiers) { try TierPolicy(tiers: [], reviewEveryDays: 30, graceDays: 0) }
        let notFree = [TierLevel(code: "base", rank: 0, qualificationSpendMinor: 1, windowDays: 365)]
        #expect(throws: TierPolicyError.lowestTierNotFree(code: "base", spend: 1)) {
            try TierPolicy(tiers: notFree, reviewEveryDays: 30, graceDays: 0)
        }
        let sameRank = [TierLevel(code: "a", rank: 0, qualificationSpendMinor: 0, windowDays: 365),
                        TierLevel(code: "b", rank: 0, qualificationSpendMinor: 10, windowDays: 365)]
        #expect(throws: TierPolicyError.duplicateRank(rank: 0, first: "a", second: "b")) {
            try TierPolicy(tiers: sameRank, reviewEveryDays: 30, graceDays: 0)
        }
        #expect(throws: TierPolicyError.reviewEveryDaysOutOfRange(0)) {
            try TierPolicy(tiers: RulesFixture.tiers, reviewEveryDays: 0, graceDays: 0)
        }
    }

    @Test("qualifying tier: highest threshold at or below the spend")
    func qualifying() {
        #expect(policy.qualifyingTier(spendMinor: -5).code == "base")
        #expect(policy.qualifyingTier(spendMinor: 49_999).code == "base")
        #expect(policy.qualifyingTier(spendMinor: 50_000).code == "silver")
        #expect(policy.qualifyingTier(spendMinor: 149_999).code == "silver")
        #expect(policy.qualifyingTier(spendMinor: 1_000_000_000).code == "gold")
    }

    @Test("upgrade at once, even by several ranks and the day after a change")
    func upgrade() throws {
        let decision = try policy.reviewDecision(current: "base", spendMinor: 200_000, now: start + day,
                                                 lastChangeAt: start)
        #expect(decision.action == .upgrade)
        #expect(decision.to == "gold")
    }

    @Test("keep while the spend still qualifies")
    func keep() throws {
        let decision = try policy.reviewDecision(current: "silver", spendMinor: 60_000, now: start + 400 * day,
                                                 lastChangeAt: start)
        #expect(decision.action == .keep)
        #expect(decision.downgradeNotBefore == nil)
    }

    @Test("no downgrade within the grace period (30 days) after the last change; then one rank only")
    func downgrade() throws {
        let early = try policy.reviewDecision(current: "gold", spendMinor: 0, now: start + 29 * day, lastChangeAt: start)
        #expect(early.action == .keep)
        #expect(early.qualifyingTier == "base")
        #expect(early.downgradeNotBefore == start + 30 * day)

        let due = try policy.reviewDecision(current: "gold", spendMinor: 0, now: start + 30 * day, lastChangeAt: start)
        #expect(due.action == .downgrade)
        #expect(due.to == "silver")

        let noGrace = try policy.reviewDecision(current: "gold", spendMinor: 0, now: start + 1, lastChangeAt: start,
                                                graceDays: 0)
        #expect(noGrace.action == .downgrade)
        #expect(noGrace.to == "silver")
    }

    @Test("tier codes follow the database's rule")
    func codes() {
        let bad = [TierLevel(code: "Base", rank: 0, qualificationSpendMinor: 0, windowDays: 365)]
        #expect(throws: TierPolicyError.invalidCode("Base")) {
            try TierPolicy(tiers: bad, reviewEveryDays: 30, graceDays: 0)
        }
    }

    @Test("per-tier spend windows and unknown tiers")
    func windowsAndUnknown() throws {
        let decision = try policy.reviewDecision(
            current: "base", spendFor: { $0.code == "gold" ? 150_000 : 0 }, now: start, lastChangeAt: start)
        #expect(decision.to == "gold")
        #expect(throws: TierPolicyError.unknownTier("bronze")) {
            try policy.reviewDecision(current: "bronze", spendMinor: 0, now: start, lastChangeAt: start)
        }
    }
}
