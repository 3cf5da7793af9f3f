import Foundation
import NIOSSL
import Logging
import NIOCore
import PostgresNIO

/// A parsed `postgres://user:password@host:port/database?sslmode=…` URL.
///
/// Parsing never touches the network; a malformed URL fails with a message that names the part that is wrong.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, require }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode

    public init(_ text: String) throws(StoreError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw .invalidDatabaseURL("'\(DatabaseURL.redact(text))' is not a URL; expected postgres://user@host:port/database")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw .invalidDatabaseURL("scheme '\(scheme)' is not postgres:// or postgresql://")
        }
        guard let host = components.host, !host.isEmpty else {
            throw .invalidDatabaseURL("the URL has no host; expected postgres://user@host:port/database")
        }
        guard let username = components.user, !username.isEmpty else {
            throw .invalidDatabaseURL("the URL has no user name; expected postgres://user@\(host)/database")
        }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else {
            throw .invalidDatabaseURL("port \(port) is out of range 1-65535")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw .invalidDatabaseURL("the URL names no database; expected postgres://\(username)@\(host):\(port)/database")
        }
        var tlsMode = TLSMode.disable
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable", "allow", "prefer": tlsMode = .disable
                case "require", "verify-ca", "verify-full": tlsMode = .require
                default: throw .invalidDatabaseURL("sslmode '\(item.value ?? "")' is not one of disable, require")
                }
            default:
                throw .invalidDatabaseURL("unknown URL parameter '\(item.name)'; only sslmode is understood")
            }
        }
        self.host = host
        self.port = port
        self.username = username
        self.password = components.password
        self.database = database
        self.tlsMode = tlsMode
    }

    /// The URL without its password, fit for logs and error messages.
    public var description: String {
        "postgres://\(username)@\(host):\(port)/\(database)"
    }

    /// libpq's keyword/value connection string for the same server (values quoted, so no character of a password
    /// or name can add a keyword). Holds the password: never log it. `applicationName` tells the connections apart
    /// in `pg_stat_activity`.
    public func conninfo(connectTimeoutMs: Int = 5_000, applicationName: String = "loyalty-checkout") -> String {
        func quoted(_ value: String) -> String {
            "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        var parts = [
            "host=\(quoted(host))", "port=\(port)", "user=\(quoted(username))", "dbname=\(quoted(database))",
            // TLS as postgres-nio does it: the server's certificate and name verified against the system's roots.
            tlsMode == .require ? "sslmode=verify-full sslrootcert=/etc/ssl/certs/ca-certificates.crt" : "sslmode=disable", "connect_timeout=\(max(2, (connectTimeoutMs + 999) / 1_000))",
            "application_name=\(quoted(applicationName))",
        ]
        if let password { parts.append("password=\(quoted(password))") }
        return parts.joined(separator: " ")
    }

    /// The same server with another database, e.g. for tests that create their own.
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    public func clientConfiguration(maximumConnections: Int = 20, connectTimeoutMs: Int = 5_000) -> PostgresClient.Configuration {
        precondition(maximumConnections > 0, "a pool needs at least one connection")
        let tls: PostgresClient.Configuration.TLS =
            switch tlsMode {
            case .disable: .disable
            case .require: .require(.makeClientConfiguration())
            }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .milliseconds(Int64(connectTimeoutMs))
        return configuration
    }

    static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? text
    }
}

extension DatabaseURL {
    /// Opens one connection, runs `SELECT 1` and closes it. Unlike a pool, which retries quietly, this fails at
    /// once with the real reason (refused, unknown database, bad password), for start-up checks.
    public func checkReachable(timeoutMs: Int = 3_000, logger: Logger) async throws(StoreError) {
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: tlsMode == .disable ? .disable : .require(try! NIOSSLContext(configuration: .makeClientConfiguration())))
        configuration.options.connectTimeout = TimeAmount.milliseconds(Int64(timeoutMs))
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            defer { Task { try? await connection.close() } }
            _ = try await connection.query("SELECT 1", logger: logger)
        } catch {
            throw .unreachable(target: description, reason: PostgresErrorText.describe(error))
        }
    }
}
