/// The bounds every rule set, basket and campaign is checked against. A value outside them is refused, never
/// clamped, so a typo (an extra zero in a rate) cannot silently give away ten times the points.
public enum RuleLimits {
    /// 10_000 basis points = 100 % (or ×1 for a multiplier).
    public static let bpPerUnit: Int64 = 10_000

    /// Highest earn rate for points: 100_000 bp = 10 points per minor unit (1,000 points per euro).
    public static let maxPointsRateBp: Int64 = 100_000
    /// Highest earn rate for cashback: 10_000 bp = 100 % of the paid amount back.
    public static let maxCashbackRateBp: Int64 = 10_000
    /// Highest category, SKU or campaign multiplier: 100_000 bp = ×10.
    public static let maxMultiplierBp: Int64 = 100_000
    /// Highest extra rate a campaign may add: as for points rates.
    public static let maxCampaignExtraRateBp: Int64 = 100_000

    /// Most lines in one basket.
    public static let maxBasketLines = 500
    /// Quantity of one basket line: at least one item, at most this many.
    public static let maxLineQuantity: Int64 = 10_000

    /// Highest minimum basket: 100,000,000 minor units (one million in a two-decimal currency).
    public static let maxMinimumBasketMinor: Int64 = 100_000_000
    /// The largest per-basket earning cap (points or cashback minor units).
    public static let maxAwardPerBasket: Int64 = 1_000_000_000
    /// Highest value of one point in minor units (a point worth at most 100.00).
    public static let maxPointValueMinor: Int64 = 10_000
    /// Highest minimum number of points to redeem.
    public static let maxMinimumPoints: Int64 = 1_000_000_000
    /// Highest tier qualification spend: 10^12 minor units.
    public static let maxQualificationSpendMinor: Int64 = 1_000_000_000_000

    /// Return window for pending earnings, in days.
    public static let maxReturnWindowDays = 365
    /// Expiry of earned points, in days (0 = never expires).
    public static let maxExpiryDays = 3_650
    /// Days between tier reviews, and a tier's spend window, at least 1.
    public static let maxReviewEveryDays = 3_650
    public static let maxTierWindowDays = 3_660
    /// Grace days before a downgrade.
    public static let maxGraceDays = 3_650

    /// Most tiers in a ladder.
    public static let maxTiers = 20
    /// Most entries in each of: tier rates, category multipliers, SKU multipliers, category lists.
    public static let maxListEntries = 10_000
    /// Longest program name.
    public static let maxNameLength = 200
    /// Longest code (category, SKU, line id).
    public static let maxCodeLength = 64
    /// Longest tier code (as in the database's `tiers.code`).
    public static let maxTierCodeLength = 32

    /// True when `code` is 1...maxCodeLength printable ASCII characters without spaces, the only form accepted for
    /// tier codes, categories and SKUs (so a code never differs from another by invisible characters).
    public static func isValidCode(_ code: String) -> Bool {
        guard !code.isEmpty, code.utf8.count <= maxCodeLength else { return false }
        return code.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// True when `code` is a tier code as the database accepts it: lower_snake_case, a letter first, at most
    /// `maxTierCodeLength` characters.
    public static func isValidTierCode(_ code: String) -> Bool {
        let bytes = Array(code.utf8)
        guard let first = bytes.first, (0x61...0x7A).contains(first), bytes.count <= maxTierCodeLength else {
            return false
        }
        return bytes.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    /// True when `code` is an ISO 4217 style code: exactly three upper-case ASCII letters.
    public static func isValidCurrency(_ code: String) -> Bool {
        code.utf8.count == 3 && code.utf8.allSatisfy { $0 >= 0x41 && $0 <= 0x5A }
    }
}

/// How exact (fractional) awards become whole units.
///
/// - `floorPerLine`: each line's exact award is floored on its own; the total is the sum of the line awards.
/// - `floorPerBasket`: the exact awards of all lines are summed and floored once; that total is then split over
///   the lines: each line gets its own floor, and the units left over go one each to the lines with the largest
///   fractional remainders (ties: the earlier line in the basket). Lines always add up to the total.
public enum RoundingMode: String, Sendable, Hashable, CaseIterable, Codable {
    case floorPerLine = "floor_per_line"
    case floorPerBasket = "floor_per_basket"
}
