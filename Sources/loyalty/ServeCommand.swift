import ArgumentParser
import Foundation
import LoyaltyCache
import LoyaltyServer
import LoyaltyStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the POS TCP server and the admin HTTP API.")

    @OptionGroup var database: DatabaseOptions

    @OptionGroup(title: "POS connection limits") var posLimits: POSLimitOptions

    @OptionGroup(title: "TLS") var tls: ServeTLSOptions

    @Option(name: .customLong("redis-url"), help: "Redis URL (env LOYALTY_REDIS_URL).")
    var redisURL: String?

    @Option(name: .customLong("host"), help: "Address both servers bind (env LOYALTY_BIND_HOST).")
    var host: String?

    @Option(name: .customLong("pos-port"), help: "POS TCP port (env LOYALTY_POS_PORT, default 7070).")
    var posPort: Int?

    @Option(name: .customLong("admin-port"), help: "Admin HTTP port (env LOYALTY_ADMIN_PORT, default 8080).")
    var adminPort: Int?

    @Option(name: .customLong("rules-dir"), help: "Rules folder (env LOYALTY_RULES_DIR, default rules).")
    var rulesDirectory: String?

    @Option(name: .customLong("database-pool-size"), help: "PostgreSQL connections the server may open (env LOYALTY_DATABASE_POOL_SIZE, default 20).")
    var databasePoolSize: Int?

    @Option(name: .customLong("checkout-connections"), help: "Pipelined PostgreSQL connections for the till's writes (env LOYALTY_CHECKOUT_CONNECTIONS, default 4).")
    var checkoutConnections: Int?

    @Option(name: .customLong("support-adjustment-limit"),
            help: "Most |delta| a support token may adjust in one adjustment (env LOYALTY_SUPPORT_ADJUSTMENT_LIMIT, default 10000).")
    var supportAdjustmentLimit: Int64?

    @Option(name: .customLong("support-daily-adjustment-limit"),
            help: "Most |delta| a support token may adjust per UTC day, summed per unit (env LOYALTY_SUPPORT_DAILY_ADJUSTMENT_LIMIT, default 25000).")
    var supportDailyAdjustmentLimit: Int64?
    @Option(name: .customLong("lookup-connections"), help: "Pipelined PostgreSQL connections for till lookups Redis cannot answer (env LOYALTY_LOOKUP_CONNECTIONS, default 2).")
    var lookupConnections: Int?

    @Option(name: .customLong("local-cache-bytes"),
            help: "Bytes of the process-local member cache in front of Redis, 0 to turn it off (env LOYALTY_LOCAL_CACHE_BYTES, default 67108864).")
    var localCacheBytes: Int?

    @Flag(name: .customLong("migrate"), help: "Apply pending migrations before serving.")
    var migrateFirst = false

    func run() async throws {
        try await failingCleanly {
            let logger = makeLogger("loyalty")
            let databaseURL = try DatabaseURL(try database.resolvedDatabaseURL())
            guard let redisText = redisURL ?? environment("LOYALTY_REDIS_URL") else {
                throw CommandFailure("no Redis configured: pass --redis-url or set LOYALTY_REDIS_URL")
            }
            let redis = try RedisURL(redisText)
            let posPort = try port(posPort, env: "LOYALTY_POS_PORT", default: 7070)
            let adminPort = try port(adminPort, env: "LOYALTY_ADMIN_PORT", default: 8080)
            var configuration = ServerConfiguration(
                databaseURL: databaseURL,
                redisURL: redis,
                bindHost: host ?? environment("LOYALTY_BIND_HOST") ?? "127.0.0.1",
                posPort: posPort,
                adminPort: adminPort,
                rulesDirectory: URL(fileURLWithPath: rulesDirectory ?? environment("LOYALTY_RULES_DIR") ?? "rules"),
                migrationsDirectory: URL(fileURLWithPath: database.migrationsDirectory),
                databasePoolSize: try poolSize())
            configuration.posLimits = try posLimits.resolved()
            try tls.apply(to: &configuration)
            // Here too, so that --migrate does not change the database of a server that then refuses to start.
            try configuration.checkTransport()
            let checkoutText = checkoutConnections.map(String.init) ?? environment("LOYALTY_CHECKOUT_CONNECTIONS") ?? "4"
            guard let checkout = Int(checkoutText), (1...64).contains(checkout) else {
                throw CommandFailure("checkout connections '\(checkoutText)' must be 1-64")
            }
            configuration.checkoutConnections = checkout
            configuration.adminPolicy = AdminPolicy(
                supportAdjustmentLimit: try limit(
                    supportAdjustmentLimit, flag: "support-adjustment-limit", env: "LOYALTY_SUPPORT_ADJUSTMENT_LIMIT",
                    default: AdminPolicy.defaultSupportAdjustmentLimit),
                supportDailyAdjustmentLimit: try limit(
                    supportDailyAdjustmentLimit, flag: "support-daily-adjustment-limit", env: "LOYALTY_SUPPORT_DAILY_ADJUSTMENT_LIMIT",
                    default: AdminPolicy.defaultSupportDailyAdjustmentLimit))
            let lookupText = lookupConnections.map(String.init) ?? environment("LOYALTY_LOOKUP_CONNECTIONS") ?? "2"
            guard let lookup = Int(lookupText), MemberSnapshotReader.connectionCountRange.contains(lookup) else {
                throw CommandFailure("lookup connections '\(lookupText)' must be \(MemberSnapshotReader.connectionCountRange)")
            }
            configuration.lookupConnections = lookup
            let localText = localCacheBytes.map(String.init) ?? environment("LOYALTY_LOCAL_CACHE_BYTES")
                ?? String(ServerConfiguration.defaultLocalCacheBytes)
            guard let local = Int(localText), MemberCache.Limits.localCacheBytes.contains(local) else {
                throw CommandFailure(
                    "--local-cache-bytes (or LOYALTY_LOCAL_CACHE_BYTES) '\(localText)' must be a whole number from 0 to \(MemberCache.Limits.localCacheBytes.upperBound)")
            }
            configuration.localCacheBytes = local
            if migrateFirst {
                let files = try MigrationFile.load(from: configuration.migrationsDirectory)
                let report = try await withPostgres(databaseURL, logger: logger) { client in
                    try await MigrationRunner(client: client, logger: logger).migrate(files) { line in
                        logger.info("\(line)")
                    }
                }
                logger.info("migrations done", metadata: ["applied": "\(report.applied.count)", "before": "\(report.alreadyAppliedCount)"])
            }
            try await LoyaltyServerRunner.run(configuration: configuration, logger: logger)
        }
    }

    private func poolSize() throws -> Int {
        let text = databasePoolSize.map(String.init) ?? environment("LOYALTY_DATABASE_POOL_SIZE") ?? "20"
        guard let value = Int(text), (1...500).contains(value) else {
            throw CommandFailure("database pool size '\(text)' must be 1-500")
        }
        return value
    }

    /// An adjustment limit: 0 (support adjusts nothing) up to the largest delta one adjustment may have.
    private func limit(_ value: Int64?, flag: String, env: String, default fallback: Int64) throws -> Int64 {
        let text = value.map(String.init) ?? environment(env) ?? String(fallback)
        guard let parsed = Int64(text), (0...1_000_000_000_000).contains(parsed) else {
            throw CommandFailure("--\(flag) (or \(env)) '\(text)' must be a whole number from 0 to 1000000000000")
        }
        return parsed
    }

    private func port(_ flag: Int?, env: String, default fallback: Int) throws -> Int {
        if let flag {
            guard (0...65_535).contains(flag) else { throw CommandFailure("port \(flag) is out of range 0-65535") }
            return flag
        }
        guard let text = environment(env) else { return fallback }
        guard let value = Int(text), (0...65_535).contains(value) else {
            throw CommandFailure("\(env)='\(text)' is not a port number 0-65535")
        }
        return value
    }
}

/// The POS server's abuse limits (docs/pos-protocol.md §6), each a flag with a LOYALTY_POS_* fallback.
struct POSLimitOptions: ParsableArguments {
    @Option(name: .customLong("pos-max-server-in-flight"), help: "Requests in flight over all POS connections (env LOYALTY_POS_MAX_SERVER_IN_FLIGHT, default 8192).")
    var maximumServerInFlight: Int?
    @Option(name: .customLong("pos-max-connections"), help: "Open POS connections (env LOYALTY_POS_MAX_CONNECTIONS, default 10000).")
    var maximumConnections: Int?

    @Option(name: .customLong("pos-max-unauthenticated-connections"),
            help: "Connections before Hello; the oldest is closed for a new one (env LOYALTY_POS_MAX_UNAUTHENTICATED_CONNECTIONS, default 1000).")
    var maximumUnauthenticatedConnections: Int?

    @Option(name: .customLong("pos-max-frame-bytes"), help: "Largest frame length (env LOYALTY_POS_MAX_FRAME_BYTES, default 65536).")
    var maximumFrameBytes: Int?

    @Option(name: .customLong("pos-max-in-flight"), help: "Requests in flight per connection (env LOYALTY_POS_MAX_IN_FLIGHT, default 64).")
    var maximumInFlight: Int?

    @Option(name: .customLong("pos-max-consecutive-rejections"),
            help: "Requests in a row over the in-flight limit before the connection is closed (env LOYALTY_POS_MAX_CONSECUTIVE_REJECTIONS, default 1000).")
    var maximumConsecutiveRejections: Int?

    @Option(name: .customLong("pos-handshake-timeout-ms"), help: "Time to authenticate after connecting (env LOYALTY_POS_HANDSHAKE_TIMEOUT_MS, default 10000).")
    var handshakeTimeoutMs: Int?

    @Option(name: .customLong("pos-idle-timeout-ms"), help: "Time without any frame before closing (env LOYALTY_POS_IDLE_TIMEOUT_MS, default 120000).")
    var idleTimeoutMs: Int?

    @Option(name: .customLong("pos-frame-read-timeout-ms"),
            help: "Time from a frame's first byte to its last (env LOYALTY_POS_FRAME_READ_TIMEOUT_MS, default 10000).")
    var frameReadTimeoutMs: Int?

    @Option(name: .customLong("pos-write-buffer-bytes"),
            help: "Queued response bytes above which reading stops (env LOYALTY_POS_WRITE_BUFFER_BYTES, default 262144).")
    var writeBufferHighWatermarkBytes: Int?

    @Option(name: .customLong("pos-write-stall-timeout-ms"),
            help: "Time responses may stay queued above that before closing (env LOYALTY_POS_WRITE_STALL_TIMEOUT_MS, default 30000).")
    var writeStallTimeoutMs: Int?

    @Option(name: .customLong("pos-socket-send-buffer-bytes"),
            help: "Kernel send buffer per connection, 0 for the kernel's own sizing (env LOYALTY_POS_SOCKET_SEND_BUFFER_BYTES, default 65536).")
    var socketSendBufferBytes: Int?

    func resolved() throws -> POSConnectionLimits {
        var limits = POSConnectionLimits()
        func value(_ flag: Int?, _ env: String, _ current: Int) throws -> Int {
            if let flag { return flag }
            guard let text = environment(env) else { return current }
            guard let parsed = Int(text) else { throw CommandFailure("\(env)='\(text)' is not a whole number") }
            return parsed
        }
        limits.maximumConnections = try value(maximumConnections, "LOYALTY_POS_MAX_CONNECTIONS", limits.maximumConnections)
        limits.maximumServerInFlight = try value(maximumServerInFlight, "LOYALTY_POS_MAX_SERVER_IN_FLIGHT", limits.maximumServerInFlight)
        limits.maximumUnauthenticatedConnections = try value(
            maximumUnauthenticatedConnections, "LOYALTY_POS_MAX_UNAUTHENTICATED_CONNECTIONS", limits.maximumUnauthenticatedConnections)
        limits.maximumFrameBytes = try value(maximumFrameBytes, "LOYALTY_POS_MAX_FRAME_BYTES", limits.maximumFrameBytes)
        limits.maximumInFlight = try value(maximumInFlight, "LOYALTY_POS_MAX_IN_FLIGHT", limits.maximumInFlight)
        limits.maximumConsecutiveRejections = try value(
            maximumConsecutiveRejections, "LOYALTY_POS_MAX_CONSECUTIVE_REJECTIONS", limits.maximumConsecutiveRejections)
        limits.handshakeTimeoutMs = try value(handshakeTimeoutMs, "LOYALTY_POS_HANDSHAKE_TIMEOUT_MS", limits.handshakeTimeoutMs)
        limits.idleTimeoutMs = try value(idleTimeoutMs, "LOYALTY_POS_IDLE_TIMEOUT_MS", limits.idleTimeoutMs)
        limits.frameReadTimeoutMs = try value(frameReadTimeoutMs, "LOYALTY_POS_FRAME_READ_TIMEOUT_MS", limits.frameReadTimeoutMs)
        limits.writeBufferHighWatermarkBytes = try value(
            writeBufferHighWatermarkBytes, "LOYALTY_POS_WRITE_BUFFER_BYTES", limits.writeBufferHighWatermarkBytes)
        limits.writeStallTimeoutMs = try value(writeStallTimeoutMs, "LOYALTY_POS_WRITE_STALL_TIMEOUT_MS", limits.writeStallTimeoutMs)
        limits.socketSendBufferBytes = try value(
            socketSendBufferBytes, "LOYALTY_POS_SOCKET_SEND_BUFFER_BYTES", limits.socketSendBufferBytes)
        let problems = limits.problems
        guard problems.isEmpty else { throw CommandFailure("POS limits: \(problems.joined(separator: "; "))") }
        return limits
    }
}
