import ArgumentParser
import Foundation
import LoyaltyStore
import Logging
import PostgresNIO

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply pending migrations, in order, each in its own transaction.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        try await failingCleanly {
            let url = try DatabaseURL(try database.resolvedDatabaseURL())
            let files = try MigrationFile.load(from: URL(fileURLWithPath: database.migrationsDirectory))
            let logger = makeLogger("migrate")
            let report = try await withPostgres(url, logger: logger) { client in
                try await MigrationRunner(client: client, logger: logger).migrate(files) { line in
                    print(line)
                }
            }
            if report.applied.isEmpty {
                print("database \(url) is up to date (\(report.alreadyAppliedCount) migrations applied before)")
            } else {
                print("applied \(report.applied.count) migrations to \(url); \(report.alreadyAppliedCount) were applied before")
            }
        }
    }
}

/// Runs `body` with a started client, first checking that the server answers so an unreachable database is one
/// clear line instead of a hang.
func withPostgres<Result: Sendable>(
    _ url: DatabaseURL, logger: Logger, connectTimeoutMs: Int = 3_000, maximumConnections: Int = 4,
    _ body: @Sendable @escaping (PostgresClient) async throws -> Result
) async throws -> Result {
    let client = PostgresClient(
        configuration: url.clientConfiguration(maximumConnections: maximumConnections, connectTimeoutMs: connectTimeoutMs),
        backgroundLogger: Logger(label: "postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
    try await url.checkReachable(timeoutMs: connectTimeoutMs, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await body(client)
    }
}
