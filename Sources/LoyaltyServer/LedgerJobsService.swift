import Logging
import LoyaltyStore
import ServiceLifecycle

/// Runs the ledger's housekeeping inside the server: pending lots become available after the return window,
/// due lots expire, abandoned holds are released. Each run works in bounded batches until a batch comes back
/// short; several servers may run it at once (the SQL locks members with SKIP LOCKED).
public struct LedgerJobsService: Service {
    public var intervalMs: Int
    public var batchSize: Int
    /// Upper bound on batches per job per run, so one run cannot monopolise a connection.
    public var maximumBatchesPerRun = 100
    let ledger: LedgerStore
    let logger: Logger

    public init(ledger: LedgerStore, intervalMs: Int = 10_000, batchSize: Int = 500, logger: Logger) {
        precondition(intervalMs >= 100 && batchSize > 0 && batchSize <= 10_000)
        self.ledger = ledger
        self.intervalMs = intervalMs
        self.batchSize = batchSize
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await runOnce()
            try? await Task.sleep(for: .milliseconds(intervalMs))
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
                    let result = try await ledger.runJobBatch(job, batchSize: batchSize)
                    total.members! += result.members ?? 0
                    total.lots! += result.lots ?? 0
                    total.amount! += result.amount ?? 0
                    total.holds! += result.holds ?? 0
                    let worked = (result.members ?? result.holds ?? 0)
                    if worked < batchSize { break }
                } catch {
                    logger.error("ledger job failed", metadata: ["job": "\(job.rawValue)", "error": "\(error)"])
                    break
                }
            }
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
        return totals
    }
}
