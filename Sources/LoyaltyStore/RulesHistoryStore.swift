import Foundation
import Logging
import PostgresNIO

/// Which rule sets were in force when (migration 0006), with their files, so any server can price a purchase
/// made while the till was offline by the rules of its purchase time, even after a restart.
public struct RulesHistoryStore: Sendable {
    /// Activations kept in memory and loaded at start; older purchases are priced by the oldest of them.
    public static let maximumVersions = 32

    public struct Activation: Sendable {
        public var version: String
        public var activatedAt: Date
        public var files: [(name: String, contents: Data)]
    }

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Records that `version` is now in force, unless it already is the latest activation. Returns when it became
    /// active (the database's clock, shared by every server).
    public func activate(version: String, files: [(name: String, contents: Data)]) async throws -> Date {
        var object: [String: String] = [:]
        for file in files { object[file.name] = String(decoding: file.contents, as: UTF8.self) }
        let json = String(decoding: try JSONEncoder().encode(object), as: UTF8.self)
        return try await client.transaction(logger: logger) { connection in
            // One activation at a time, so two servers starting together record one row.
            _ = try await connection.query("SELECT pg_advisory_xact_lock(7201)", logger: logger)
            _ = try await connection.query(
                "INSERT INTO rules_versions (version, files) VALUES (\(version), \(json)::jsonb) ON CONFLICT (version) DO NOTHING",
                logger: logger)
            let latest = try await connection.query(
                "SELECT version, activated_at FROM rules_activations ORDER BY activated_at DESC, activation_id DESC LIMIT 1",
                logger: logger)
            for try await (latestVersion, at) in latest.decode((String, Date).self) where latestVersion == version {
                return at
            }
            let inserted = try await connection.query(
                "INSERT INTO rules_activations (version) VALUES (\(version)) RETURNING activated_at", logger: logger)
            for try await at in inserted.decode(Date.self) { return at }
            throw StoreError.notFound("rules activation was not recorded")
        }
    }

    /// The latest activations, oldest first.
    public func recent(limit: Int = maximumVersions) async throws -> [Activation] {
        precondition(limit > 0 && limit <= 1_000)
        let rows = try await client.query(
            """
            SELECT a.version, a.activated_at, v.files::text FROM (
                SELECT version, activated_at, activation_id FROM rules_activations
                ORDER BY activated_at DESC, activation_id DESC LIMIT \(Int32(limit))) a
            JOIN rules_versions v USING (version)
            ORDER BY a.activated_at, a.activation_id
            """, logger: logger)
        var result: [Activation] = []
        for try await (version, at, filesJSON) in rows.decode((String, Date, String).self) {
            let object = try JSONDecoder().decode([String: String].self, from: Data(filesJSON.utf8))
            let files = object.keys.sorted().map { (name: $0, contents: Data(object[$0]!.utf8)) }
            result.append(Activation(version: version, activatedAt: at, files: files))
        }
        return result
    }
}
