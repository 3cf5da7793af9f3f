import Foundation
import Logging
import PostgresNIO

/// One admin write to record: what was done to which resource, with the state before and after.
public struct AuditRecord: Sendable, Equatable {
    /// `member.create`, `member.update`, `member.adjust`, ...
    public var action: String
    /// `member:42`.
    public var resource: String
    public var before: JSONValue
    public var after: JSONValue

    public init(action: String, resource: String, before: JSONValue, after: JSONValue) {
        self.action = action
        self.resource = resource
        self.before = before
        self.after = after
    }
}

/// One row of the audit log as the API shows it.
public struct AuditEntry: Sendable, Codable, Equatable {
    public var auditID: Int64
    public var tokenID: Int64
    public var actorName: String
    public var role: String
    public var action: String
    public var resource: String
    public var before: JSONValue
    public var after: JSONValue
    public var requestID: String
    public var at: String

    enum CodingKeys: String, CodingKey {
        case auditID = "audit_id", tokenID = "token_id", actorName = "actor_name", role, action, resource, before, after
        case requestID = "request_id", at
    }
}

/// A page of the audit log, newest first. `nextCursor` is the audit id to pass as `before` for the next page.
public struct AuditPage: Sendable, Equatable {
    public var entries: [AuditEntry]
    public var nextCursor: Int64?
}

/// The audit log of admin writes. Rows are written by the stores that make the change, in the change's
/// transaction, so a change without its row (or a row without its change) cannot be committed.
public struct AuditLogStore: Sendable {
    public static let maximumPageSize = 200

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func page(resource: String?, before cursor: Int64?, limit: Int) async throws -> AuditPage {
        let pageSize = Int64(min(max(limit, 1), Self.maximumPageSize))
        let rows = try await client.query(
            """
            SELECT jsonb_build_object(
                'audit_id', audit_id, 'token_id', token_id, 'actor_name', actor_name, 'role', role, 'action', action,
                'resource', resource, 'before', coalesce(before, 'null'::jsonb), 'after', coalesce(after, 'null'::jsonb),
                'request_id', request_id, 'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text
            FROM admin_audit_log
            WHERE (\(resource)::text IS NULL OR resource = \(resource)::text)
              AND (\(cursor)::bigint IS NULL OR audit_id < \(cursor)::bigint)
            ORDER BY audit_id DESC
            LIMIT \(pageSize)
            """, logger: logger)
        var entries: [AuditEntry] = []
        for try await text in rows.decode(String.self) {
            entries.append(try JSONDecoder().decode(AuditEntry.self, from: Data(text.utf8)))
        }
        let next = entries.count == Int(pageSize) ? entries.last?.auditID : nil
        return AuditPage(entries: entries, nextCursor: next)
    }

    /// Writes `record` on `connection`, inside the caller's transaction.
    static func write(_ record: AuditRecord, context: AuditContext, on connection: PostgresConnection, logger: Logger) async throws {
        let actor = context.actor
        try await connection.query(
            """
            INSERT INTO admin_audit_log (token_id, actor_name, role, action, resource, before, after, request_id)
            VALUES (\(actor.tokenID), \(actor.name), \(actor.role.rawValue), \(record.action), \(record.resource),
                    \(try record.before.jsonText())::jsonb, \(try record.after.jsonText())::jsonb, \(context.requestID))
            """, logger: logger)
    }

    /// Replaces the values of `keys` in every row about `resource` with `"[erased]"`, keeping who did what and
    /// when. Erasure calls this so personal data does not live on in the log.
    static func redact(keys: [String], resource: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            UPDATE admin_audit_log SET
                before = CASE WHEN jsonb_typeof(before) = 'object' THEN (
                    SELECT jsonb_object_agg(k, CASE WHEN k = ANY(\(keys)) THEN '"[erased]"'::jsonb ELSE v END)
                    FROM jsonb_each(before) AS e(k, v)) ELSE before END,
                after = CASE WHEN jsonb_typeof(after) = 'object' THEN (
                    SELECT jsonb_object_agg(k, CASE WHEN k = ANY(\(keys)) THEN '"[erased]"'::jsonb ELSE v END)
                    FROM jsonb_each(after) AS e(k, v)) ELSE after END
            WHERE resource = \(resource) AND (before ?| \(keys) OR after ?| \(keys))
            """, logger: logger)
    }
}

extension JSONValue {
    /// Compact JSON with sorted keys, for binding as `jsonb`.
    func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
