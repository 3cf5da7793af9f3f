import Foundation
import Logging
import LoyaltyStore
import ServiceLifecycle

/// Pays running bonus campaigns in bounded batches until each is done, logging progress (members paid of the
/// segment, rate, ETA). All state is in PostgreSQL (campaign_awards), so a server that dies mid-run loses at most
/// its uncommitted batch and any server picks the run up again; concurrent runners take turns on the campaign row.
public struct CampaignRunner: Service {
    public static let batchSize = 500

    let store: CampaignStore
    let logger: Logger
    let idlePoll: Duration
    let actor: String

    public init(store: CampaignStore, logger: Logger, idlePoll: Duration = .seconds(2), actor: String = "campaign-runner") {
        self.store = store
        self.logger = logger
        self.idlePoll = idlePoll
        self.actor = actor
    }

    /// Stops between batches on graceful shutdown (a batch in the database finishes); an idle wait ends at once.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let worked = await runOnce()
            if !worked { try? await cancelWhenGracefulShutdown { try await Task.sleep(for: idlePoll) } }
        }
    }

    /// Runs every running campaign to its end (or until cancelled). Returns whether there was anything to do.
    @discardableResult
    public func runOnce() async -> Bool {
        let campaigns: [Int64]
        do { campaigns = try await store.runningBonusCampaigns() } catch {
            logger.warning("could not look for running campaigns", metadata: ["error": "\(PostgresErrorText.describe(error))"])
            return false
        }
        for campaignID in campaigns {
            var lastLog = ContinuousClock.now
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let progress: CampaignProgress
                do { progress = try await store.awardBatch(campaignID, batchSize: Self.batchSize, actor: actor) } catch {
                    logger.error("campaign batch failed; it will be retried", metadata: ["campaign": "\(campaignID)", "error": "\(error)"])
                    break
                }
                if ContinuousClock.now - lastLog > .seconds(5) || progress.done == true {
                    lastLog = ContinuousClock.now
                    logger.info("campaign progress", metadata: [
                        "campaign": "\(campaignID)", "paid": "\(progress.awardedMembers)", "of": "\(progress.targetMembers ?? 0)",
                        "points": "\(progress.awardedPoints)", "rate_per_s": "\(Int(progress.ratePerS ?? 0))",
                        "eta_s": "\(Int(progress.etaS ?? 0))", "state": "\(progress.state)",
                        "reason": "\(progress.finishReason ?? "")",
                    ])
                }
                if progress.done == true { break }
            }
        }
        return !campaigns.isEmpty
    }
}
