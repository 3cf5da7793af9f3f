import Foundation

/// A time-boxed earn boost, validated at creation: a name, `startsAt < endsAt` (half-open: active from `startsAt`
/// up to but not including `endsAt`), a multiplier of ×1...×10 (`RuleLimits.maxMultiplierBp`) or an extra rate
/// of 0...`RuleLimits.maxCampaignExtraRateBp` bp, and restrictions that are either absent (nil = everything) or
/// non-empty sets of valid codes.
///
/// A campaign applies to a line when it is active at the quote's `now`, the member's tier is in `tierCodes`, the
/// member is in its segment if `requiresSegment`, and the line's SKU is in `skus` or its category in `categories`
/// (with neither given, every earning line). Excluded categories never earn, campaign or not.
public struct CampaignMultiplier: Sendable, Hashable {
    /// What a campaign adds. Several campaigns on one line combine as documented on `RulesEvaluator`.
    public enum Effect: Sendable, Hashable {
        /// 20_000 = double points. Adds (bp − 10_000) to the line's campaign multiplier.
        case multiplier(bp: Int64)
        /// Adds this many bp of the paid amount on top, not multiplied by anything.
        case extraRate(bp: Int64)
    }

    public let campaignID: Int64
    public let name: String
    public let startsAt: Date
    public let endsAt: Date
    public let effect: Effect
    public let categories: Set<String>?
    public let skus: Set<String>?
    public let tierCodes: Set<String>?
    public let requiresSegment: Bool
    /// When the campaign was scheduled (nil: known from the start): purchases made before it do not get it, even
    /// inside a window that was backdated.
    public let scheduledAt: Date?
    /// When it was cancelled: purchases made from then on do not get it; those made before still do.
    public let cancelledAt: Date?

    public init(
        campaignID: Int64, name: String, startsAt: Date, endsAt: Date, effect: Effect,
        categories: Set<String>? = nil, skus: Set<String>? = nil, tierCodes: Set<String>? = nil,
        requiresSegment: Bool = false, scheduledAt: Date? = nil, cancelledAt: Date? = nil
    ) throws(CampaignError) {
        guard !name.allSatisfy(\.isWhitespace), name.count <= RuleLimits.maxNameLength else {
            throw .invalidName(campaignID: campaignID)
        }
        guard startsAt < endsAt else { throw .emptyWindow(campaignID: campaignID) }
        switch effect {
        case .multiplier(let bp):
            guard (RuleLimits.bpPerUnit...RuleLimits.maxMultiplierBp).contains(bp) else {
                throw .multiplierOutOfRange(campaignID: campaignID, bp: bp)
            }
        case .extraRate(let bp):
            guard (0...RuleLimits.maxCampaignExtraRateBp).contains(bp) else {
                throw .extraRateOutOfRange(campaignID: campaignID, bp: bp)
            }
        }
        for (field, set) in [("categories", categories), ("skus", skus), ("tier_codes", tierCodes)] {
            guard let set else { continue }
            guard !set.isEmpty, set.allSatisfy(RuleLimits.isValidCode) else {
                throw .invalidRestriction(campaignID: campaignID, field: field)
            }
        }
        self.campaignID = campaignID
        self.name = name
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.effect = effect
        self.categories = categories
        self.skus = skus
        self.tierCodes = tierCodes
        self.requiresSegment = requiresSegment
        self.scheduledAt = scheduledAt
        self.cancelledAt = cancelledAt
    }

    public var multiplierBp: Int64? { if case .multiplier(let bp) = effect { bp } else { nil } }
    public var extraRateBp: Int64? { if case .extraRate(let bp) = effect { bp } else { nil } }

    /// In force at `now`: inside [startsAt, endsAt), already scheduled, not yet cancelled. A purchase is priced
    /// with the campaigns in force at its purchase time, so an offline replay gets what the till would have given.
    public func isActive(at now: Date) -> Bool {
        guard startsAt <= now, now < endsAt else { return false }
        if let scheduledAt, now < scheduledAt { return false }
        if let cancelledAt, now >= cancelledAt { return false }
        return true
    }

    /// Why the campaign does not apply to this member at `now` (nil when it does; lines are checked separately).
    func memberExclusion(tierCode: String, memberSegments: Set<Int64>) -> CampaignExclusion? {
        if let tierCodes, !tierCodes.contains(tierCode) { return .notForTier(tierCode) }
        if requiresSegment, !memberSegments.contains(campaignID) { return .notInSegment }
        return nil
    }

    func matches(_ line: BasketLine) -> Bool {
        if categories == nil, skus == nil { return true }
        return skus?.contains(line.sku) == true || categories?.contains(line.category) == true
    }
}

/// Why a campaign was refused.
public enum CampaignError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidName(campaignID: Int64)
    case emptyWindow(campaignID: Int64)
    case multiplierOutOfRange(campaignID: Int64, bp: Int64)
    case extraRateOutOfRange(campaignID: Int64, bp: Int64)
    /// `field` is "categories", "skus" or "tier_codes".
    case invalidRestriction(campaignID: Int64, field: String)

    public var description: String {
        switch self {
        case .invalidName(let id): "campaign \(id): name must be 1 to \(RuleLimits.maxNameLength) characters"
        case .emptyWindow(let id): "campaign \(id): starts_at must be before ends_at"
        case .multiplierOutOfRange(let id, let bp):
            "campaign \(id): multiplier_bp must be between \(RuleLimits.bpPerUnit) and "
                + "\(RuleLimits.maxMultiplierBp), got \(bp)"
        case .extraRateOutOfRange(let id, let bp):
            "campaign \(id): extra_rate_bp must be between 0 and \(RuleLimits.maxCampaignExtraRateBp), got \(bp)"
        case .invalidRestriction(let id, let field):
            "campaign \(id): \(field) must be absent (no restriction) or a non-empty list of valid codes"
        }
    }
}
