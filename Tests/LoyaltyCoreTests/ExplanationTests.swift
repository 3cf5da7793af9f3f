import Foundation
import LoyaltyCore
import Testing

@Suite("Explanations: compact storage, rendering, what is listed")
struct ExplanationTests {
    let now = RulesFixture.now

    func campaign(
        _ id: Int64, _ effect: CampaignMultiplier.Effect = .multiplier(bp: 20_000), name: String? = nil,
        from: TimeInterval = -3_600, to: TimeInterval = 3_600, categories: Set<String>? = nil,
        tiers: Set<String>? = nil, segment: Bool = false
    ) throws -> CampaignMultiplier {
        try CampaignMultiplier(
            campaignID: id, name: name ?? "campaign \(id)", startsAt: now.addingTimeInterval(from),
            endsAt: now.addingTimeInterval(to), effect: effect, categories: categories, tierCodes: tiers,
            requiresSegment: segment)
    }

    func fullJSON(_ quote: Quote) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(quote)
    }

    @Test("a stored compact explanation reads back as the same quote, fact for fact (800 random baskets)",
          arguments: [RoundingMode.floorPerLine, .floorPerBasket])
    func roundTrip(rounding: RoundingMode) throws {
        let categories = ["grocery", "own_brand", "dairy", "tobacco"]
        let skus = ["SKU1", "FEATURED", "PROMO"]
        for seed in UInt64(1)...400 {
            var rng = RulesSeededGenerator(state: seed)
            let unit: LedgerUnit = Bool.random(using: &rng) ? .points : .cashbackMinor
            var earn = RulesFixture.earn(
                unit: unit, defaultRateBp: Int64.random(in: 1...500, using: &rng), rounding: rounding,
                minimumBasketMinor: Int64.random(in: 0...3_000, using: &rng))
            earn.maxAwardPerBasket = Bool.random(using: &rng) ? Int64.random(in: 1...200, using: &rng) : nil
            let ruleSet = try RulesFixture.ruleSet(earn: earn)
            let lines = (0..<Int.random(in: 1...8, using: &rng)).map { index in
                RulesFixture.line("L\(index)\"x\\", sku: skus.randomElement(using: &rng)!,
                                  category: categories.randomElement(using: &rng)!,
                                  quantity: Int64.random(in: 1...20, using: &rng),
                                  price: Int64.random(in: 0...5_000, using: &rng))
            }
            let offers = [
                try campaign(1, .multiplier(bp: Int64.random(in: 10_000...30_000, using: &rng)), name: "Double \\ \"weekend\"\n"),
                try campaign(2, .extraRate(bp: Int64.random(in: 0...300, using: &rng)), categories: ["dairy"]),
                try campaign(3, tiers: ["gold"]),
                try campaign(4, segment: true),
                try campaign(5, from: 3_600, to: 7_200),
            ]
            let tier = ["base", "silver", "gold"].randomElement(using: &rng)!
            let balance: Int64? = Bool.random(using: &rng) ? Int64.random(in: 0...10_000, using: &rng) : nil
            let evaluator = RulesEvaluator(ruleSet: ruleSet, rulesVersion: "v\(seed)")
            let quote = try evaluator.quote(
                basket: Basket(currency: "EUR", lines: lines), tierCode: tier,
                campaigns: offers.filter { _ in Bool.random(using: &rng) }, memberSegments: Bool.random(using: &rng) ? [4] : [],
                now: now, availableBalance: balance,
                tierRateOverrideBp: Bool.random(using: &rng) ? Int64.random(in: 0...300, using: &rng) : nil)

            let stored = CompactExplanation.encode(quote)
            let read = try CompactExplanation.decode(Data(stored.utf8), rulesVersion: "v\(seed)")
            #expect(read == quote, "seed \(seed)")
            #expect(read.lines.map { $0.explanation.map(\.fact) } == quote.lines.map { $0.explanation.map(\.fact) }, "seed \(seed)")
            #expect(read.explanation.map(\.fact) == quote.explanation.map(\.fact), "seed \(seed)")
            // What a reader sees through the API is the full form, byte for byte.
            #expect(try fullJSON(read) == fullJSON(quote), "seed \(seed)")
            #expect(stored.utf8.count * 2 < (try fullJSON(quote)).count, "seed \(seed): \(stored.utf8.count) bytes stored")
        }
    }

    @Test("steps known only by their words survive the compact form")
    func textSteps() throws {
        let stored = #"{"x":1,"u":"points","t":[100,100,100,0,1],"l":[["1","S","c",1,100,1,[["t","campaign","odd \"words\"\u0001",9,15000]]]],"b":[["t","rounding","r",null,null]]}"#
        let quote = try CompactExplanation.decode(Data(stored.utf8), rulesVersion: nil)
        #expect(quote.lines[0].explanation == [ExplanationStep(rule: .campaign, detail: "odd \"words\"\u{1}", campaignID: 9, effectBp: 15_000)])
        #expect(quote.explanation == [ExplanationStep(rule: .rounding, detail: "r")])
        #expect(CompactExplanation.encode(quote) == stored)
    }

    @Test("an unknown layout version or step code is an error, not a guess")
    func unknown() {
        #expect(throws: CompactExplanationError.unknownVersion(2)) {
            try CompactExplanation.decode(Data(#"{"x":2,"u":"points","t":[0,0,0,0,0],"l":[],"b":[]}"#.utf8), rulesVersion: nil)
        }
        #expect(throws: CompactExplanationError.malformed("unknown step code zz")) {
            try CompactExplanation.decode(Data(#"{"x":1,"u":"points","t":[0,0,0,0,0],"l":[],"b":[["zz"]]}"#.utf8), rulesVersion: nil)
        }
    }

    @Test("the till's explanation_json is the steps' full JSON, as an encoder writes it")
    func tillJSON() throws {
        let quote = try RulesFixture.quote([RulesFixture.line("1", category: "own_brand", price: 1_234),
                                            RulesFixture.line("2", category: "tobacco", price: 800)],
                                           campaigns: [try campaign(7, name: "Weekend \"double\"")], balance: 900)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for steps in quote.lines.map(\.explanation) + [quote.explanation] {
            #expect(ExplanationJSON.steps(steps) == String(decoding: try encoder.encode(steps), as: UTF8.self))
        }
    }

    @Test("a commit's quote (balance unknown) shows no made-up balance")
    func noSentinel() throws {
        let evaluator = RulesEvaluator(ruleSet: try RulesFixture.ruleSet())
        let quote = try evaluator.quote(
            basket: Basket(currency: "EUR", lines: [RulesFixture.line("1", price: 10_000)]), tierCode: "base",
            campaigns: [], memberSegments: [], now: now, availableBalance: nil)
        #expect(quote.maxRedeemablePoints == 5_000)
        let step = try #require(quote.explanation.first { $0.rule == .redemption })
        #expect(step.detail == "at most 50 % of 10000 redeemable paid at 1 minor per point = 5000; "
            + "the balance is checked when the points are redeemed; max redeemable 5000")
        #expect(!step.detail.contains(String(Int64.max / 4)))
    }

    @Test("only campaigns in force that targeted the basket are listed as not applied, with the reason")
    func notApplied() throws {
        let lines = [RulesFixture.line("1", category: "grocery", price: 1_000)]
        let quote = try RulesFixture.quote(lines, tier: "silver", campaigns: [
            try campaign(1, tiers: ["gold"]),                              // targets the basket, wrong tier: listed
            try campaign(2, segment: true),                                // targets the basket, not in segment: listed
            try campaign(3, categories: ["dairy"], tiers: ["gold"]),       // targets nothing here: left out
            try campaign(4, from: -7_200, to: -3_600),                     // over: left out
            try campaign(5, from: 3_600, to: 7_200),                       // not started: left out
            try campaign(6, categories: ["tobacco"], tiers: ["gold"]),     // targets only what cannot earn: left out
        ])
        let listed = quote.explanation.filter { $0.rule == .campaignNotApplied }
        #expect(listed.map(\.campaignID) == [1, 2])
        #expect(listed.map(\.detail) == ["campaign campaign 1: not for tier silver", "campaign campaign 2: the member is not in its segment"])
    }
}
