import Foundation
import Logging
import PostgresPipeline
import Synchronization

struct MissingDatabase: Error, CustomStringConvertible {
    let description = "LOYALTY_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL"
}

enum PipelineTests {
    static let logger: Logger = {
        var logger = Logger(label: "pipeline-test")
        logger.logLevel = .critical
        return logger
    }()

    static func configuration() throws -> PipelineConfiguration {
        guard let url = ProcessInfo.processInfo.environment["LOYALTY_DATABASE_URL"], !url.isEmpty else {
            throw MissingDatabase()
        }
        return PipelineConfiguration(conninfo: url, logger: logger)
    }

    static func connect(_ adjust: (inout PipelineConfiguration) -> Void = { _ in }) async throws -> PipelineConnection {
        var configuration = try configuration()
        adjust(&configuration)
        return try await PipelineConnection.connect(configuration)
    }

    /// Runs `body` with a connection that is closed afterwards, also when `body` throws.
    static func withConnection<T: Sendable>(
        to configuration: PipelineConfiguration? = nil,
        _ adjust: (inout PipelineConfiguration) -> Void = { _ in },
        _ body: (PipelineConnection) async throws -> T
    ) async throws -> T {
        var configuration = try configuration ?? Self.configuration()
        adjust(&configuration)
        let connection = try await PipelineConnection.connect(configuration)
        do {
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close(drain: false)
            throw error
        }
    }

    struct TimedOut: Error {}

    /// Waits (polling) until `condition` holds; throws after `timeout`.
    static func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < end else { throw TimedOut() }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Runs `body` with the configuration of a new, empty database that is dropped afterwards (as the other
    /// suites do), so tests that create tables never see each other's.
    static func withScratchDatabase<T: Sendable>(_ body: (PipelineConfiguration) async throws -> T) async throws -> T {
        let base = try configuration()
        let name = "pipeline_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        guard var components = URLComponents(string: base.conninfo) else { throw MissingDatabase() }
        components.path = "/" + name
        var scratch = base
        scratch.conninfo = components.string!
        let admin = try await PipelineConnection.connect(base)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        do {
            let value = try await body(scratch)
            _ = try await admin.execute("DROP DATABASE \(name) WITH (FORCE)")
            await admin.close()
            return value
        } catch {
            _ = try? await admin.execute("DROP DATABASE \(name) WITH (FORCE)")
            await admin.close()
            throw error
        }
    }
}

/// A value several tasks append to.
final class Collected<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    func append(_ item: Element) { items.withLock { $0.append(item) } }
    var all: [Element] { items.withLock { $0 } }
}
