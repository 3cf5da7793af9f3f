import ArgumentParser
import Foundation
import Logging

@main
struct LoyaltyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loyalty",
        abstract: "Loyalty program backend: ledger, POS protocol, admin API.",
        subcommands: [ServeCommand.self, MigrateCommand.self, AuditCommand.self, BenchCommand.self, RulesCommand.self, TerminalCommand.self, TokenCommand.self, POSCommand.self, TiersCommand.self])
}

/// Options every command that talks to PostgreSQL shares. Flags win over environment variables.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (env LOYALTY_DATABASE_URL).")
    var databaseURL: String?

    @Option(name: .customLong("migrations-dir"), help: "Folder of NNNN_name.sql files.")
    var migrationsDirectory: String = "migrations"

    func resolvedDatabaseURL() throws -> String {
        if let databaseURL { return databaseURL }
        if let value = ProcessInfo.processInfo.environment["LOYALTY_DATABASE_URL"], !value.isEmpty { return value }
        throw CommandFailure("no database configured: pass --database-url or set LOYALTY_DATABASE_URL")
    }
}

/// An error that ends a command with one line on stderr and exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension AsyncParsableCommand {
    /// Runs `body`; any error becomes `error: <one line>` on stderr and exit code 1 (no usage text: the
    /// arguments were fine, the world was not).
    func failingCleanly(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

func makeLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    let level = ProcessInfo.processInfo.environment["LOYALTY_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .info
    return logger
}

func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}
