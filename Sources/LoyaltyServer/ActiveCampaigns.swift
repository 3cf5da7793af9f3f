import Foundation
import Logging
import LoyaltyCore
import LoyaltyStore
import ServiceLifecycle
import Synchronization

/// The multiplier campaigns the checkout applies, kept in memory so a Quote or Commit costs no campaign query.
/// `refresh()` reads one version row and reloads the campaigns only when it moved; the service below calls it every
/// `pollInterval`, so a marketer's change reaches every till within about that long.
public final class ActiveCampaigns: Sendable {
    /// Finished campaigns stay loaded this long, for offline purchases made while they ran.
    public static let lookbackDays = 30

    struct State {
        var version: Int64 = -1
        var campaigns: [CampaignMultiplier] = []
    }

    private let state = Mutex(State())
    let store: CampaignStore?
    let logger: Logger

    /// - Parameter store: nil serves no campaigns (tests of the checkout without them).
    public init(store: CampaignStore?, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public var current: [CampaignMultiplier] { state.withLock { $0.campaigns } }
    /// The `campaigns_version` the loaded campaigns are of (-1 before the first load).
    public var version: Int64 { state.withLock { $0.version } }

    /// Reloads when the campaigns changed. A failure keeps what is loaded (and says so): tills keep pricing.
    public func refresh() async {
        guard let store else { return }
        do {
            let version = try await store.multiplierVersion()
            guard version != state.withLock({ $0.version }) else { return }
            let campaigns = try await store.multipliers(lookbackDays: Self.lookbackDays)
            state.withLock { $0 = State(version: version, campaigns: campaigns) }
            logger.info("campaigns loaded", metadata: ["version": "\(version)", "multipliers": "\(campaigns.count)"])
        } catch {
            logger.warning("campaigns could not be reloaded; keeping the loaded ones", metadata: ["error": "\(PostgresErrorText.describe(error))"])
        }
    }
}

/// Polls for campaign changes until shutdown.
public struct ActiveCampaignsRefresher: Service {
    let campaigns: ActiveCampaigns
    let pollInterval: Duration

    public init(campaigns: ActiveCampaigns, pollInterval: Duration = .seconds(1)) {
        self.campaigns = campaigns
        self.pollInterval = pollInterval
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await campaigns.refresh()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pollInterval) }
        }
    }
}
