import Foundation
import Logging
import LoyaltyCache
import LoyaltyStore
import Metrics
import ServiceLifecycle

/// Pays bonus campaigns in bounded batches: blasts a marketer triggered (until each is done, logging progress:
/// members paid of the segment, rate, ETA), and birthday and welcome campaigns on a schedule (a pass every
/// `occasionPoll`). All state is in PostgreSQL (campaign_awards), so a server that dies mid-run loses at most its
/// uncommitted batch and any server picks the run up again; concurrent runners take turns on the campaign row.
/// Members a batch paid get their cached balance marked old, so a till does not show the balance before the bonus.
public struct CampaignRunner: Service {
    public static let batchSize = 500

    let store: CampaignStore
    let cache: MemberCache?
    let logger: Logger
    let idlePoll: Duration
    let occasionPoll: Duration
    let actor: String
    let metricsFactory: any MetricsFactory

    public init(
        store: CampaignStore, cache: MemberCache? = nil, logger: Logger, idlePoll: Duration = .seconds(2),
        occasionPoll: Duration = .seconds(60), actor: String = "campaign-runner",
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.metricsFactory = metricsFactory
        self.store = store
        self.cache = cache
        self.logger = logger
        self.idlePoll = idlePoll
        self.occasionPoll = occasionPoll
        self.actor = actor
    }

    /// Stops between batches on graceful shutdown (a batch in the database finishes); an idle wait ends at once.
    public func run() async throws {
        var nextOccasionPass = ContinuousClock.now
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            var worked = await runOnce()
            if ContinuousClock.now >= nextOccasionPass {
                nextOccasionPass = ContinuousClock.now + occasionPoll
                worked = await runOccasionsOnce() || worked
            }
            if !worked { try? await cancelWhenGracefulShutdown { try await Task.sleep(for: idlePoll) } }
        }
    }

    /// Runs every running blast to its end (or until cancelled). Returns whether any batch got through: a run
    /// whose batches all fail counts as nothing done, so `run` waits `idlePoll` before trying again instead of
    /// retrying in a tight loop.
    @discardableResult
    public func runOnce() async -> Bool {
        let campaigns: [Int64]
        do { campaigns = try await store.runningBonusCampaigns() } catch {
            logger.warning("could not look for running campaigns", metadata: ["error": "\(PostgresErrorText.describe(error))"])
            return false
        }
        var worked = false
        for campaignID in campaigns {
            let outcome = await runBatches(campaignID, kind: "bonus") { () async throws(LedgerStoreError) in
                try await store.awardBatch(campaignID, batchSize: Self.batchSize, actor: actor)
            }
            worked = worked || outcome.batches > 0
        }
        return worked
    }

    /// One scheduled pass: multiplier campaigns whose window ended are marked finished, then the birthday and
    /// welcome campaigns whose window is open pay whoever is due now.
    /// Returns whether anyone was paid. `now` is for tests (the database's clock otherwise).
    @discardableResult
    public func runOccasionsOnce(now: Date? = nil) async -> Bool {
        do {
            let ended = try await store.finishEndedMultipliers()
            if ended > 0 { logger.info("multiplier campaigns finished at the end of their window", metadata: ["campaigns": "\(ended)"]) }
        } catch {
            logger.warning("could not finish ended multiplier campaigns", metadata: ["error": "\(PostgresErrorText.describe(error))"])
        }
        let campaigns: [Int64]
        do { campaigns = try await store.liveOccasionCampaigns(now: now) } catch {
            logger.warning("could not look for birthday and welcome campaigns", metadata: ["error": "\(PostgresErrorText.describe(error))"])
            return false
        }
        var paidAny = false
        for campaignID in campaigns {
            let outcome = await runBatches(campaignID, kind: "occasion") { () async throws(LedgerStoreError) in
                try await store.occasionBatch(campaignID, batchSize: Self.batchSize, actor: actor, now: now)
            }
            paidAny = paidAny || outcome.paid > 0
        }
        return paidAny
    }

    /// Calls `batch` until it says the run is over (blast) or nothing more is due (occasion), refreshing the cache
    /// after each batch and logging progress every 5 s. Returns how many members were paid and how many batches
    /// got through (a failed batch ends the loop; it is retried on a later pass).
    @discardableResult
    private func runBatches(
        _ campaignID: Int64, kind: String, _ batch: () async throws(LedgerStoreError) -> CampaignProgress
    ) async -> (paid: Int, batches: Int) {
        var lastLog = ContinuousClock.now
        var paidTotal = 0
        var batches = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let progress: CampaignProgress
            do { progress = try await LedgerMetrics.measure("campaign_\(kind)", batch) } catch {
                logger.error("campaign batch failed; it will be retried", metadata: ["campaign": "\(campaignID)", "error": "\(error)"])
                break
            }
            batches += 1
            paidTotal += progress.paid ?? 0
            JobMetrics.recordCampaign(campaignID, kind: kind, progress, factory: metricsFactory)
            if let cache { await cache.markOld(progress.paidMemberVersions, logger: logger) }
            // A blast goes on until its run is over; a birthday or welcome pass until nothing more is due now.
            let finished = kind == "bonus" ? progress.done == true : progress.more != true
            if ContinuousClock.now - lastLog > .seconds(5) || (finished && paidTotal > 0) {
                lastLog = ContinuousClock.now
                logger.info("campaign progress", metadata: [
                    "campaign": "\(campaignID)", "kind": "\(kind)", "paid": "\(progress.awardedMembers)",
                    "of": "\(progress.targetMembers.map(String.init) ?? "-")", "points": "\(progress.awardedPoints)",
                    "rate_per_s": "\(Int(progress.ratePerS ?? 0))", "eta_s": "\(progress.etaS.map { String(Int($0)) } ?? "-")",
                    "state": "\(progress.state)", "reason": "\(progress.finishReason ?? "")",
                ])
            }
            if finished { break }
        }
        return (paidTotal, batches)
    }
}
