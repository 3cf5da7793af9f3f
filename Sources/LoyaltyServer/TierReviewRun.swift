import Logging
import LoyaltyCache
import LoyaltyCore
import LoyaltyStore

/// One run of the tier review, as the server's job and `loyalty tiers review` both do it: batches of due members
/// until a batch comes back short or `maximumBatches` ran, each changed member's cached snapshot marked old (tills
/// read the tier from it).
public struct TierReviewRun: Sendable {
    public struct Totals: Sendable, Equatable {
        public var reviewed = 0
        public var upgraded = 0
        public var downgraded = 0
    }

    let tiers: TierStore
    let cache: MemberCache?
    let batchSize: Int
    let maximumBatches: Int
    let logger: Logger

    public init(tiers: TierStore, cache: MemberCache?, batchSize: Int = 500, maximumBatches: Int = 100, logger: Logger) {
        precondition(batchSize > 0 && batchSize <= 10_000 && maximumBatches > 0)
        self.tiers = tiers
        self.cache = cache
        self.batchSize = batchSize
        self.maximumBatches = maximumBatches
        self.logger = logger
    }

    /// Reviews with `policy` (the rules' `review_every_days` and `downgrade_grace_days`). Throws the first failed
    /// batch's error; batches before it stay committed.
    public func run(policy: TierReview) async throws -> Totals {
        var totals = Totals()
        for _ in 0..<maximumBatches {
            let batch = try await tiers.reviewBatch(
                batchSize: batchSize, reviewDays: policy.reviewEveryDays, graceDays: policy.graceDays)
            totals.reviewed += batch.reviewed
            totals.upgraded += batch.upgraded
            totals.downgraded += batch.downgraded
            if let cache { await cache.markOld(batch.changed, logger: logger) }
            if batch.reviewed < batchSize { break }
        }
        return totals
    }
}
