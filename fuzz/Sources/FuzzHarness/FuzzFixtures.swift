import Foundation
import LoyaltyCore
import POSProtocol

/// Fixed inputs shared by the payload harness and the corpus generator, so the seeds reach the deep checks.
public enum FuzzFixtures {
    public static let terminalID = "fuzz-till-1"
    public static let terminalSecret: [UInt8] = Array(0..<32)
    public static let clientNonce: [UInt8] = Array(repeating: 0x11, count: 24)

    public static func authMessage(serverNonce: [UInt8], salt: [UInt8]) -> [UInt8] {
        TerminalAuth.authMessage(terminalID: terminalID, clientNonce: clientNonce, serverNonce: serverNonce, salt: salt)
    }

    /// The program of rules/program.yaml, built in code (the fuzz package does not load YAML).
    public static let ruleSet: RuleSet = try! RuleSet(
        name: "Default retail program", currency: "EUR",
        earn: EarnRules(
            unit: .points, defaultRateBp: 100, tierRatesBp: ["base": 100, "silver": 125, "gold": 150],
            categoryMultipliersBp: ["own_brand": 20_000], skuMultipliersBp: ["2000000000015": 30_000],
            excludedCategories: ["tobacco", "gift_cards", "lottery"], minimumBasketMinor: 100, rounding: .floorPerLine),
        redemption: RedemptionRules(pointValueMinor: 1, minimumPoints: 500, maxShareOfBasketBp: 5_000,
                                    nonRedeemableCategories: ["tobacco", "gift_cards", "lottery"]),
        returnWindowDays: 14, expiryDays: 730, tierReview: TierReview(reviewEveryDays: 30, graceDays: 30))

    /// Evaluation time of every fuzzed quote, inside the window of the active campaigns below.
    public static let now = Date(timeIntervalSince1970: 1_750_000_000)

    /// An active multiplier on a category, an active extra rate for one tier, and an ended campaign.
    public static let campaigns: [CampaignMultiplier] = [
        try! CampaignMultiplier(
            campaignID: 1, name: "double dairy", startsAt: now.addingTimeInterval(-86_400),
            endsAt: now.addingTimeInterval(86_400), effect: .multiplier(bp: 20_000), categories: ["dairy"]),
        try! CampaignMultiplier(
            campaignID: 2, name: "gold bonus", startsAt: now.addingTimeInterval(-86_400),
            endsAt: now.addingTimeInterval(86_400), effect: .extraRate(bp: 250), tierCodes: ["gold"]),
        try! CampaignMultiplier(
            campaignID: 3, name: "last week", startsAt: now.addingTimeInterval(-14 * 86_400),
            endsAt: now.addingTimeInterval(-7 * 86_400), effect: .multiplier(bp: 50_000)),
    ]

    /// Tier codes the fuzzer picks from: listed rates, and one the rules do not list (default rate).
    public static let tierCodes = ["base", "silver", "gold", "bronze"]
}
