import Foundation
import Logging
import LoyaltyCache
import LoyaltyStore
import PostgresNIO

/// Access to the real PostgreSQL and Redis that `scripts/services.sh start` runs for the test command.
public enum TestServices {
    public struct MissingService: Error, CustomStringConvertible {
        public let description: String
    }

    public static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return logger
    }()

    public static func databaseURL() throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment["LOYALTY_DATABASE_URL"], !text.isEmpty else {
            throw MissingService(
                description: "LOYALTY_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
        }
        return try DatabaseURL(text)
    }

    public static func redisURL() throws -> RedisURL {
        guard let text = ProcessInfo.processInfo.environment["LOYALTY_REDIS_URL"], !text.isEmpty else {
            throw MissingService(
                description: "LOYALTY_REDIS_URL is not set: run the tests with scripts/test.sh, which starts Redis")
        }
        return try RedisURL(text)
    }

    /// Generous timeouts: the test process runs many suites at once on two cores, and a slow answer there is
    /// not what these tests are about (the breaker tests set their own).
    public static func redisClient(_ url: RedisURL? = nil) throws -> RedisClient {
        var configuration = RedisClient.Configuration(url: try url ?? redisURL())
        configuration.connectTimeoutMs = 3_000
        configuration.commandTimeoutMs = 3_000
        configuration.breakerCooldownMs = 50
        return RedisClient(configuration: configuration, logger: logger)
    }

    public static var migrationsDirectory: URL {
        packageRoot.appendingPathComponent("migrations")
    }

    public static var packageRoot: URL {
        // Tests/LoyaltyTestSupport/TestServices.swift → the package root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Runs `body` against a new, empty database that is dropped afterwards, so tests never see each other's rows.
    public static func withEmptyDatabase<Result: Sendable>(
        _ body: @Sendable (DatabaseURL, PostgresClient) async throws -> Result
    ) async throws -> Result {
        let base = try databaseURL()
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        try await withClient(base) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        let url = base.with(database: String(name))
        do {
            let result = try await withClient(url) { client in try await body(url, client) }
            try await dropDatabase(String(name), base: base)
            return result
        } catch {
            try? await dropDatabase(String(name), base: base)
            throw error
        }
    }

    /// A new database with every migration applied.
    public static func withMigratedDatabase<Result: Sendable>(
        _ body: @Sendable (DatabaseURL, PostgresClient) async throws -> Result
    ) async throws -> Result {
        try await withEmptyDatabase { url, client in
            let files = try MigrationFile.load(from: migrationsDirectory)
            _ = try await MigrationRunner(client: client, logger: logger).migrate(files)
            return try await body(url, client)
        }
    }

    public static func withClient<Result: Sendable>(
        _ url: DatabaseURL, _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let client = PostgresClient(configuration: url.clientConfiguration(maximumConnections: 8), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    private static func dropDatabase(_ name: String, base: DatabaseURL) async throws {
        try await withClient(base) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"))
        }
    }
}

/// A throwaway redis-server on a free port, for tests that stop Redis on purpose. It runs as a child process
/// (not daemonized), so stopping it is a signal and nothing blocks a test thread.
public final class ScratchRedis: Sendable {
    public let port: Int
    public let url: RedisURL
    private let process: Process

    private init(port: Int, process: Process) {
        self.port = port
        self.url = RedisURL(host: "127.0.0.1", port: port)
        self.process = process
    }

    public static func start() async throws -> ScratchRedis {
        let port = try freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "redis-server", "--bind", "127.0.0.1", "--port", "\(port)", "--save", "", "--appendonly", "no",
            "--logfile", "",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let scratch = ScratchRedis(port: port, process: process)
        let probe = RedisClient(configuration: .init(url: scratch.url), logger: TestServices.logger)
        defer { Task { await probe.shutdown() } }
        for _ in 0..<100 {
            if (try? await probe.ping()) != nil { return scratch }
            try await Task.sleep(for: .milliseconds(50))
        }
        scratch.stop()
        throw TestServices.MissingService(description: "redis-server on port \(port) did not answer PING")
    }

    /// Stops the server at once (SIGKILL: like a crash, nothing is flushed).
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit { stop() }
}

/// A loopback port nobody listens on right now.
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestServices.MissingService(description: "socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { throw TestServices.MissingService(description: "bind() failed") }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
