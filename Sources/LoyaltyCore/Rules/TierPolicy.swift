import Foundation

/// One rung of the tier ladder (the ladder itself is configured in the database). `rank` orders tiers (higher =
/// better); `qualificationSpendMinor` is the spend, in minor units over the last `windowDays` days, that earns it.
public struct TierLevel: Sendable, Hashable, Codable {
    public let code: String
    public let rank: Int
    public let qualificationSpendMinor: Int64
    public let windowDays: Int

    public init(code: String, rank: Int, qualificationSpendMinor: Int64, windowDays: Int) {
        self.code = code
        self.rank = rank
        self.qualificationSpendMinor = qualificationSpendMinor
        self.windowDays = windowDays
    }
}

/// Why a tier ladder or a tier review was refused.
public enum TierPolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    case noTiers
    case tooManyTiers(count: Int)
    case invalidCode(String)
    case duplicateCode(String)
    case duplicateRank(rank: Int, first: String, second: String)
    case negativeRank(code: String, rank: Int)
    case spendOutOfRange(code: String, value: Int64)
    case windowOutOfRange(code: String, value: Int)
    case lowestTierNotFree(code: String, spend: Int64)
    case thresholdsNotIncreasing(lower: String, lowerSpend: Int64, higher: String, higherSpend: Int64)
    case reviewEveryDaysOutOfRange(Int)
    case graceDaysOutOfRange(Int)
    case unknownTier(String)

    public var description: String {
        switch self {
        case .noTiers: "at least one tier is needed"
        case .tooManyTiers(let count): "at most \(RuleLimits.maxTiers) tiers, got \(count)"
        case .invalidCode(let code):
            "tier code \"\(code)\" must be lower_snake_case: a letter, then letters, digits or _, at most "
                + "\(RuleLimits.maxTierCodeLength) characters"
        case .duplicateCode(let code): "tier \(code) is defined twice"
        case .duplicateRank(let rank, let first, let second): "tiers \(first) and \(second) both have rank \(rank)"
        case .negativeRank(let code, let rank): "tier \(code): rank must be 0 or more, got \(rank)"
        case .spendOutOfRange(let code, let value):
            "tier \(code): must be between 0 and \(RuleLimits.maxQualificationSpendMinor), got \(value)"
        case .windowOutOfRange(let code, let value):
            "tier \(code): must be between 1 and \(RuleLimits.maxTierWindowDays), got \(value)"
        case .lowestTierNotFree(let code, let spend):
            "the lowest tier \(code) must have qualification spend 0 so every member has a tier, got \(spend)"
        case .thresholdsNotIncreasing(let lower, let lowerSpend, let higher, let higherSpend):
            "tier \(higher) (spend \(higherSpend)) ranks above \(lower) (spend \(lowerSpend)) "
                + "so its qualification spend must be higher"
        case .reviewEveryDaysOutOfRange(let value):
            "must be between 1 and \(RuleLimits.maxReviewEveryDays), got \(value)"
        case .graceDaysOutOfRange(let value): "must be between 0 and \(RuleLimits.maxGraceDays), got \(value)"
        case .unknownTier(let code): "unknown tier \(code)"
        }
    }
}

/// What a tier review decided, and why.
public struct TierDecision: Sendable, Hashable, Codable {
    /// Keep the tier, move up (to the qualifying tier), or move down one rank.
    public enum Action: String, Sendable, Hashable, Codable { case keep, upgrade, downgrade }

    public let action: Action
    public let from: String
    public let to: String
    /// The tier the spend alone qualifies for.
    public let qualifyingTier: String
    /// Set when the member no longer qualifies but the downgrade has to wait: the earliest moment it may happen.
    public let downgradeNotBefore: Date?
    public let reason: String
}

/// A tier ladder and review policy, validated: codes lower_snake_case and unique, ranks unique and ≥ 0, the lowest
/// tier free (threshold 0, so every member has a tier), thresholds strictly increasing with rank (the same rules as
/// the database's `tiers` table). Build one with `RuleSet.tierPolicy(tiers:)`.
///
/// Review rules (the same as the database's review job): a member is reviewed every `reviewEveryDays` days; the
/// caller calls `reviewDecision` at review time. A member whose spend qualifies for a higher tier is upgraded at
/// once (possibly several ranks). One whose spend no longer qualifies keeps the tier until `graceDays` days after
/// the last tier change, and is then moved down exactly one rank per review (recording the change restarts the
/// grace period). A day is 86,400 seconds.
public struct TierPolicy: Sendable, Hashable {
    /// Sorted by rank, lowest first.
    public let tiers: [TierLevel]
    public let reviewEveryDays: Int
    public let graceDays: Int

    public init(tiers: [TierLevel], reviewEveryDays: Int, graceDays: Int) throws(TierPolicyError) {
        let errors = Self.problems(tiers: tiers, reviewEveryDays: reviewEveryDays, graceDays: graceDays)
        if let first = errors.first { throw first }
        self.tiers = tiers.sorted { $0.rank < $1.rank }
        self.reviewEveryDays = reviewEveryDays
        self.graceDays = graceDays
    }

    /// Every problem of a tier list and policy, in a stable order (empty when valid).
    public static func problems(tiers: [TierLevel], reviewEveryDays: Int, graceDays: Int) -> [TierPolicyError] {
        var errors: [TierPolicyError] = []
        if tiers.isEmpty { errors.append(.noTiers) }
        if tiers.count > RuleLimits.maxTiers { errors.append(.tooManyTiers(count: tiers.count)) }
        var codes = Set<String>()
        var rankOwner: [Int: String] = [:]
        for tier in tiers {
            if !RuleLimits.isValidTierCode(tier.code) { errors.append(.invalidCode(tier.code)) }
            if !codes.insert(tier.code).inserted { errors.append(.duplicateCode(tier.code)) }
            if tier.rank < 0 { errors.append(.negativeRank(code: tier.code, rank: tier.rank)) }
            if let first = rankOwner[tier.rank] {
                errors.append(.duplicateRank(rank: tier.rank, first: first, second: tier.code))
            } else {
                rankOwner[tier.rank] = tier.code
            }
            if !(0...RuleLimits.maxQualificationSpendMinor).contains(tier.qualificationSpendMinor) {
                errors.append(.spendOutOfRange(code: tier.code, value: tier.qualificationSpendMinor))
            }
            if !(1...RuleLimits.maxTierWindowDays).contains(tier.windowDays) {
                errors.append(.windowOutOfRange(code: tier.code, value: tier.windowDays))
            }
        }
        let sorted = tiers.sorted { ($0.rank, $0.code) < ($1.rank, $1.code) }
        if let lowest = sorted.first, lowest.qualificationSpendMinor != 0 {
            errors.append(.lowestTierNotFree(code: lowest.code, spend: lowest.qualificationSpendMinor))
        }
        for (lower, higher) in zip(sorted, sorted.dropFirst())
        where lower.rank != higher.rank && higher.qualificationSpendMinor <= lower.qualificationSpendMinor {
            errors.append(.thresholdsNotIncreasing(
                lower: lower.code, lowerSpend: lower.qualificationSpendMinor,
                higher: higher.code, higherSpend: higher.qualificationSpendMinor))
        }
        if !(1...RuleLimits.maxReviewEveryDays).contains(reviewEveryDays) {
            errors.append(.reviewEveryDaysOutOfRange(reviewEveryDays))
        }
        if !(0...RuleLimits.maxGraceDays).contains(graceDays) { errors.append(.graceDaysOutOfRange(graceDays)) }
        return errors
    }

    public func tier(code: String) -> TierLevel? { tiers.first { $0.code == code } }

    /// The highest-ranked tier whose threshold is at most `spendMinor` (negative spend counts as 0, so the lowest
    /// tier always qualifies). Use when every tier counts spend over the same window.
    public func qualifyingTier(spendMinor: Int64) -> TierLevel {
        qualifyingTier { _ in spendMinor }
    }

    /// As `qualifyingTier(spendMinor:)`, with the spend over each tier's own `windowDays` given by `spendFor`.
    public func qualifyingTier(spendFor: (TierLevel) -> Int64) -> TierLevel {
        tiers.last { max(0, spendFor($0)) >= $0.qualificationSpendMinor } ?? tiers[0]
    }

    /// The review decision for a member in tier `current` with `spendMinor` qualifying spend, whose tier last changed
    /// at `lastChangeAt`. `graceDays` defaults to the policy's.
    public func reviewDecision(
        current: String, spendMinor: Int64, now: Date, lastChangeAt: Date, graceDays: Int? = nil
    ) throws(TierPolicyError) -> TierDecision {
        try reviewDecision(current: current, spendFor: { _ in spendMinor }, now: now, lastChangeAt: lastChangeAt,
                           graceDays: graceDays)
    }

    /// As `reviewDecision(current:spendMinor:...)` with per-tier spend windows.
    public func reviewDecision(
        current: String, spendFor: (TierLevel) -> Int64, now: Date, lastChangeAt: Date, graceDays: Int? = nil
    ) throws(TierPolicyError) -> TierDecision {
        guard let held = tier(code: current) else { throw .unknownTier(current) }
        let grace = graceDays ?? self.graceDays
        guard (0...RuleLimits.maxGraceDays).contains(grace) else { throw .graceDaysOutOfRange(grace) }
        let target = qualifyingTier(spendFor: spendFor)
        let spend = spendFor(target)
        if target.rank > held.rank {
            return TierDecision(
                action: .upgrade, from: held.code, to: target.code, qualifyingTier: target.code,
                downgradeNotBefore: nil,
                reason: "spend \(spend) reaches \(target.code) (\(target.qualificationSpendMinor)): upgrade at once")
        }
        if target.rank == held.rank {
            return TierDecision(
                action: .keep, from: held.code, to: held.code, qualifyingTier: target.code, downgradeNotBefore: nil,
                reason: "spend \(spend) still qualifies for \(held.code)")
        }
        let notBefore = lastChangeAt.addingTimeInterval(Double(grace) * 86_400)
        if now < notBefore {
            return TierDecision(
                action: .keep, from: held.code, to: held.code, qualifyingTier: target.code,
                downgradeNotBefore: notBefore,
                reason: "spend \(spend) qualifies only for \(target.code); \(held.code) is kept for "
                    + "\(grace) grace days after the last change")
        }
        // One rank down per review, never below what the spend qualifies for.
        let below = tiers.last { $0.rank < held.rank } ?? target
        return TierDecision(
            action: .downgrade, from: held.code, to: below.code, qualifyingTier: target.code,
            downgradeNotBefore: nil,
            reason: "spend \(spend) qualifies only for \(target.code) after review and grace: down one rank")
    }
}
