import Foundation
import Logging
import LoyaltyStore
import POSProtocol
import PostgresNIO

/// Seeds members (cards, phones, e-mails, birthdays, a tier mix), their opening balances and a purchase each, and
/// the load-test terminals. Set-based inserts for members and batched ledger calls for money (the ledger's own
/// functions, so `loyalty audit` stays clean); resumable: what exists is kept.
struct Seeder {
    static let batchMembers = 50_000
    static let batchLedger = 5_000
    static let openingPoints: Int64 = 50_000

    let client: PostgresClient
    let logger: Logger

    func seed(members: Int, terminals: Int, secretFile: String) async throws {
        try await client.query(
            """
            INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
            VALUES ('silver', 'Silver', 1, 50000, 365), ('gold', 'Gold', 2, 200000, 365)
            ON CONFLICT (code) DO NOTHING
            """, logger: logger)
        let existing = try await count("SELECT count(*)::int8 FROM members WHERE card_number LIKE 'LT%'")
        let started = ContinuousClock.now
        var next = existing + 1
        while next <= members {
            let last = min(members, next + Self.batchMembers - 1)
            try await client.query(
                """
                INSERT INTO members (card_number, phone, email, birth_date, tier_id, tags, consents)
                SELECT 'LT' || lpad(i::text, 8, '0'), '+4930' || lpad(i::text, 8, '0'), 'member' || i || '@example.test',
                       date '1950-01-01' + (i % 20000)::int,
                       (SELECT tier_id FROM tiers WHERE code = CASE WHEN i % 10 = 9 THEN 'gold' WHEN i % 10 >= 7 THEN 'silver' ELSE 'base' END),
                       CASE WHEN i % 3 = 0 THEN ARRAY['newsletter'] ELSE '{}'::text[] END,
                       jsonb_build_object('email', i % 2 = 0, 'sms', i % 5 = 0)
                FROM generate_series(\(Int64(next)), \(Int64(last))) AS i
                """, logger: logger)
            progress("members", done: last, total: members, started: started)
            next = last + 1
        }
        // Money through the ledger's functions, idempotent per member: a rerun replays instead of paying twice.
        let ids = try await memberIDRange()
        var from = ids.lowerBound
        let ledgerStarted = ContinuousClock.now
        var done = 0
        while from <= ids.upperBound {
            let to = min(ids.upperBound, from + Int64(Self.batchLedger) - 1)
            try await client.query(
                """
                SELECT count(ledger_adjust('seed', 'open-' || member_id, '\\x00'::bytea, member_id, 'points',
                                           \(Self.openingPoints), 'load test opening balance', 'seed', NULL)),
                       count(ledger_accrue('seed', 'buy-' || member_id, '\\x00'::bytea, member_id, 'points', 100,
                                           now() - interval '40 days', NULL, now() - interval '40 days', 'seed', NULL,
                                           '{}'::jsonb, 10000))
                FROM members WHERE member_id BETWEEN \(from) AND \(to) AND card_number LIKE 'LT%'
                """, logger: logger)
            done += Int(to - from + 1)
            progress("balances and purchases", done: min(done, members), total: members, started: ledgerStarted)
            from = to + 1
        }
        try await client.query("ANALYZE", logger: logger)
        try await registerTerminals(terminals, secretFile: secretFile)
    }

    func registerTerminals(_ count: Int, secretFile: String) async throws {
        let secret: [UInt8]
        if let text = try? String(contentsOfFile: secretFile, encoding: .utf8),
           let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            secret = Array(data)
        } else {
            secret = TerminalAuth.randomBytes(32)
            try Data(secret).base64EncodedString().write(toFile: secretFile, atomically: true, encoding: .utf8)
        }
        let credentials = TerminalAuth.credentials(secret: secret)
        let store = TerminalStore(client: client, logger: logger)
        for index in 0..<count {
            try await store.save(terminalID: "lt-\(index)", storeID: "loadtest", salt: credentials.salt,
                                 iterations: credentials.iterations, storedKey: credentials.storedKey, serverKey: credentials.serverKey)
        }
        FileHandle.standardError.write(Data("[seed] \(count) terminals lt-0 … lt-\(count - 1) registered\n".utf8))
    }

    func memberIDRange() async throws -> ClosedRange<Int64> {
        let rows = try await client.query(
            "SELECT coalesce(min(member_id), 1), coalesce(max(member_id), 0) FROM members WHERE card_number LIKE 'LT%'",
            logger: logger)
        for try await (low, high) in rows.decode((Int64, Int64).self) where low <= high { return low...high }
        throw LoadTestError("no load-test members: run `loyalty-loadtest seed` first")
    }

    private func count(_ query: PostgresQuery) async throws -> Int {
        let rows = try await client.query(query, logger: logger)
        for try await value in rows.decode(Int64.self) { return Int(value) }
        return 0
    }

    private func progress(_ what: String, done: Int, total: Int, started: ContinuousClock.Instant) {
        let seconds = max(0.001, (ContinuousClock.now - started).seconds)
        let rate = Double(done) / seconds
        let eta = rate > 0 ? Double(total - done) / rate : 0
        FileHandle.standardError.write(Data(String(
            format: "[seed] %@: %d/%d (%.0f%%), %.0f/s, ETA %.0f s\n", what, done, total,
            100 * Double(done) / Double(max(total, 1)), rate, eta).utf8))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
