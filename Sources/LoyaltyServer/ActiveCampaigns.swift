import Foundation
import Logging
import LoyaltyCore
import LoyaltyStore
import PostgresNIO
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
        /// When the version was last read successfully.
        var checkedAt: ContinuousClock.Instant?
    }

    /// Cached pricing facts are trusted only while the version was confirmed this recently: a server that cannot
    /// poll does not know whether segments or tiers moved.
    public static let pricingVersionMaximumAge: Duration = .seconds(10)

    private let state = Mutex(State())
    let store: CampaignStore?
    let logger: Logger

    /// - Parameter store: nil serves no campaigns (tests of the checkout without them).
    public init(store: CampaignStore?, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public var current: [CampaignMultiplier] { state.withLock { $0.campaigns } }
    /// The loaded campaigns with their version, read together (version nil: no campaign store, nothing to check).
    public var loaded: LoadedCampaigns {
        state.withLock { state in LoadedCampaigns(version: store == nil ? nil : state.version, campaigns: state.campaigns) }
    }
    /// The `campaigns_version` the loaded campaigns are of (-1 before the first load).
    public var version: Int64 { state.withLock { $0.version } }

    /// The version cached pricing facts must carry to be used, nil when the last successful poll is too old.
    public var pricingVersion: Int64? {
        state.withLock { state in
            guard let checkedAt = state.checkedAt, ContinuousClock.now - checkedAt <= Self.pricingVersionMaximumAge else { return nil }
            return state.version
        }
    }

    /// Reloads when the campaigns changed. A failure keeps what is loaded (and says so): tills keep pricing.
    public func refresh() async {
        guard let store else { return }
        do {
            let started = ContinuousClock.now
            let version = try await store.multiplierVersion()
            let unchanged = state.withLock { state in
                guard version == state.version else { return false }
                state.checkedAt = started
                return true
            }
            guard !unchanged else { return }
            let campaigns = try await store.multipliers(lookbackDays: Self.lookbackDays)
            // The campaigns belong to `version` only if nothing moved it while they were read (every change bumps
            // it in its own transaction); otherwise the next poll loads again.
            guard try await store.multiplierVersion() == version else { return }
            state.withLock { $0 = State(version: version, campaigns: campaigns, checkedAt: started) }
            logger.info("campaigns loaded", metadata: ["version": "\(version)", "multipliers": "\(campaigns.count)"])
        } catch {
            logger.warning("campaigns could not be reloaded; keeping the loaded ones", metadata: ["error": "\(PostgresErrorText.describe(error))"])
        }
    }
}

/// Campaigns as loaded, with the `campaigns_version` they belong to.
public struct LoadedCampaigns: Sendable {
    public var version: Int64?
    public var campaigns: [CampaignMultiplier]
}

/// Keeps the loaded campaigns current until shutdown: reloads when PostgreSQL notifies a change (channel
/// `loyalty_campaigns`, migration 0017: within milliseconds of the change committing), and polls every
/// `pollInterval` in case a notification was missed (the listening connection lost). Commits do not depend on
/// either: the ledger refuses a commit priced with campaigns older than the database's (campaigns_changed).
public struct ActiveCampaignsRefresher: Service {
    public static let notificationChannel = "loyalty_campaigns"
    let campaigns: ActiveCampaigns
    let pollInterval: Duration
    let listenClient: PostgresClient?

    public init(campaigns: ActiveCampaigns, pollInterval: Duration = .seconds(1), listenClient: PostgresClient? = nil) {
        self.campaigns = campaigns
        self.pollInterval = pollInterval
        self.listenClient = listenClient
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if let listenClient {
                group.addTask { await listen(listenClient) }
            }
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    await campaigns.refresh()
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pollInterval) }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Listens on one pooled connection; after a failure, waits a second and listens again (polling covers the gap).
    func listen(_ client: PostgresClient) async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.notificationChannel) { notifications in
                            // Anything committed before the listen started is picked up by this refresh.
                            await campaigns.refresh()
                            for try await _ in notifications { await campaigns.refresh() }
                        }
                    }
                }
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                campaigns.logger.warning("campaign change notifications lost; polling until they are back",
                                         metadata: ["error": "\(PostgresErrorText.describe(error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
        }
    }
}
