import Logging
import LoyaltyCache
import LoyaltyStore
import ServiceLifecycle

/// Runs the ledger's housekeeping inside the server: pending lots become available after the return window,
/// due lots expire, abandoned holds are released. Each run works in bounded batches until a batch comes back
/// short; several servers may run it at once (the SQL locks members with SKIP LOCKED). Members a batch changed get
/// their cached balances marked old, so a till does not go on showing pending points as pending or expired ones.
public struct LedgerJobsService: Service {
    public var intervalMs: Int
    public var batchSize: Int
    /// Upper bound on batches per job per run, so one run cannot monopolise a connection.
    public var maximumBatchesPerRun = 100
    let ledger: LedgerStore
    let tiers: TierStore?
    let rules: CurrentRules?
    let cache: MemberCache?
    let logger: Logger

    public init(
        ledger: LedgerStore, tiers: TierStore? = nil, rules: CurrentRules? = nil, cache: MemberCache? = nil,
        intervalMs: Int = 10_000, batchSize: Int = 500, logger: Logger
    ) {
        precondition(intervalMs >= 100 && batchSize > 0 && batchSize <= 10_000)
        self.ledger = ledger
        self.cache = cache
        self.tiers = tiers
        self.rules = rules
        self.intervalMs = intervalMs
        self.batchSize = batchSize
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await runOnce()
            // The wait ends at once on shutdown: a 10 s sleep would hold up SIGTERM.
            try? await cancelWhenGracefulShutdown { [intervalMs] in try await Task.sleep(for: .milliseconds(intervalMs)) }
        }
    }

    /// Tier review with the policy of the rules in force: members not reviewed for `review_every_days` may drop
    /// one rank once their last change is older than the grace period. Members it changed get their cached
    /// snapshots marked old.
    func reviewTiers() async {
        guard let tiers, let rules else { return }
        let review = TierReviewRun(tiers: tiers, cache: cache, batchSize: batchSize, maximumBatches: maximumBatchesPerRun, logger: logger)
        do {
            let totals = try await review.run(policy: rules.current.ruleSet.tierReview)
            if totals.reviewed > 0 {
                logger.info("tier review ran", metadata: [
                    "reviewed": "\(totals.reviewed)", "upgraded": "\(totals.upgraded)", "downgraded": "\(totals.downgraded)",
                ])
            }
        } catch {
            logger.error("tier review failed", metadata: ["error": "\(error)"])
        }
    }

    /// One pass over every job; returns what each did.
    @discardableResult
    public func runOnce() async -> [LedgerJob: JobBatchResult] {
        var totals: [LedgerJob: JobBatchResult] = [:]
        for job in LedgerJob.allCases {
            var total = JobBatchResult(members: 0, lots: 0, amount: 0, holds: 0)
            for _ in 0..<maximumBatchesPerRun {
                do {
                    let before = cache == nil ? 0 : try await ledger.newestEntryID()
                    let result = try await LedgerMetrics.measure("job_\(job.rawValue)") { () async throws(LedgerStoreError) in
                        try await ledger.runJobBatch(job, batchSize: batchSize)
                    }
                    total.members! += result.members ?? 0
                    total.lots! += result.lots ?? 0
                    total.amount! += result.amount ?? 0
                    total.holds! += result.holds ?? 0
                    // Stop on an empty batch, not a short one: a batch is short when another server holds some of
                    // its members (SKIP LOCKED), and the members behind them are still due.
                    let worked = (result.lots ?? result.holds ?? 0)
                    if worked == 0 { break }
                    if let cache {
                        await cache.markOld(try await ledger.membersChanged(by: job, after: before), logger: logger)
                    }
                } catch {
                    logger.error("ledger job failed", metadata: ["job": "\(job.rawValue)", "error": "\(error)"])
                    break
                }
            }
            JobMetrics.recordLedgerJob(
                job.rawValue, items: Int64((total.lots ?? 0) + (total.holds ?? 0)), amount: total.amount ?? 0)
            if (total.lots ?? 0) > 0 || (total.holds ?? 0) > 0 {
                logger.info(
                    "ledger job ran",
                    metadata: [
                        "job": "\(job.rawValue)", "members": "\(total.members ?? 0)", "lots": "\(total.lots ?? 0)",
                        "amount": "\(total.amount ?? 0)", "holds": "\(total.holds ?? 0)",
                    ])
            }
            totals[job] = total
        }
        await reviewTiers()
        return totals
    }
}
