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
    case earningCap = "earning_cap"
}

/// One step of how an award was reached: the fact (rule and numbers) and, made from it, a human sentence and, when
/// it applies, the campaign and the rate or multiplier in basis points. Codable as
/// `{"rule":…, "detail":…, "campaign_id":…, "effect_bp":…}` (absent fields omitted), the full form a reader sees;
/// the ledger stores the compact form (`CompactExplanation`). Two steps are equal when a reader sees the same.
public struct ExplanationStep: Sendable, Hashable, Codable {
    public let fact: ExplanationFact

    public var rule: ExplanationRule { fact.rule }
    public var detail: String { fact.detail }
    public var campaignID: Int64? { fact.campaignID }
    public var effectBp: Int64? { fact.effectBp }

    public init(_ fact: ExplanationFact) { self.fact = fact }

    /// A step known only by its words (read back from a full explanation).
    public init(rule: ExplanationRule, detail: String, campaignID: Int64? = nil, effectBp: Int64? = nil) {
        self.fact = .text(rule: rule, detail: detail, campaignID: campaignID, effectBp: effectBp)
    }

    public static func == (left: Self, right: Self) -> Bool {
        left.rule == right.rule && left.detail == right.detail && left.campaignID == right.campaignID
            && left.effectBp == right.effectBp
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(rule)
        hasher.combine(detail)
        hasher.combine(campaignID)
        hasher.combine(effectBp)
    }

    enum CodingKeys: String, CodingKey {
        case rule, detail
        case campaignID = "campaign_id"
        case effectBp = "effect_bp"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(rule: try container.decode(ExplanationRule.self, forKey: .rule),
                  detail: try container.decode(String.self, forKey: .detail),
                  campaignID: try container.decodeIfPresent(Int64.self, forKey: .campaignID),
                  effectBp: try container.decodeIfPresent(Int64.self, forKey: .effectBp))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rule, forKey: .rule)
        try container.encode(detail, forKey: .detail)
        try container.encodeIfPresent(campaignID, forKey: .campaignID)
        try container.encodeIfPresent(effectBp, forKey: .effectBp)
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
