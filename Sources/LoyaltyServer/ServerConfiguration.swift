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
    /// The byte bound of the member cache's process-local level in front of Redis; 0 turns it off.
    public var localCacheBytes = ServerConfiguration.defaultLocalCacheBytes
    public static let defaultLocalCacheBytes = 64 << 20
    /// How long `/ready` and the start-up check wait for each dependency.
    public var dependencyTimeoutMs: Int
    /// Frame, in-flight, timeout, buffer and connection limits of the POS listener (docs/pos-protocol.md §6);
    /// `loyalty serve` fills them from its --pos-* flags and LOYALTY_POS_* variables.
    public var posLimits = POSConnectionLimits()
    /// Limits of the admin API beyond roles (the support role's adjustment limits); `loyalty serve` fills them from
    /// --support-adjustment-limit and --support-daily-adjustment-limit.
    public var adminPolicy = AdminPolicy()
    /// TLS of each listener; nil listens in plain TCP.
    public var posTLS: ListenerTLS?
    public var adminTLS: ListenerTLS?
    /// Plain TCP on an address other than loopback is refused unless the operator says something else protects it
    /// (a TLS proxy in front, a network of its own): `--pos-insecure`, `--admin-insecure`.
    public var posPlaintextAllowed = false
    public var adminPlaintextAllowed = false

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

extension ServerConfiguration {
    /// Refuses a listener that would take card numbers, terminal sessions or admin tokens in clear off a network.
    public func checkTransport() throws(StartupError) {
        guard !ListenAddress.isLoopback(bindHost) else { return }
        if posTLS == nil && !posPlaintextAllowed {
            throw .plaintextOnNetwork(listener: "POS", host: bindHost, fix: """
                give --pos-tls-cert and --pos-tls-key, or bind 127.0.0.1 behind a TLS proxy, or pass --pos-insecure if \
                a TLS proxy or a network of its own already protects this address
                """)
        }
        if adminTLS == nil && !adminPlaintextAllowed {
            throw .plaintextOnNetwork(listener: "admin", host: bindHost, fix: """
                give --admin-tls-cert and --admin-tls-key, or bind 127.0.0.1 behind an HTTPS proxy, or pass \
                --admin-insecure if an HTTPS proxy or a network of its own already protects this address
                """)
        }
    }
}

/// Errors that stop the server from starting. Each is one line naming what and where.
public enum StartupError: Error, CustomStringConvertible {
    case dependencyUnreachable(String)
    case portUnavailable(what: String, host: String, port: Int, reason: String)
    case rules(String)
    case plaintextOnNetwork(listener: String, host: String, fix: String)

    public var description: String {
        switch self {
        case .dependencyUnreachable(let text): text
        case .portUnavailable(let what, let host, let port, let reason):
            "cannot listen for \(what) on \(host):\(port): \(reason); pick another port"
        case .rules(let text): text
        case .plaintextOnNetwork(let listener, let host, let fix):
            "the \(listener) listener would speak plain TCP on \(host), which is not loopback: \(fix)"
        }
    }
}
