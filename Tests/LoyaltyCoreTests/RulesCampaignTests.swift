import Foundation
import LoyaltyCore
import Testing

@Suite("Rules: campaigns")
struct RulesCampaignTests {
    let now = RulesFixture.now
    let hour: TimeInterval = 3_600

    func campaign(
        _ id: Int64, _ effect: CampaignMultiplier.Effect, from: TimeInterval = -3_600, to: TimeInterval = 3_600,
        categories: Set<String>? = nil, skus: Set<String>? = nil, tiers: Set<String>? = nil, segment: Bool = false
    ) throws -> CampaignMultiplier {
        try CampaignMultiplier(
            campaignID: id, name: "campaign \(id)", startsAt: now.addingTimeInterval(from),
            endsAt: now.addingTimeInterval(to), effect: effect, categories: categories, skus: skus,
            tierCodes: tiers, requiresSegment: segment)
    }

    let tenEuros = [RulesFixture.line("1", price: 1_000)]

    @Test("double points in its window: 10.00 EUR → 20, with the campaign id in the explanation")
    func inWindow() throws {
        let quote = try RulesFixture.quote(tenEuros, campaigns: [try campaign(7, .multiplier(bp: 20_000))])
        #expect(quote.totalAward == 20)
        let step = try #require(quote.lines[0].explanation.first { $0.rule == .campaign })
        #expect(step.campaignID == 7)
        #expect(step.effectBp == 20_000)
    }

    @Test("the window is half-open: applies from startsAt, not at endsAt")
    func window() throws {
        let startsNow = try campaign(1, .multiplier(bp: 20_000), from: 0, to: hour)
        let endsNow = try campaign(2, .multiplier(bp: 20_000), from: -hour, to: 0)
        let later = try campaign(3, .multiplier(bp: 20_000), from: hour, to: 2 * hour)
        #expect(try RulesFixture.quote(tenEuros, campaigns: [startsNow]).totalAward == 20)
        let quote = try RulesFixture.quote(tenEuros, campaigns: [endsNow, later])
        #expect(quote.totalAward == 10)
        // Campaigns not in force at the purchase are not listed: every past and future campaign would be noise.
        #expect(quote.explanation.filter { $0.rule == .campaignNotApplied }.isEmpty)
    }

    @Test("in force: scheduled by the purchase time and not yet cancelled, inside the window")
    func inForce() throws {
        let window = (start: now.addingTimeInterval(-hour), end: now.addingTimeInterval(hour))
        func make(scheduled: TimeInterval?, cancelled: TimeInterval?) throws -> CampaignMultiplier {
            try CampaignMultiplier(campaignID: 1, name: "c", startsAt: window.start, endsAt: window.end,
                                   effect: .multiplier(bp: 20_000), scheduledAt: scheduled.map { now.addingTimeInterval($0) },
                                   cancelledAt: cancelled.map { now.addingTimeInterval($0) })
        }
        #expect(try make(scheduled: nil, cancelled: nil).isActive(at: now))
        #expect(try make(scheduled: -1, cancelled: nil).isActive(at: now))
        #expect(try make(scheduled: 0, cancelled: nil).isActive(at: now))
        #expect(try !make(scheduled: 1, cancelled: nil).isActive(at: now))   // backdated window, scheduled after
        #expect(try make(scheduled: -60, cancelled: 1).isActive(at: now))    // cancelled after the purchase
        #expect(try !make(scheduled: -60, cancelled: 0).isActive(at: now))   // cancelled at the purchase time
        #expect(try RulesFixture.quote(tenEuros, campaigns: [try make(scheduled: 1, cancelled: nil)]).totalAward == 10)
        #expect(try RulesFixture.quote(tenEuros, campaigns: [try make(scheduled: -60, cancelled: 1)]).totalAward == 20)
    }

    @Test("a segment-only campaign applies only to members of its segment")
    func segment() throws {
        let vip = try campaign(9, .multiplier(bp: 30_000), segment: true)
        #expect(try RulesFixture.quote(tenEuros, campaigns: [vip]).totalAward == 10)
        #expect(try RulesFixture.quote(tenEuros, campaigns: [vip], segments: [9]).totalAward == 30)
        #expect(try RulesFixture.quote(tenEuros, campaigns: [vip], segments: [8]).explanation
            .contains { $0.rule == .campaignNotApplied && $0.detail.contains("segment") })
    }

    @Test("two multiplier campaigns add their extra parts: ×2 and ×1.5 → ×2.5")
    func combine() throws {
        let quote = try RulesFixture.quote(tenEuros, campaigns: [
            try campaign(1, .multiplier(bp: 20_000)), try campaign(2, .multiplier(bp: 15_000)),
        ])
        #expect(quote.totalAward == 25)
        #expect(quote.lines[0].explanation.filter { $0.rule == .campaign }.map(\.campaignID) == [1, 2])
    }

    @Test("campaign multiplier multiplies the product multiplier: own_brand ×2 in a ×2 campaign → ×4")
    func withCategory() throws {
        let line = [RulesFixture.line("1", category: "own_brand", price: 1_000)]
        #expect(try RulesFixture.quote(line, campaigns: [try campaign(1, .multiplier(bp: 20_000))]).totalAward == 40)
    }

    @Test("an extra rate is added on top and not multiplied: own_brand ×2 + 50 bp → 20 + 5")
    func extraRate() throws {
        let line = [RulesFixture.line("1", category: "own_brand", price: 1_000)]
        let quote = try RulesFixture.quote(line, campaigns: [try campaign(4, .extraRate(bp: 50))])
        #expect(quote.totalAward == 25)
    }

    @Test("restrictions: categories, SKUs (either matches) and tiers")
    func restrictions() throws {
        let lines = [RulesFixture.line("d", category: "dairy", price: 1_000),
                     RulesFixture.line("s", sku: "PROMO", price: 1_000),
                     RulesFixture.line("o", price: 1_000)]
        let restricted = try campaign(5, .multiplier(bp: 20_000), categories: ["dairy"], skus: ["PROMO"])
        #expect(try RulesFixture.quote(lines, campaigns: [restricted]).lines.map(\.award) == [20, 20, 10])

        let goldOnly = try campaign(6, .multiplier(bp: 20_000), tiers: ["gold"])
        #expect(try RulesFixture.quote(tenEuros, tier: "base", campaigns: [goldOnly]).totalAward == 10)
        #expect(try RulesFixture.quote(tenEuros, tier: "gold", campaigns: [goldOnly]).totalAward == 30)
    }

    @Test("campaigns never make an excluded category earn")
    func excludedStaysExcluded() throws {
        let lines = [RulesFixture.line("t", category: "tobacco", price: 5_000), RulesFixture.line("g", price: 1_000)]
        let quote = try RulesFixture.quote(lines, campaigns: [try campaign(1, .extraRate(bp: 500))])
        #expect(quote.lines[0].award == 0)
    }

    @Test("invalid campaigns are refused at creation; the same id twice is refused by the quote")
    func validation() throws {
        #expect(throws: CampaignError.multiplierOutOfRange(campaignID: 1, bp: 5_000)) {
            try campaign(1, .multiplier(bp: 5_000))
        }
        #expect(throws: CampaignError.multiplierOutOfRange(campaignID: 1, bp: 100_001)) {
            try campaign(1, .multiplier(bp: 100_001))
        }
        #expect(throws: CampaignError.extraRateOutOfRange(campaignID: 1, bp: -1)) { try campaign(1, .extraRate(bp: -1)) }
        #expect(throws: CampaignError.emptyWindow(campaignID: 1)) { try campaign(1, .extraRate(bp: 1), from: 0, to: 0) }
        #expect(throws: CampaignError.invalidRestriction(campaignID: 1, field: "categories")) {
            try campaign(1, .extraRate(bp: 1), categories: [])
        }
        let one = try campaign(1, .extraRate(bp: 1))
        #expect(throws: QuoteError.duplicateCampaign(1)) { try RulesFixture.quote(tenEuros, campaigns: [one, one]) }
    }
}
