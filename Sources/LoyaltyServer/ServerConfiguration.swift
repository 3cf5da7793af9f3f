import Foundation
import LoyaltyCache
import LoyaltyStore

/// Everything `loyalty serve` needs, resolved from flags and environment variables. One struct for the process.
public struct ServerConfiguration: Sendable {
    public var databaseURL: DatabaseURL
    public var redisURL: RedisURL
    public var bindHost: String
    public var posPort: Int
    public var adminPort: Int
    public var rulesDirectory: URL
    public var migrationsDirectory: URL
    public var databasePoolSize: Int
    /// libpq pipeline connections for the till's writes (each carries many calls at once).
    public var checkoutConnections = 4
    /// libpq pipeline connections for till lookups that Redis cannot answer (kept apart from the writes).
    public var lookupConnections = 2
    /// How long `/ready` and the start-up check wait for each dependency.
    public var dependencyTimeoutMs: Int
    /// Frame, in-flight, timeout, buffer and connection limits of the POS listener (docs/pos-protocol.md §6);
    /// `loyalty serve` fills them from its --pos-* flags and LOYALTY_POS_* variables.
    public var posLimits = POSConnectionLimits()
    /// Limits of the admin API beyond roles (the support role's adjustment limits); `loyalty serve` fills them from
    /// --support-adjustment-limit and --support-daily-adjustment-limit.
    public var adminPolicy = AdminPolicy()

    public init(
        databaseURL: DatabaseURL,
        redisURL: RedisURL,
        bindHost: String = "127.0.0.1",
        posPort: Int = 7070,
        adminPort: Int = 8080,
        rulesDirectory: URL = URL(fileURLWithPath: "rules"),
        migrationsDirectory: URL = URL(fileURLWithPath: "migrations"),
        databasePoolSize: Int = 20,
        dependencyTimeoutMs: Int = 2_000
    ) {
        self.databaseURL = databaseURL
        self.redisURL = redisURL
        self.bindHost = bindHost
        self.posPort = posPort
        self.adminPort = adminPort
        self.rulesDirectory = rulesDirectory
        self.migrationsDirectory = migrationsDirectory
        self.databasePoolSize = databasePoolSize
        self.dependencyTimeoutMs = dependencyTimeoutMs
    }
}

/// Errors that stop the server from starting. Each is one line naming what and where.
public enum StartupError: Error, CustomStringConvertible {
    case dependencyUnreachable(String)
    case portUnavailable(what: String, host: String, port: Int, reason: String)
    case rules(String)

    public var description: String {
        switch self {
        case .dependencyUnreachable(let text): text
        case .portUnavailable(let what, let host, let port, let reason):
            "cannot listen for \(what) on \(host):\(port): \(reason); pick another port"
        case .rules(let text): text
        }
    }
}
