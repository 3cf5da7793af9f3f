/// Which rule an explanation step is about. The raw values are what the ledger stores.
public enum ExplanationRule: String, Sendable, Hashable, CaseIterable, Codable {
    case baseRate = "base_rate"
    case tierRate = "tier_rate"
    case categoryMultiplier = "category_multiplier"
    case skuMultiplier = "sku_multiplier"
    case campaign
    case campaignNotApplied = "campaign_not_applied"
    case excluded
    case minimumBasket = "minimum_basket"
    case rounding
    case redemption
}

/// One step of how an award was reached: the rule, a human sentence, and when it applies the campaign and the
/// rate or multiplier in basis points. Codable as `{"rule":…, "detail":…, "campaign_id":…, "effect_bp":…}`
/// (absent fields omitted), so a stored ledger entry can say which rule gave what.
public struct ExplanationStep: Sendable, Hashable, Codable {
    public let rule: ExplanationRule
    public let detail: String
    public let campaignID: Int64?
    public let effectBp: Int64?

    public init(rule: ExplanationRule, detail: String, campaignID: Int64? = nil, effectBp: Int64? = nil) {
        self.rule = rule
        self.detail = detail
        self.campaignID = campaignID
        self.effectBp = effectBp
    }

    enum CodingKeys: String, CodingKey {
        case rule, detail
        case campaignID = "campaign_id"
        case effectBp = "effect_bp"
    }
}

/// What one basket line earns. `award` is whole units of the quote's unit; a return of part of the line takes
/// back floor(award × returned / quantity), cumulatively, so a full return takes back exactly `award`.
public struct LineQuote: Sendable, Hashable, Codable {
    public let lineID: String
    public let sku: String
    public let category: String
    public let quantity: Int64
    public let paidMinor: Int64
    public let award: Int64
    public let explanation: [ExplanationStep]

    enum CodingKeys: String, CodingKey {
        case lineID = "line_id"
        case sku, category, quantity
        case paidMinor = "paid_minor"
        case award, explanation
    }
}

/// The result of evaluating a basket, deterministic for the same rule set, inputs and `now`.
///
/// Guarantees: line awards are ≥ 0 and add up to `totalAward`; lines are in basket order; `maxRedeemablePoints`
/// is 0 or at least the program's minimum and never more than the available balance.
public struct Quote: Sendable, Hashable, Codable {
    public let unit: LedgerUnit
    public let lines: [LineQuote]
    public let totalAward: Int64
    /// Sum of every line's quantity × price − discount.
    public let paidTotalMinor: Int64
    /// Paid by lines that earn (not in an excluded category); compared with the minimum basket.
    public let earningPaidMinor: Int64
    /// Paid by lines that points may pay for (not in a non-redeemable category); the redemption cap's base.
    public let redeemablePaidMinor: Int64
    public let maxRedeemablePoints: Int64
    public let rulesVersion: String?
    /// Basket-level steps: minimum basket, rounding, campaigns not applied, redemption cap.
    public let explanation: [ExplanationStep]

    /// (line id, quantity, award) of every line, for recording what a later return takes back.
    public var lineAwards: [(lineID: String, quantity: Int64, award: Int64)] {
        lines.map { ($0.lineID, $0.quantity, $0.award) }
    }

    enum CodingKeys: String, CodingKey {
        case unit, lines
        case totalAward = "total_award"
        case paidTotalMinor = "paid_total_minor"
        case earningPaidMinor = "earning_paid_minor"
        case redeemablePaidMinor = "redeemable_paid_minor"
        case maxRedeemablePoints = "max_redeemable_points"
        case rulesVersion = "rules_version"
        case explanation
    }
}

/// Why a quote could not be made.
public enum QuoteError: Error, Equatable, Sendable, CustomStringConvertible {
    case basket(BasketError)
    case negativeBalance(Int64)
    case duplicateCampaign(Int64)
    /// A tier's own rate outside 0...the earn unit's rate limit.
    case invalidTierRate(Int64)
    /// An intermediate or the total award does not fit in 64 bits (only with absurd prices and rates).
    case overflow(String)

    public var description: String {
        switch self {
        case .basket(let error): error.description
        case .negativeBalance(let value): "available balance must not be negative, got \(value)"
        case .duplicateCampaign(let id): "campaign \(id) was passed twice: pass each active campaign once"
        case .invalidTierRate(let bp): "the tier's own earn rate must be between 0 and the rate limit, got \(bp) bp"
        case .overflow(let what): "\(what) does not fit in a 64-bit amount"
        }
    }
}
