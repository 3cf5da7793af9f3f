import Foundation
import Hummingbird
import Logging
import LoyaltyCache
import LoyaltyStore
import Metrics
import Prometheus
import PostgresNIO
import ServiceLifecycle

/// Starts everything `loyalty serve` runs and keeps it running until SIGTERM or SIGINT.
public enum LoyaltyServerRunner {
    public static func run(configuration: ServerConfiguration, logger: Logger) async throws {
        // Before any dependency: a configuration that would expose clear text is wrong wherever it runs.
        try configuration.checkTransport()
        // Refuse to start against missing dependencies: a till would get nothing but errors.
        do {
            try await configuration.databaseURL.checkReachable(timeoutMs: configuration.dependencyTimeoutMs, logger: logger)
        } catch {
            throw StartupError.dependencyUnreachable(error.description)
        }
        // One metrics backend per process: everything swift-metrics records is exported at the admin /metrics.
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))
        let rules = try CurrentRules(directory: configuration.rulesDirectory, logger: logger)
        let loaded = rules.current
        logger.info("rules loaded", metadata: [
            "version": "\(loaded.version)", "files": "\(loaded.files.joined(separator: ","))", "program": "\(loaded.ruleSet.name)",
        ])

        let postgres = PostgresClient(
            configuration: configuration.databaseURL.clientConfiguration(
                maximumConnections: configuration.databasePoolSize, connectTimeoutMs: configuration.dependencyTimeoutMs),
            backgroundLogger: logger.with(label: "postgres"))
        var redisConfiguration = RedisClient.Configuration(url: configuration.redisURL)
        redisConfiguration.connectTimeoutMs = configuration.dependencyTimeoutMs
        // A recovery after an outage moves the member cache to a new epoch: values written before or during the
        // outage may be stale (writes that failed while Redis was down never reached it).
        let recovery = RedisRecoverySignal()
        let redis = RedisClient(configuration: redisConfiguration, logger: logger, onRecovery: { recovery.fire() })
        let probe = ReadinessProbe(
            postgres: postgres, redis: redis, databaseTarget: configuration.databaseURL.description,
            timeoutMs: configuration.dependencyTimeoutMs)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            defer { group.cancelAll() }

            if let error = await probe.checkRedis() { throw StartupError.dependencyUnreachable(error) }
            var cacheConfiguration = MemberCache.Configuration()
            do {
                cacheConfiguration.identifierDigest = IdentifierDigest(
                    key: try await CacheIdentifierKeyStore(client: postgres, logger: logger).load())
            } catch {
                throw StartupError.dependencyUnreachable(
                    "could not read the cache identifier key from PostgreSQL (\(PostgresErrorText.describe(error))); run `loyalty migrate` first")
            }
            cacheConfiguration.localCacheBytes = configuration.localCacheBytes
            let cache = try MemberCache(
                redis: redis, configuration: cacheConfiguration, recoverySignal: recovery, logger: logger.with(label: "member-cache"))
            let rulesHistory = RulesHistoryStore(client: postgres, logger: logger)
            do { try await rules.synchronize(with: rulesHistory) } catch {
                throw StartupError.dependencyUnreachable(
                    "could not record the rules version in PostgreSQL (\(PostgresErrorText.describe(error))); run `loyalty migrate` first")
            }

            await TierCoverageCheck.log(rules: loaded.ruleSet, tiers: TierStore(client: postgres, logger: logger), logger: logger)

            let campaigns = ActiveCampaigns(store: CampaignStore(client: postgres, logger: logger), logger: logger)
            await campaigns.refresh()
            let writer: CheckoutWriter
            do {
                writer = try await CheckoutWriter.connect(
                    url: configuration.databaseURL, connections: configuration.checkoutConnections,
                    connectTimeoutMs: configuration.dependencyTimeoutMs, logger: logger.with(label: "checkout-writer"))
            } catch {
                throw StartupError.dependencyUnreachable(
                    "could not open the checkout connections to PostgreSQL at \(configuration.databaseURL) (\(error)); is it running?")
            }
            let lookups: MemberSnapshotReader
            do {
                lookups = try await MemberSnapshotReader.connect(
                    url: configuration.databaseURL, connections: configuration.lookupConnections,
                    connectTimeoutMs: configuration.dependencyTimeoutMs, logger: logger.with(label: "lookup-reader"))
            } catch {
                await writer.close()
                throw StartupError.dependencyUnreachable(
                    "could not open the lookup connections to PostgreSQL at \(configuration.databaseURL) (\(error)); is it running?")
            }
            let posService = POSService(
                postgres: postgres, writer: writer, lookups: lookups, cache: cache, rules: rules, campaigns: campaigns, limits: configuration.posLimits,
                logger: logger)
            let pos = try await POSListener(
                host: configuration.bindHost, port: configuration.posPort, service: posService,
                limits: configuration.posLimits, logger: logger, tls: configuration.posTLS)
            let admin = AdminApplication.build(
                host: configuration.bindHost, port: configuration.adminPort, probe: probe, logger: logger,
                postgres: postgres, cache: cache, policy: configuration.adminPolicy, rules: rules, metrics: metrics,
                tls: configuration.adminTLS)
            let jobs = LedgerJobsService(
                ledger: LedgerStore(client: postgres, logger: logger), tiers: TierStore(client: postgres, logger: logger),
                rules: rules, cache: cache, logger: logger)
            let services = ServiceGroup(
                configuration: .init(
                    services: [.init(service: pos), .init(service: admin), .init(service: jobs), .init(service: RulesReloadOnSignal(rules: rules, history: rulesHistory)), .init(service: ActiveCampaignsRefresher(campaigns: campaigns, listenClient: postgres)),
                        .init(service: CampaignRunner(store: CampaignStore(client: postgres, logger: logger), cache: cache, logger: logger)),
                        .init(service: MemberCacheMetrics(cache: cache))],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            logger.info(
                "loyalty server starting",
                metadata: [
                    "pos": "\(configuration.bindHost):\(pos.boundPort)",
                    "pos_tls": "\(ListenerTLS.describe(configuration.posTLS))",
                    "admin": "\(configuration.adminTLS == nil ? "http" : "https")://\(configuration.bindHost):\(configuration.adminPort)",
                    "admin_tls": "\(ListenerTLS.describe(configuration.adminTLS))",
                    "postgres": "\(configuration.databaseURL)", "redis": "\(configuration.redisURL)",
                ])
            for case let (listener, tls?) in [("pos", configuration.posTLS), ("admin", configuration.adminTLS)] {
                if let warning = tls.expiryWarning(now: Date()) {
                    logger.warning("\(warning)", metadata: ["listener": "\(listener)", "certificate": "\(tls.certificatePath)"])
                }
            }
            try await services.run()
            // After the POS listener drained: every admitted write has its answer.
            await writer.close()
            await lookups.close()
            await cache.close()
            await redis.shutdown()
            logger.info("loyalty server stopped")
        }
    }
}

extension Logger {
    /// A logger for a library's background chatter: warnings and above only.
    func with(label: String) -> Logger {
        var copy = Logger(label: label)
        copy.logLevel = max(logLevel, .warning)
        return copy
    }
}
