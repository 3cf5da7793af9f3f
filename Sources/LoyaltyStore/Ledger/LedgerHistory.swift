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
    /// Which rule, tier and campaign gave what: the full form a reader sees, with `tier_change` inside it when the
    /// purchase moved the member up a tier. A purchase stores its explanation compactly (`CompactExplanation`);
    /// `LedgerStore.historyJSON` renders it into this form.
    public var explanation: JSONValue
}

/// A page of history, newest first. `nextCursor` is the entry id to pass as `before` for the next page.
public struct LedgerHistoryPage: Sendable, Codable, Equatable {
    public var entries: [LedgerHistoryEntry]
    public var nextCursor: Int64?
}

extension LedgerStore {
    /// Upper bound on one page, so a single request cannot pull a member's whole history.
    public static let maximumHistoryPageSize = 200

    /// A page of history as the admin API shows it: one JSON object per entry, newest first, every field written
    /// (nulls included): `entry_id`, `kind`, `unit`, `amount`, `actor`, `reason`, `reverses_entry_id`,
    /// `rules_version`, `occurred_at`, `recorded_at`, `movements` (`[{bucket, amount}]` on the member's buckets) and
    /// `explanation`. PostgreSQL writes everything but the explanation of a purchase, whose compact stored form
    /// (`CompactExplanation`) is rendered here into the full quote, with `tier_change` (`{from, to, reason}`) added
    /// when the purchase moved the member up a tier; other explanations (adjustments, campaigns, reversals,
    /// entries from before the compact form) are passed through as stored, as is one that cannot be read.
    /// Why JSON text and not rows decoded into values: this read was most of the admin API's CPU (a generic JSON
    /// tree decoded, re-encoded and decoded again per entry).
    public func historyJSON(
        memberID: Int64, before cursor: Int64? = nil, limit: Int = 50
    ) async throws(LedgerStoreError) -> (items: [String], nextCursor: Int64?) {
        let pageSize = Int64(min(max(limit, 1), Self.maximumHistoryPageSize))
        var items: [String] = []
        var lastEntryID: Int64?
        do {
            let rows = try await client.query(
                """
                SELECT e.entry_id, e.rules_version, e.explanation ? 'x', e.explanation::text,
                    jsonb_build_object(
                        'entry_id', e.entry_id, 'kind', e.kind, 'unit', e.unit, 'amount', e.amount, 'actor', e.actor,
                        'reason', e.reason, 'reverses_entry_id', e.reverses_entry_id, 'rules_version', e.rules_version,
                        'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                        'recorded_at', to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                        'movements', coalesce((
                            SELECT jsonb_agg(jsonb_build_object('bucket', a.bucket, 'amount', p.amount) ORDER BY a.bucket)
                            FROM postings p JOIN accounts a USING (account_id)
                            WHERE p.entry_id = e.entry_id AND a.member_id IS NOT NULL), '[]'::jsonb))::text,
                    -- A purchase that moved the member up a tier: the change recorded in the same transaction
                    -- (same member, same transaction time; two purchases of one member in one batch both show it).
                    CASE WHEN e.kind = 'accrual' THEN (
                        SELECT jsonb_build_object('from', f.code, 'to', t.code, 'reason', c.reason)::text
                        FROM tier_changes c JOIN tiers f ON f.tier_id = c.from_tier_id JOIN tiers t ON t.tier_id = c.to_tier_id
                        WHERE c.member_id = e.member_id AND c.changed_at = e.recorded_at
                        ORDER BY c.change_id DESC LIMIT 1) END
                FROM journal_entries e
                WHERE e.member_id = \(memberID) AND (\(cursor)::bigint IS NULL OR e.entry_id < \(cursor)::bigint)
                ORDER BY e.entry_id DESC
                LIMIT \(pageSize)
                """, logger: logger)
            for try await (entryID, rulesVersion, compact, explanation, fields, tierChange)
                in rows.decode((Int64, String?, Bool, String, String, String?).self) {
                let rendered = Self.renderedExplanation(explanation, compact: compact, rulesVersion: rulesVersion, tierChange: tierChange)
                // `fields` is a JSON object ("{...}"): the explanation goes in before its closing brace.
                items.append(fields.dropLast() + ", \"explanation\": " + rendered + "}")
                lastEntryID = entryID
            }
        } catch {
            throw LedgerStoreError.from(error)
        }
        return (items, items.count == Int(pageSize) ? lastEntryID : nil)
    }

    /// Sorted keys, as the API's other JSON.
    private static let quoteEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func renderedExplanation(_ stored: String, compact: Bool, rulesVersion: String?, tierChange: String?) -> String {
        var rendered = stored
        if compact, let quote = try? CompactExplanation.decode(Data(stored.utf8), rulesVersion: rulesVersion),
           let data = try? quoteEncoder.encode(quote) {
            rendered = String(decoding: data, as: UTF8.self)
        }
        if let tierChange, rendered.hasPrefix("{"), rendered.hasSuffix("}") {
            let body = rendered.dropFirst().dropLast()
            rendered = "{" + body + (body.allSatisfy(\.isWhitespace) ? "" : ",") + "\"tier_change\":" + tierChange + "}"
        }
        return rendered
    }

    /// The same page as values (for tests and tools): `historyJSON` decoded.
    public func history(memberID: Int64, before cursor: Int64? = nil, limit: Int = 50) async throws(LedgerStoreError) -> LedgerHistoryPage {
        let (items, next) = try await historyJSON(memberID: memberID, before: cursor, limit: limit)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            let entries = try decoder.decode([LedgerHistoryEntry].self, from: Data(("[" + items.joined(separator: ",") + "]").utf8))
            return LedgerHistoryPage(entries: entries, nextCursor: next)
        } catch {
            throw LedgerStoreError.from(error)
        }
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
