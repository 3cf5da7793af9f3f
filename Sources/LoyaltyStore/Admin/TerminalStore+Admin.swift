import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A terminal as the admin API shows it: never its keys, salt or secret.
public struct AdminTerminal: Sendable, Codable, Equatable {
    public var terminalID: String
    public var storeID: String
    /// `active` or `disabled`.
    public var status: String
    public var createdAt: String
    /// When the secret was last set (registration or rotation).
    public var rotatedAt: String

    enum CodingKeys: String, CodingKey {
        case terminalID = "terminal_id", storeID = "store_id", status, createdAt = "created_at", rotatedAt = "rotated_at"
    }

    var auditValue: JSONValue {
        .object(["terminal_id": .string(terminalID), "store_id": .string(storeID), "status": .string(status),
                 "rotated_at": .string(rotatedAt)])
    }
}

/// The derived keys of a new secret (see `TerminalAuth.credentials`); the secret itself never reaches the store.
public struct TerminalCredentials: Sendable {
    public var salt: [UInt8]
    public var iterations: Int
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]

    public init(salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) {
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
    }
}

/// Terminal changes made through the admin API, each with its audit row (`terminal.register`, `terminal.rotate`,
/// `terminal.disable`) in the same transaction. Audit rows hold the status and times, never key material.
extension TerminalStore {
    public static let maximumPageSize = 200

    /// 1-64 of A-Z a-z 0-9 _ . - (the terminals table's CHECK). Bytes, not a regular expression: `$` would also
    /// match before a trailing newline, which the database then refuses.
    public static func isValidID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }
    public static let statuses: Set<String> = ["active", "disabled"]

    public static func resource(_ terminalID: String) -> String { "terminal:\(terminalID)" }

    static let terminalColumns = """
        jsonb_build_object('terminal_id', t.terminal_id, 'store_id', t.store_id, 'status', t.status,
            'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'rotated_at', to_char(t.rotated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text
        """

    /// Terminals ordered by id, after `cursor` (a terminal id), optionally of one store and status.
    public func page(storeID: String?, status: String?, after cursor: String?, limit: Int) async throws
        -> (terminals: [AdminTerminal], nextCursor: String?)
    {
        let pageSize = Int64(min(max(limit, 1), Self.maximumPageSize))
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.terminalColumns) FROM terminals t
            WHERE (\(storeID)::text IS NULL OR t.store_id = \(storeID)::text)
              AND (\(status)::text IS NULL OR t.status = \(status)::text)
              AND (\(cursor)::text IS NULL OR t.terminal_id COLLATE "C" > \(cursor)::text)
            ORDER BY t.terminal_id COLLATE "C"
            LIMIT \(pageSize)
            """, logger: logger)
        let terminals = try await Self.decode(rows)
        return (terminals, terminals.count == Int(pageSize) ? terminals.last?.terminalID : nil)
    }

    public func terminal(_ terminalID: String) async throws -> AdminTerminal? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.terminalColumns) FROM terminals t WHERE t.terminal_id = \(terminalID)", logger: logger)
        return try await Self.decode(rows).first
    }

    /// A new terminal; an id in use is a conflict (rotate its secret instead).
    public func register(
        terminalID: String, storeID: String, credentials: TerminalCredentials, audit: AuditContext
    ) async throws -> AdminTerminal {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO terminals AS t (terminal_id, store_id, salt, iterations, stored_key, server_key)
                VALUES (\(terminalID), \(storeID), \(ByteBuffer(bytes: credentials.salt)), \(Int32(credentials.iterations)),
                        \(ByteBuffer(bytes: credentials.storedKey)), \(ByteBuffer(bytes: credentials.serverKey)))
                ON CONFLICT (terminal_id) DO NOTHING
                RETURNING \(unescaped: Self.terminalColumns)
                """, logger: logger)
            guard let terminal = try await Self.decode(rows).first else {
                throw AdminStoreError.conflict("terminal \"\(terminalID)\" is already registered; rotate its secret instead")
            }
            try await AuditLogStore.write(
                AuditRecord(action: "terminal.register", resource: Self.resource(terminalID), before: .null, after: terminal.auditValue),
                context: audit, on: connection, logger: logger)
            return terminal
        }
    }

    /// Replaces the terminal's keys; a disabled terminal is active again with the new secret.
    public func rotate(terminalID: String, credentials: TerminalCredentials, audit: AuditContext) async throws -> AdminTerminal {
        try await audited("terminal.rotate", terminalID: terminalID, audit: audit) { connection, logger in
            try await connection.query(
                """
                UPDATE terminals AS t SET salt = \(ByteBuffer(bytes: credentials.salt)), iterations = \(Int32(credentials.iterations)),
                    stored_key = \(ByteBuffer(bytes: credentials.storedKey)), server_key = \(ByteBuffer(bytes: credentials.serverKey)),
                    status = 'active', rotated_at = now()
                WHERE t.terminal_id = \(terminalID)
                RETURNING \(unescaped: Self.terminalColumns)
                """, logger: logger)
        }
    }

    /// Disables the terminal: its next Hello fails. Disabling a disabled terminal changes nothing and writes no row.
    public func disable(terminalID: String, audit: AuditContext) async throws -> AdminTerminal {
        try await audited("terminal.disable", terminalID: terminalID, audit: audit) { connection, logger in
            try await connection.query(
                """
                UPDATE terminals AS t SET status = 'disabled' WHERE t.terminal_id = \(terminalID) AND t.status <> 'disabled'
                RETURNING \(unescaped: Self.terminalColumns)
                """, logger: logger)
        }
    }

    /// Locks the terminal's row, runs `update` (nil result: nothing changed), writes the audit row of a change.
    private func audited(
        _ action: String, terminalID: String, audit: AuditContext,
        _ update: @escaping @Sendable (PostgresConnection, Logger) async throws -> PostgresRowSequence
    ) async throws -> AdminTerminal {
        let logger = self.logger
        return try await client.transaction(logger: logger) { connection in
            let current = try await connection.query(
                "SELECT \(unescaped: Self.terminalColumns) FROM terminals t WHERE t.terminal_id = \(terminalID) FOR UPDATE",
                logger: logger)
            guard let before = try await Self.decode(current).first else {
                throw AdminStoreError.notFound("terminal \"\(terminalID)\"")
            }
            guard let after = try await Self.decode(try await update(connection, logger)).first else { return before }
            try await AuditLogStore.write(
                AuditRecord(action: action, resource: Self.resource(terminalID), before: before.auditValue, after: after.auditValue),
                context: audit, on: connection, logger: logger)
            return after
        }
    }

    private static func decode(_ rows: PostgresRowSequence) async throws -> [AdminTerminal] {
        var terminals: [AdminTerminal] = []
        for try await text in rows.decode(String.self) {
            terminals.append(try JSONDecoder().decode(AdminTerminal.self, from: Data(text.utf8)))
        }
        return terminals
    }
}
