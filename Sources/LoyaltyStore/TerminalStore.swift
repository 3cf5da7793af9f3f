import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A registered terminal's derived credentials (never its secret).
public struct TerminalRecord: Sendable, Equatable {
    public var terminalID: String
    public var storeID: String
    public var salt: [UInt8]
    public var iterations: Int
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]
    public var isActive: Bool

    public init(
        terminalID: String, storeID: String, salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8],
        isActive: Bool
    ) {
        self.terminalID = terminalID
        self.storeID = storeID
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
        self.isActive = isActive
    }
}

/// Terminals in PostgreSQL: register, rotate (both replace the derived keys), disable, find.
public struct TerminalStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A terminal id as the registry stores them: 1-64 of A-Z a-z 0-9 _ . - (the table's CHECK says the same).
    public static func isValid(terminalID: String) -> Bool {
        (1...64).contains(terminalID.utf8.count) && terminalID.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }

    /// Inserts or replaces a terminal's credentials (registration and rotation are the same write).
    public func save(terminalID: String, storeID: String, salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) async throws {
        guard Self.isValid(terminalID: terminalID) else {
            throw StoreError.notFound("valid terminal id (1-64 of A-Z a-z 0-9 _ . -): '\(terminalID)'")
        }
        try await client.query(
            """
            INSERT INTO terminals (terminal_id, store_id, salt, iterations, stored_key, server_key)
            VALUES (\(terminalID), \(storeID), \(ByteBuffer(bytes: salt)), \(Int32(iterations)), \(ByteBuffer(bytes: storedKey)), \(ByteBuffer(bytes: serverKey)))
            ON CONFLICT (terminal_id) DO UPDATE SET store_id = EXCLUDED.store_id, salt = EXCLUDED.salt,
                iterations = EXCLUDED.iterations, stored_key = EXCLUDED.stored_key, server_key = EXCLUDED.server_key,
                status = 'active', rotated_at = now()
            """, logger: logger)
    }

    public func disable(terminalID: String) async throws {
        try await client.query("UPDATE terminals SET status = 'disabled' WHERE terminal_id = \(terminalID)", logger: logger)
    }

    /// The records of up to 1,000 terminals at once (unknown ids are absent), for rechecking open sessions.
    public func records(terminalIDs: [String]) async throws -> [String: TerminalRecord] {
        precondition(terminalIDs.count <= 1_000, "recheck terminals in chunks")
        let rows = try await client.query(
            "SELECT terminal_id, store_id, salt, iterations, stored_key, server_key, status FROM terminals WHERE terminal_id = ANY(\(terminalIDs))",
            logger: logger)
        var records: [String: TerminalRecord] = [:]
        for try await (id, store, salt, iterations, stored, server, status) in rows.decode((String, String, ByteBuffer, Int, ByteBuffer, ByteBuffer, String).self) {
            records[id] = TerminalRecord(
                terminalID: id, storeID: store, salt: Array(buffer: salt), iterations: iterations,
                storedKey: Array(buffer: stored), serverKey: Array(buffer: server), isActive: status == "active")
        }
        return records
    }

    public func find(terminalID: String) async throws -> TerminalRecord? {
        try await records(terminalIDs: [terminalID])[terminalID]
    }
}
