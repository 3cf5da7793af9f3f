import Foundation
import Logging
import PostgresNIO

/// Violations found by one check, with a few examples.
struct ChaosCheck {
    let name: String
    var violations = 0
    var samples: [String] = []

    mutating func fail(_ sample: @autoclosure () -> String) {
        violations += 1
        if samples.count < 5 { samples.append(sample()) }
    }
}

/// Compares the tills' journals with the ledger in PostgreSQL once the run is over: every acknowledged commit,
/// refund and cancel is there exactly once with the acknowledged figures, nothing the tills were refused or never
/// heard of is there, no key or entry is applied twice, and every member's balance equals the tills' model.
struct ChaosVerifier {
    let client: PostgresClient
    let logger: Logger
    let journal: [ChaosOperation]
    let terminals: [String]
    let members: [Int64]
    /// available + pending + held per member and unit when the run started.
    let initialTotals: [ChaosModel.Key: Int64]

    func run() async throws -> [ChaosCheck] {
        var unresolved = ChaosCheck(name: "every operation got a final answer")
        for operation in journal where isUnresolved(operation) {
            unresolved.fail("\(operation.terminalID) \(operation.kind.rawValue) \(operation.id)")
        }
        return [unresolved, try await keys(), try await checkouts(), try await entries(), try await holds(), try await balances()]
    }

    private func isUnresolved(_ operation: ChaosOperation) -> Bool {
        if case .unresolved = operation.outcome { return true }
        return false
    }

    private var byKey: [String: ChaosOperation] {
        Dictionary(journal.map { ("\($0.terminalID) \($0.idempotencyKey)", $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Acknowledged commits by terminal and transaction id.
    private var commits: [String: (ChaosOperation, ChaosAck)] {
        var result: [String: (ChaosOperation, ChaosAck)] = [:]
        for operation in journal where operation.kind == .commit {
            if let ack = operation.ack { result["\(operation.terminalID) \(operation.id)"] = (operation, ack) }
        }
        return result
    }

    // MARK: Checks

    /// An idempotency key exists exactly for the acknowledged operations (a refused one left nothing behind).
    private func keys() async throws -> ChaosCheck {
        var check = ChaosCheck(name: "idempotency keys = acknowledged operations")
        struct Row: Decodable { let scope: String; let key: String }
        let scopes = terminals.map { "pos:\($0)" }
        let rows: [Row] = try await json(
            "SELECT row_to_json(k)::text FROM (SELECT scope, key FROM idempotency_keys WHERE scope = ANY(\(scopes))) k")
        var present = Set<String>()
        let operations = byKey
        for row in rows {
            let name = "\(row.scope.dropFirst(4)) \(row.key)"
            present.insert(name)
            switch operations[name]?.outcome {
            case .acknowledged?: break
            case .refused(let code)?: check.fail("\(name) applied although the till was told \(code)")
            case .unresolved?: break  // counted once, as unresolved
            case nil: check.fail("\(name) is in the ledger but no till sent it")
            }
        }
        for operation in journal where operation.ack != nil {
            let name = "\(operation.terminalID) \(operation.idempotencyKey)"
            if !present.contains(name) { check.fail("\(operation.trace) acknowledged but has no key") }
        }
        return check
    }

    /// One pos_checkouts row per acknowledged commit, with the acknowledged figures; none for anything else.
    private func checkouts() async throws -> ChaosCheck {
        var check = ChaosCheck(name: "purchases = acknowledged commits")
        struct Row: Decodable {
            let terminal_id: String, pos_transaction_id: String, member_id: Int64, awarded: Int64, redeemed: Int64
            let accrual_entry_id: Int64, redemption_entry_id: Int64
        }
        let rows: [Row] = try await json(
            """
            SELECT row_to_json(c)::text FROM (
            SELECT terminal_id, pos_transaction_id, member_id, awarded, redeemed, coalesce(accrual_entry_id, 0) AS accrual_entry_id,
                   coalesce(redemption_entry_id, 0) AS redemption_entry_id
            FROM pos_checkouts WHERE terminal_id = ANY(\(terminals))) c
            """)
        var expected = commits
        for row in rows {
            let name = "\(row.terminal_id) \(row.pos_transaction_id)"
            guard let (operation, ack) = expected.removeValue(forKey: name) else {
                check.fail("purchase \(name) in the ledger was never acknowledged")
                continue
            }
            if row.member_id != operation.memberID || row.awarded != ack.awarded || row.redeemed != ack.redeemed
                || row.accrual_entry_id != ack.accrualEntryID || row.redemption_entry_id != ack.redemptionEntryID {
                check.fail("purchase \(name): ledger awarded \(row.awarded) redeemed \(row.redeemed) entries \(row.accrual_entry_id)/\(row.redemption_entry_id), till was told \(ack.awarded)/\(ack.redeemed) entries \(ack.accrualEntryID)/\(ack.redemptionEntryID)")
            }
        }
        for (operation, _) in expected.values.sorted(by: { $0.0.sentAt < $1.0.sentAt }) { check.fail("acknowledged commit \(operation.trace) is not in the ledger") }
        return check
    }

    /// Journal entries written by the tills: each accrual, redemption and reversal belongs to exactly one
    /// acknowledged operation and carries its figures.
    private func entries() async throws -> ChaosCheck {
        var check = ChaosCheck(name: "journal entries exactly once")
        struct Row: Decodable {
            let entry_id: Int64, kind: String, member_id: Int64, amount: Int64, reverses_entry_id: Int64, actor: String
            let refund_id: String, void: String, pos_transaction_id: String
        }
        let rows: [Row] = try await json(
            """
            SELECT row_to_json(e)::text FROM (
            SELECT entry_id, kind, member_id, amount, coalesce(reverses_entry_id, 0) AS reverses_entry_id, actor,
                   coalesce(explanation ->> 'refund_id', '') AS refund_id, coalesce(explanation ->> 'void', '') AS void,
                   coalesce(explanation ->> 'pos_transaction_id', '') AS pos_transaction_id
            FROM journal_entries WHERE actor = ANY(\(terminals)) AND kind IN ('accrual', 'redemption', 'reversal')) e
            """)
        // Entry id → what the acknowledged commits say it is.
        var accruals: [Int64: (String, Int64, Int64)] = [:]
        var redemptions: [Int64: (String, Int64, Int64)] = [:]
        for (name, (operation, ack)) in commits {
            if ack.accrualEntryID != 0 { accruals[ack.accrualEntryID] = (name, operation.memberID, ack.awarded) }
            if ack.redemptionEntryID != 0 { redemptions[ack.redemptionEntryID] = (name, operation.memberID, ack.redeemed) }
        }
        var seenAccruals = Set<Int64>(), seenRedemptions = Set<Int64>()
        var redemptionsPerTxn: [String: Int] = [:]
        // (terminal, refund id or void txn) → reversed amounts per original entry.
        var reversals: [String: [Int64: (amount: Int64, entries: Int)]] = [:]
        for row in rows {
            switch row.kind {
            case "accrual":
                guard let (name, member, amount) = accruals[row.entry_id] else {
                    check.fail("accrual entry \(row.entry_id) by \(row.actor) (member \(row.member_id), \(row.amount)) belongs to no acknowledged commit")
                    continue
                }
                seenAccruals.insert(row.entry_id)
                if member != row.member_id || amount != row.amount { check.fail("accrual entry \(row.entry_id) of \(name): \(row.amount), acknowledged \(amount)") }
            case "redemption":
                redemptionsPerTxn["\(row.actor) \(row.pos_transaction_id)", default: 0] += 1
                guard let (name, member, amount) = redemptions[row.entry_id] else {
                    check.fail("redemption entry \(row.entry_id) by \(row.actor) for \(row.pos_transaction_id) belongs to no acknowledged commit")
                    continue
                }
                seenRedemptions.insert(row.entry_id)
                if member != row.member_id || amount != row.amount { check.fail("redemption entry \(row.entry_id) of \(name): \(row.amount), acknowledged \(amount)") }
            default:
                let owner = row.refund_id.isEmpty ? "\(row.actor) cancel:\(row.void)" : "\(row.actor) refund:\(row.refund_id)"
                var perOriginal = reversals[owner, default: [:]]
                let previous = perOriginal[row.reverses_entry_id] ?? (0, 0)
                perOriginal[row.reverses_entry_id] = (previous.amount + row.amount, previous.entries + 1)
                reversals[owner] = perOriginal
            }
        }
        for (name, count) in redemptionsPerTxn where count > 1 { check.fail("\(count) redemption entries for \(name)") }
        for id in Set(accruals.keys).subtracting(seenAccruals) { check.fail("accrual entry \(id) of \(accruals[id]!.0) is missing") }
        for id in Set(redemptions.keys).subtracting(seenRedemptions) { check.fail("redemption entry \(id) of \(redemptions[id]!.0) is missing") }
        checkReversals(reversals, into: &check)
        return check
    }

    /// Each acknowledged refund or void reversed exactly the acknowledged amounts, in one entry per original entry.
    private func checkReversals(_ reversals: [String: [Int64: (amount: Int64, entries: Int)]], into check: inout ChaosCheck) {
        var remaining = reversals
        let purchases = commits
        for operation in journal where operation.kind == .refund || operation.kind == .cancel {
            guard let ack = operation.ack else { continue }
            let owner = "\(operation.terminalID) \(operation.idempotencyKey)"
            let found = remaining.removeValue(forKey: owner) ?? [:]
            guard ack.cancelled != "hold" else {
                if !found.isEmpty { check.fail("\(owner) released a hold but wrote reversals") }
                continue
            }
            guard let (_, purchase) = purchases["\(operation.terminalID) \(ack.originalID)"] else {
                check.fail("\(owner) acknowledged for a purchase the till never had acknowledged")
                continue
            }
            for (original, value) in found where value.entries > 1 { check.fail("\(owner) reversed entry \(original) \(value.entries) times") }
            let reversed = purchase.accrualEntryID == 0 ? 0 : found[purchase.accrualEntryID]?.amount ?? 0
            let restored = purchase.redemptionEntryID == 0 ? 0 : found[purchase.redemptionEntryID]?.amount ?? 0
            if reversed != ack.awardReversed || restored != ack.pointsRestored {
                check.fail("\(owner): ledger reversed \(reversed) and restored \(restored), till was told \(ack.awardReversed) and \(ack.pointsRestored)")
            }
            let others = Set(found.keys).subtracting([purchase.accrualEntryID, purchase.redemptionEntryID])
            if !others.isEmpty { check.fail("\(owner) reversed entries \(others.sorted()) of another purchase") }
        }
        for owner in remaining.keys.sorted() { check.fail("reversals by \(owner) belong to no acknowledged refund or cancel") }
    }

    /// One hold per acknowledged hold, with its member and amount; no hold released twice.
    private func holds() async throws -> ChaosCheck {
        var check = ChaosCheck(name: "holds exactly once")
        struct Row: Decodable { let hold_id: Int64; let member_id: Int64; let amount: Int64; let releases: Int64 }
        let rows: [Row] = try await json(
            """
            SELECT row_to_json(x)::text FROM (
            SELECT h.hold_id, h.member_id, h.amount, coalesce(r.releases, 0) AS releases
            FROM holds h
            -- One pass over the release entries (journal_entries has no index on hold_id; a correlated count per
            -- hold scanned the whole journal once per hold, minutes on a busy run).
            LEFT JOIN (SELECT hold_id, count(*) AS releases FROM journal_entries WHERE kind = 'release' GROUP BY hold_id) r
                ON r.hold_id = h.hold_id
            WHERE h.member_id = ANY(\(members))) x
            """)
        var expected: [Int64: ChaosOperation] = [:]
        for operation in journal where operation.kind == .hold {
            if let ack = operation.ack { expected[ack.holdID] = operation }
        }
        for row in rows {
            if row.releases > 1 { check.fail("hold \(row.hold_id) released \(row.releases) times") }
            guard let operation = expected.removeValue(forKey: row.hold_id) else {
                check.fail("hold \(row.hold_id) (member \(row.member_id), \(row.amount)) belongs to no acknowledged hold")
                continue
            }
            if operation.memberID != row.member_id || operation.ack?.holdPoints != row.amount {
                check.fail("hold \(row.hold_id) of \(operation.terminalID) \(operation.id): member \(row.member_id) amount \(row.amount)")
            }
        }
        for (id, operation) in expected { check.fail("acknowledged hold \(id) of \(operation.terminalID) \(operation.id) is missing") }
        return check
    }

    /// available + pending + held per member and unit = the start + the model of acknowledged answers.
    private func balances() async throws -> ChaosCheck {
        var check = ChaosCheck(name: "balances = the tills' model")
        var model = ChaosModel()
        for operation in journal { model.apply(operation) }
        let now = try await Self.totals(client: client, logger: logger, members: members)
        let keys = Set(now.keys).union(initialTotals.keys).union(model.delta.keys)
        for key in keys.sorted(by: { ($0.memberID, $0.unit) < ($1.memberID, $1.unit) }) {
            let expected = (initialTotals[key] ?? 0) + (model.delta[key] ?? 0)
            let actual = now[key] ?? 0
            if expected != actual { check.fail("member \(key.memberID) \(key.unit): ledger \(actual), model \(expected)") }
        }
        return check
    }

    /// available + pending + held per member and unit.
    static func totals(client: PostgresClient, logger: Logger, members: [Int64]) async throws -> [ChaosModel.Key: Int64] {
        let rows = try await client.query(
            """
            SELECT member_id, unit, sum(balance)::int8 FROM accounts
            WHERE member_id = ANY(\(members)) AND bucket IN ('available', 'pending', 'held') GROUP BY member_id, unit
            """, logger: logger)
        var totals: [ChaosModel.Key: Int64] = [:]
        for try await (member, unit, total) in rows.decode((Int64, String, Int64).self) {
            totals[ChaosModel.Key(memberID: member, unit: unit)] = total
        }
        return totals
    }

    private func json<Row: Decodable>(_ query: PostgresQuery) async throws -> [Row] {
        let rows = try await client.query(query, logger: logger)
        var result: [Row] = []
        let decoder = JSONDecoder()
        for try await text in rows.decode(String.self) { result.append(try decoder.decode(Row.self, from: Data(text.utf8))) }
        return result
    }
}
