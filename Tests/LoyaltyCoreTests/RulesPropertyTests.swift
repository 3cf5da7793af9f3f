import Foundation
import LoyaltyCore
import Testing

/// SplitMix64: a seeded generator so a failing random basket can be reproduced from its seed.
struct RulesSeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Rules: properties over random baskets")
struct RulesPropertyTests {
    static let categories = ["grocery", "own_brand", "dairy", "tobacco", "gift_cards"]
    static let skus = ["SKU1", "SKU2", "FEATURED", "PROMO"]

    func randomBasket(_ rng: inout RulesSeededGenerator) -> [BasketLine] {
        (0..<Int.random(in: 1...40, using: &rng)).map { index in
            let quantity = Int64.random(in: 1...5_000, using: &rng)
            let price = Int64.random(in: 0...(Bool.random(using: &rng) ? 500 : 200_000), using: &rng)
            let discount = Int64.random(in: 0...(quantity * price), using: &rng) / (Bool.random(using: &rng) ? 1 : 10)
            return BasketLine(lineID: "L\(index)", sku: Self.skus.randomElement(using: &rng)!,
                              category: Self.categories.randomElement(using: &rng)!, quantity: quantity,
                              unitPriceMinor: price, discountMinor: discount)
        }
    }

    func campaigns(_ rng: inout RulesSeededGenerator) throws -> [CampaignMultiplier] {
        var result: [CampaignMultiplier] = []
        for id in 1...Int64.random(in: 1...3, using: &rng) {
            let effect: CampaignMultiplier.Effect = Bool.random(using: &rng)
                ? .multiplier(bp: Int64.random(in: 10_000...30_000, using: &rng))
                : .extraRate(bp: Int64.random(in: 0...300, using: &rng))
            result.append(try CampaignMultiplier(
                campaignID: id, name: "c\(id)", startsAt: RulesFixture.now.addingTimeInterval(-60),
                endsAt: RulesFixture.now.addingTimeInterval(60), effect: effect,
                categories: Bool.random(using: &rng) ? ["dairy"] : nil))
        }
        return result
    }

    @Test("line awards add up to the total, are never negative, and doubling every quantity never lowers it",
          arguments: [RoundingMode.floorPerLine, .floorPerBasket])
    func properties(rounding: RoundingMode) throws {
        let ruleSet = try RulesFixture.ruleSet(earn: RulesFixture.earn(defaultRateBp: 37, rounding: rounding))
        let tiers = ["base", "silver", "gold", "none"]
        for seed in UInt64(1)...400 {
            var rng = RulesSeededGenerator(state: seed)
            let lines = randomBasket(&rng)
            let tier = tiers.randomElement(using: &rng)!
            let active = try campaigns(&rng)
            let quote = try RulesFixture.quote(lines, tier: tier, ruleSet: ruleSet, campaigns: active)
            #expect(quote.lines.map(\.award).reduce(0, +) == quote.totalAward, "seed \(seed)")
            #expect(quote.lines.allSatisfy { $0.award >= 0 }, "seed \(seed)")

            let doubled = lines.map { line in
                var copy = line
                copy.quantity *= 2
                return copy
            }
            let bigger = try RulesFixture.quote(doubled, tier: tier, ruleSet: ruleSet, campaigns: active)
            #expect(bigger.totalAward >= quote.totalAward, "seed \(seed)")
        }
    }

    @Test("per basket never earns less than per line, and at most one unit more per earning line")
    func basketVersusLine() throws {
        let perLine = try RulesFixture.ruleSet(earn: RulesFixture.earn(defaultRateBp: 37, rounding: .floorPerLine))
        let perBasket = try RulesFixture.ruleSet(earn: RulesFixture.earn(defaultRateBp: 37, rounding: .floorPerBasket))
        for seed in UInt64(1_000)...1_300 {
            var rng = RulesSeededGenerator(state: seed)
            let lines = randomBasket(&rng)
            let byLine = try RulesFixture.quote(lines, ruleSet: perLine)
            let byBasket = try RulesFixture.quote(lines, ruleSet: perBasket)
            #expect(byBasket.totalAward >= byLine.totalAward, "seed \(seed)")
            for (line, basket) in zip(byLine.lines, byBasket.lines) {
                #expect(basket.award - line.award == 0 || basket.award - line.award == 1, "seed \(seed)")
            }
        }
    }
}
