import Foundation

/// Why a campaign in force did not apply to a member whose basket it targeted.
public enum CampaignExclusion: Sendable, Hashable {
    case notForTier(String)
    case notInSegment

    var text: String {
        switch self {
        case .notForTier(let tier): "not for tier \(tier)"
        case .notInSegment: "the member is not in its segment"
        }
    }
}

/// What one explanation step records: the rule and the numbers it used, nothing rendered. The ledger stores facts
/// (`CompactExplanation`); the sentence a reader sees (`detail`) is made from them where it is read, so a stored
/// entry stays small and its wording can improve without rewriting history.
public enum ExplanationFact: Sendable, Hashable {
    case campaignNotApplied(campaignID: Int64, name: String, why: CampaignExclusion)
    case excluded(category: String)
    case minimumBasketNotMet(earningPaidMinor: Int64, minimumMinor: Int64)
    case minimumBasketMet(earningPaidMinor: Int64, minimumMinor: Int64)
    /// A rate set on the tier itself (the database's `earn_rate_override_bp`).
    case tierOwnRate(tier: String, bp: Int64)
    case tierRate(tier: String, bp: Int64)
    case defaultRate(tier: String, bp: Int64)
    /// `overridesCategory`: the line's category had a multiplier too, which the SKU's wins over.
    case skuMultiplier(sku: String, bp: Int64, overridesCategory: String?)
    case categoryMultiplier(category: String, bp: Int64)
    case campaignMultiplier(campaignID: Int64, name: String, bp: Int64)
    case campaignExtraRate(campaignID: Int64, name: String, bp: Int64)
    /// `exact`: the line's exact award as a decimal (`ExactArithmetic.decimal`).
    case roundedPerLine(unit: LedgerUnit, paidMinor: Int64, exact: String, award: Int64)
    /// `award` is `floor` + 1 when the line got a unit left over from the basket total.
    case roundedInBasket(unit: LedgerUnit, paidMinor: Int64, exact: String, floor: Int64, award: Int64)
    case roundingPerLine
    case roundingPerBasket(unit: LedgerUnit, exactTotal: String, total: Int64)
    /// `balance` nil: the quote did not know the balance (a commit: the ledger checks it when it redeems).
    case redemptionCap(shareBp: Int64, redeemablePaidMinor: Int64, pointValueMinor: Int64, cap: Int64,
                       balance: Int64?, minimumPoints: Int64, maxRedeemable: Int64)
    /// The basket earned `uncapped` after rounding, more than `earn.max_award_per_basket` (`cap`): it earns `cap`.
    case basketCapped(unit: LedgerUnit, uncapped: Int64, cap: Int64)
    /// This line's share of a basket cap's cut: it would have earned `award`, it earns `capped`.
    case lineCapped(unit: LedgerUnit, award: Int64, capped: Int64)
    /// A step read back from a full explanation (rule and sentence), not from facts.
    case text(rule: ExplanationRule, detail: String, campaignID: Int64?, effectBp: Int64?)

    public var rule: ExplanationRule {
        switch self {
        case .campaignNotApplied: .campaignNotApplied
        case .excluded: .excluded
        case .minimumBasketNotMet, .minimumBasketMet: .minimumBasket
        case .tierOwnRate, .tierRate: .tierRate
        case .defaultRate: .baseRate
        case .skuMultiplier: .skuMultiplier
        case .categoryMultiplier: .categoryMultiplier
        case .campaignMultiplier, .campaignExtraRate: .campaign
        case .roundedPerLine, .roundedInBasket, .roundingPerLine, .roundingPerBasket: .rounding
        case .redemptionCap: .redemption
        case .basketCapped, .lineCapped: .earningCap
        case .text(let rule, _, _, _): rule
        }
    }

    public var campaignID: Int64? {
        switch self {
        case .campaignNotApplied(let id, _, _), .campaignMultiplier(let id, _, _), .campaignExtraRate(let id, _, _): id
        case .text(_, _, let id, _): id
        default: nil
        }
    }

    public var effectBp: Int64? {
        switch self {
        case .tierOwnRate(_, let bp), .tierRate(_, let bp), .defaultRate(_, let bp), .skuMultiplier(_, let bp, _),
             .categoryMultiplier(_, let bp), .campaignMultiplier(_, _, let bp), .campaignExtraRate(_, _, let bp):
            bp
        case .redemptionCap(let shareBp, _, _, _, _, _, _): shareBp
        case .text(_, _, _, let bp): bp
        default: nil
        }
    }

    /// The sentence a reader sees.
    public var detail: String {
        switch self {
        case .campaignNotApplied(_, let name, let why):
            return "campaign \(name): \(why.text)"
        case .excluded(let category):
            return "category \(category) is excluded from earning"
        case .minimumBasketNotMet(let paid, let minimum):
            return "earning lines paid \(paid), below the minimum basket of \(minimum): nothing earned"
        case .minimumBasketMet(let paid, let minimum):
            return "earning lines paid \(paid), at least the minimum basket of \(minimum)"
        case .tierOwnRate(let tier, let bp):
            return "tier \(tier) earns \(bp) bp of the paid amount (set on the tier)"
        case .tierRate(let tier, let bp):
            return "tier \(tier) earns \(bp) bp of the paid amount"
        case .defaultRate(let tier, let bp):
            return "default rate \(bp) bp of the paid amount (tier \(tier) has no own rate)"
        case .skuMultiplier(let sku, let bp, let category):
            return "SKU \(sku) \(ExactArithmetic.times(bp))" + (category.map { "; wins over category \($0)" } ?? "")
        case .categoryMultiplier(let category, let bp):
            return "category \(category) \(ExactArithmetic.times(bp))"
        case .campaignMultiplier(_, let name, let bp):
            return "campaign \(name) \(ExactArithmetic.times(bp))"
        case .campaignExtraRate(_, let name, let bp):
            return "campaign \(name) adds \(bp) bp of the paid amount"
        case .roundedPerLine(let unit, let paid, let exact, let award):
            return "paid \(paid) gives exactly \(exact) \(Self.unitName(unit)), floored per line to \(award)"
        case .roundedInBasket(let unit, let paid, let exact, let floor, let award):
            let extra = award > floor ? ", + 1 left over from the basket total (largest remainder) = \(award)" : ""
            return "paid \(paid) gives exactly \(exact) \(Self.unitName(unit)); floor \(floor)\(extra)"
        case .roundingPerLine:
            return "floor_per_line: each line floored, the total is the sum of the lines"
        case .roundingPerBasket(let unit, let exactTotal, let total):
            return "floor_per_basket: exact total \(exactTotal) \(Self.unitName(unit)) floored once to \(total), "
                + "split over the lines by largest remainder"
        case .redemptionCap(let shareBp, let redeemable, let pointValue, let cap, let balance, let minimum, let result):
            var detail = "at most \(ExactArithmetic.percent(shareBp)) of \(redeemable) redeemable paid at "
                + "\(pointValue) minor per point = \(cap)"
            detail += balance.map { "; balance \($0)" } ?? "; the balance is checked when the points are redeemed"
            let best = balance.map { min($0, cap) } ?? cap
            detail += result == 0 && best > 0
                ? "; \(best) is below the minimum of \(minimum) points: 0"
                : "; max redeemable \(result)"
            return detail
        case .basketCapped(let unit, let uncapped, let cap):
            return "the basket would earn \(uncapped) \(Self.unitName(unit)), above the cap of \(cap) per basket: it earns "
                + "\(cap), the cut shared over the lines in proportion to their awards (largest remainder)"
        case .lineCapped(let unit, let award, let capped):
            return "capped with the basket: \(award) \(Self.unitName(unit)) become \(capped)"
        case .text(_, let detail, _, _):
            return detail
        }
    }

    static func unitName(_ unit: LedgerUnit) -> String { unit == .points ? "points" : "cashback minor units" }
}
