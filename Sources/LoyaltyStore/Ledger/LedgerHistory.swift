import Foundation
import Logging
import LoyaltyCore
import PostgresNIO

/// One entry of a member's ledger history, with its postings to the member's buckets and its explanation.
public struct LedgerHistoryEntry: Sendable, Codable, Equatable {
    public struct Movement: Sendable, Codable, Equatable {
        public var bucket: String
        public var amount: Int64

        public init(bucket: String, amount: Int64) {
            self.bucket = bucket
            self.amount = amount
        }
    }

    public var entryId: Int64
    public var kind: String
    public var unit: LedgerUnit?
    public var amount: Int64
    public var actor: String
    public var reason: String?
    public var reversesEntryId: Int64?
    public var rulesVersion: String?
    public var occurredAt: String
    public var recordedAt: String
    public var movements: [Movement]
    /// Which rule, tier and campaign gave what: the full form a reader sees. A purchase stores its explanation
    /// compactly (`CompactExplanation`); `LedgerStore.history` renders it into this form.
    public var explanation: JSONValue
    /// Set on a purchase that moved the member up a tier: `{"from", "to", "reason"}`. Shown inside the rendered
    /// explanation as `tier_change`.
    public var tierChange: JSONValue?

    /// The entry with a compact stored explanation rendered into the full quote; other explanations (adjustments,
    /// campaigns, reversals, entries written before the compact form) unchanged. One that cannot be read is kept
    /// as stored rather than failing the page.
    func renderingExplanation() -> LedgerHistoryEntry {
        var rendered = self
        if case .object(let object) = explanation, CompactExplanation.isCompact(topLevelKeys: object.keys) {
            do {
                let quote = try CompactExplanation.decode(try JSONEncoder().encode(explanation), rulesVersion: rulesVersion)
                rendered.explanation = try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(quote))
            } catch {
                rendered.explanation = explanation
            }
        }
        if let tierChange, tierChange != .null, case .object(var object) = rendered.explanation {
            object["tier_change"] = tierChange
            rendered.explanation = .object(object)
        }
        return rendered
    }
}

/// A page of history, newest first. `nextCursor` is the entry id to pass as `before` for the next page.
public struct LedgerHistoryPage: Sendable, Codable, Equatable {
    public var entries: [LedgerHistoryEntry]
    public var nextCursor: Int64?
}

extension LedgerStore {
    /// Upper bound on one page, so a single request cannot pull a member's whole history.
    public static let maximumHistoryPageSize = 200

    public func history(memberID: Int64, before cursor: Int64? = nil, limit: Int = 50) async throws(LedgerStoreError) -> LedgerHistoryPage {
        let pageSize = Int64(min(max(limit, 1), Self.maximumHistoryPageSize))
        let page: [LedgerHistoryEntry] = try await call(
            """
            SELECT coalesce(jsonb_agg(row ORDER BY (row->>'entry_id')::bigint DESC), '[]'::jsonb)::text FROM (
                SELECT jsonb_build_object(
                    'entry_id', e.entry_id, 'kind', e.kind, 'unit', e.unit, 'amount', e.amount, 'actor', e.actor,
                    'reason', e.reason, 'reverses_entry_id', e.reverses_entry_id, 'rules_version', e.rules_version,
                    'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'recorded_at', to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'explanation', e.explanation,
                    -- A purchase that moved the member up a tier: the change recorded in the same transaction
                    -- (same member, same transaction time; two purchases of one member in one batch both show it).
                    'tier_change', CASE WHEN e.kind = 'accrual' THEN (
                        SELECT jsonb_build_object('from', f.code, 'to', t.code, 'reason', c.reason)
                        FROM tier_changes c JOIN tiers f ON f.tier_id = c.from_tier_id JOIN tiers t ON t.tier_id = c.to_tier_id
                        WHERE c.member_id = e.member_id AND c.changed_at = e.recorded_at
                        ORDER BY c.change_id DESC LIMIT 1) END,
                    'movements', coalesce((
                        SELECT jsonb_agg(jsonb_build_object('bucket', a.bucket, 'amount', p.amount) ORDER BY a.bucket)
                        FROM postings p JOIN accounts a USING (account_id)
                        WHERE p.entry_id = e.entry_id AND a.member_id IS NOT NULL), '[]'::jsonb)) AS row
                FROM journal_entries e
                WHERE e.member_id = \(memberID) AND (\(cursor)::bigint IS NULL OR e.entry_id < \(cursor)::bigint)
                ORDER BY e.entry_id DESC
                LIMIT \(pageSize)
            ) page
            """)
        let next = page.count == Int(pageSize) ? page.last?.entryId : nil
        return LedgerHistoryPage(entries: page.map { $0.renderingExplanation() }, nextCursor: next)
    }
}

/// Arbitrary JSON, kept as a tree so explanations round-trip without a schema.
public indirect enum JSONValue: Sendable, Codable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
