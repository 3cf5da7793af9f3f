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
        _ adjust: (inout PipelineConfiguration) -> Void = { _ in },
        _ body: (PipelineConnection) async throws -> T
    ) async throws -> T {
        let connection = try await connect(adjust)
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

    /// A table name no other test (or run) uses.
    static func tableName(_ prefix: String) -> String {
        "pipeline_test_\(prefix)_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
    }
}

/// A value several tasks append to.
final class Collected<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    func append(_ item: Element) { items.withLock { $0.append(item) } }
    var all: [Element] { items.withLock { $0 } }
}
