import Foundation
import Logging
import PostgresNIO

/// What `MigrationRunner.migrate` did.
public struct MigrationReport: Sendable, Equatable {
    public var applied: [String]
    public var alreadyAppliedCount: Int
}

/// Applies `migrations/NNNN_name.sql` files in order, each in its own transaction, and records each with its
/// checksum in `schema_migrations`.
///
/// Guarantees: a migration is applied whole or not at all; an applied file whose checksum changed, or whose file
/// is gone, stops the run before anything is applied; two runners at once serialise on an advisory lock.
public struct MigrationRunner: Sendable {
    /// Arbitrary but fixed: the advisory lock every migrator takes.
    static let advisoryLockKey: Int64 = 0x4C4F_5941_4C54_59

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func migrate(
        _ files: [MigrationFile],
        progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> MigrationReport {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
            do {
                let report = try await migrateLocked(files, on: connection, progress: progress)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                return report
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                throw error
            }
        }
    }

    /// Versions and checksums recorded in the database.
    public func appliedMigrations() async throws -> [(version: Int, name: String, checksumHex: String)] {
        try await client.withConnection { connection in
            try await ensureTable(on: connection)
            return try await readApplied(on: connection)
        }
    }

    private func ensureTable(on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                duration_ms integer NOT NULL
            )
            """,
            logger: logger
        )
    }

    private func readApplied(on connection: PostgresConnection) async throws -> [(version: Int, name: String, checksumHex: String)] {
        let rows = try await connection.query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version", logger: logger)
        var applied: [(version: Int, name: String, checksumHex: String)] = []
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            applied.append((version, name, checksum))
        }
        return applied
    }

    private func migrateLocked(
        _ files: [MigrationFile],
        on connection: PostgresConnection,
        progress: @Sendable (String) -> Void
    ) async throws -> MigrationReport {
        try await ensureTable(on: connection)
        let applied = try await readApplied(on: connection)
        let filesByVersion = Dictionary(uniqueKeysWithValues: files.map { ($0.version, $0) })

        // Verify everything before changing anything.
        for record in applied {
            guard let file = filesByVersion[record.version] else {
                throw StoreError.migrationMissingFile(version: record.version, name: record.name)
            }
            guard file.checksumHex == record.checksumHex else {
                throw StoreError.migrationChecksumMismatch(
                    version: record.version, name: record.name, applied: record.checksumHex, onDisk: file.checksumHex)
            }
        }
        let appliedVersions = Set(applied.map(\.version))
        let pending = files.filter { !appliedVersions.contains($0.version) }
        if let newestApplied = applied.last?.version, let first = pending.first, first.version < newestApplied {
            throw StoreError.migrationFileInvalid(
                file: first.fileName,
                reason: "version \(first.version) is older than the applied \(newestApplied); give it a higher number")
        }

        var done: [String] = []
        for (position, file) in pending.enumerated() {
            let statements: [SQLScript.Statement]
            do { statements = try SQLScript.split(file.sql) } catch {
                throw StoreError.migrationFileInvalid(file: file.fileName, reason: error.description)
            }
            progress("[\(position + 1)/\(pending.count)] applying \(file.fileName) (\(statements.count) statements)")
            let started = ContinuousClock.now
            do {
                try await connection.transaction(logger: logger) { transaction in
                    for (index, statement) in statements.enumerated() {
                        do {
                            try await transaction.query(PostgresQuery(unsafeSQL: statement.text), logger: logger)
                        } catch {
                            throw StoreError.migrationFailed(
                                file: file.fileName, statementIndex: index,
                                reason: "line \(statement.line): \(PostgresErrorText.describe(error))")
                        }
                    }
                    let elapsed = ContinuousClock.now - started
                    let durationMs = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
                    try await transaction.query(
                        "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES (\(file.version), \(file.name), \(file.checksumHex), \(durationMs))",
                        logger: logger)
                }
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError.migrationFailed(
                    file: file.fileName, statementIndex: statements.count, reason: PostgresErrorText.describe(error))
            }
            done.append(file.fileName)
        }
        return MigrationReport(applied: done, alreadyAppliedCount: applied.count)
    }
}

/// Turns postgres-nio errors into one readable line (its own description hides the server's message on purpose).
public enum PostgresErrorText {
    public static func describe(_ error: any Error) -> String {
        if let storeError = error as? StoreError { return storeError.description }
        if let psql = error as? PSQLError {
            if let server = psql.serverInfo {
                var text = server[.message] ?? "server error"
                if let code = server[.sqlState] { text += " (SQLSTATE \(code))" }
                if let detail = server[.detail] { text += "; \(detail)" }
                return text
            }
            if let underlying = psql.underlying { return String(describing: underlying) }
            return "\(psql.code)"
        }
        return String(describing: error)
    }

    /// The DETAIL of a server error (the ledger functions put JSON there).
    public static func detail(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.detail]
    }

    /// The SQLSTATE of a server error, e.g. `23505` for a unique violation.
    public static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }
}
