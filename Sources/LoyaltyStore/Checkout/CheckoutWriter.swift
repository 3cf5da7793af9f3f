import Foundation
import Logging
import LoyaltyCore
import PostgresPipeline

/// The member as a till write left it, from the write's own answer (`checkout_result` of migration 0013): what the
/// cache needs to replace its copy without another read.
public struct CheckoutMemberRow: Sendable, Equatable {
    public var memberID: Int64
    public var ledgerVersion: Int64
    public var tierCode: String
    public var tierName: String
    public var status: String
    public var cardNumber: String?
    public var phone: String?
    public var points: MemberBalances
    public var cashbackMinor: MemberBalances
}

/// One commit's answer: the booked result and the member after it.
public struct CommitAnswer: Sendable, Equatable {
    public var result: CommitResult
    public var member: CheckoutMemberRow
}

/// The till's writes (commit, hold, cancel, refund) through libpq in pipeline mode (`PostgresPipeline`), each one
/// call of a lean `checkout_*` function of migration 0013 as a prepared statement with typed parameters.
///
/// Guarantees: an answer is returned only after the call's pipeline Sync was answered, i.e. after PostgreSQL
/// committed it (no confirming statement is needed). A connection lost with a call in flight answers
/// `unavailable` at once: the outcome is unknown and the till retries with the same id, which the idempotency key
/// makes safe. A call whose deadline passes before it is sent is not sent.
public final class CheckoutWriter: Sendable {
    /// Most commits in one batch call: the SQL function refuses more than 64.
    public static let maximumBatch = 32

    let pool: PipelinePool
    let logger: Logger

    public init(pool: PipelinePool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Opens `connections` pipeline connections to `url`.
    public static func connect(url: DatabaseURL, connections: Int, connectTimeoutMs: Int = 5_000, logger: Logger) async throws -> CheckoutWriter {
        var configuration = PipelineConfiguration(conninfo: url.conninfo(connectTimeoutMs: connectTimeoutMs), logger: logger)
        configuration.connectTimeout = .milliseconds(connectTimeoutMs)
        return CheckoutWriter(pool: try await PipelinePool.connect(configuration, size: connections), logger: logger)
    }

    public func close() async { await pool.close(drain: true) }

    // MARK: Commit

    /// The batch behind the campaigns check of migration 0017 (`$20`: the campaigns version each commit was priced
    /// with). A new commit's answer comes as columns, read without JSON decoding (JSONDecoder was the largest
    /// single cost of reading the answer); only a replay, whose booked lines may differ from this pricing, brings
    /// its stored JSON.
    static let commitSQL = """
        SELECT position, sqlstate, message, detail, member_id, ledger_version, tier_code, tier_name, status, card_number,
            phone, points_available, points_pending, points_held, cashback_available, cashback_pending, cashback_held,
            (response ->> 'replayed')::boolean AS replayed, response ->> 'accrual_entry_id' AS accrual_entry_id,
            response ->> 'redemption_entry_id' AS redemption_entry_id, response ->> 'awarded' AS awarded,
            response ->> 'redeemed' AS redeemed, response -> 'tier_change' ->> 'from' AS tier_from,
            response -> 'tier_change' ->> 'to' AS tier_to, response -> 'tier_change' ->> 'reason' AS tier_reason,
            CASE WHEN (response ->> 'replayed')::boolean THEN response::text END AS response
        FROM checkout_commit_batch_checked($20::bigint[], $1::text[], $2::text[], $3::bytea[], $4::text[],
            $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::timestamptz[], $11::timestamptz[],
            $12::timestamptz[], $13::text[], $14::jsonb[], $15::bigint[], $16::jsonb[], $17::bigint[], $18::bigint[],
            $19::bigint[])
        """

    /// Commits of many tills in one call and one transaction. Each item succeeds or fails on its own; when the call
    /// as a whole fails (PostgreSQL unreachable, connection lost), every item gets that error.
    public func commitBatch(
        _ items: [(POSCommit, POSCommitPricing)], deadline: ContinuousClock.Instant? = nil
    ) async -> [Result<CommitAnswer, LedgerStoreError>] {
        precondition(!items.isEmpty && items.count <= Self.maximumBatch, "batches are 1-\(Self.maximumBatch) commits")
        var answers: [Result<CommitAnswer, LedgerStoreError>?] = Array(repeating: nil, count: items.count)
        var sent: [Int] = []
        var columns = Array(repeating: [String?](), count: 20)
        for (index, (commit, pricing)) in items.enumerated() {
            do throws(LedgerStoreError) {
                let key = try CheckoutStore.key(terminalID: commit.terminalID, "commit", commit.posTransactionID)
                let lines = Self.linesJSON(pricing.lines)
                let values: [String?] = [
                    key.scope, key.key, PostgresTextLiteral.bytea(commit.requestHash), commit.terminalID,
                    commit.posTransactionID, String(commit.memberID), pricing.pricedAtTier, pricing.unit.rawValue,
                    String(pricing.award), PostgresTextLiteral.timestamp(pricing.availableAt),
                    pricing.expiresAt.map(PostgresTextLiteral.timestamp), PostgresTextLiteral.timestamp(commit.purchasedAt),
                    pricing.rulesVersion, pricing.explanationJSON, String(pricing.spendMinor), lines,
                    String(pricing.paidTotalMinor), commit.holdID.map(String.init), String(commit.redeemPoints),
                    pricing.campaignsVersion.map(String.init),
                ]
                for (column, value) in values.enumerated() { columns[column].append(value) }
                sent.append(index)
            } catch {
                answers[index] = .failure(error)
            }
        }
        if !sent.isEmpty {
            let statement = PipelineStatement(
                sql: Self.commitSQL, parameters: columns.map { .text(PostgresTextLiteral.array($0)) },
                preparedName: "checkout_commit_batch_v3", deadline: deadline)
            do {
                let result = try await pool.execute(statement)
                guard result.rows.count == sent.count else {
                    throw LedgerStoreError.invariantViolated("checkout_commit_batch answered \(result.rows.count) rows for \(sent.count) commits")
                }
                for row in result.rows.indices {
                    guard let position = result.value(row: row, column: "position").flatMap(Int.init), (1...sent.count).contains(position) else {
                        throw LedgerStoreError.invariantViolated("checkout_commit_batch answered a row without a valid position")
                    }
                    answers[sent[position - 1]] = Self.commitAnswer(result, row: row, pricing: items[sent[position - 1]].1)
                }
            } catch {
                let failure = Self.storeError(error)
                for index in sent where answers[index] == nil { answers[index] = .failure(failure) }
            }
        }
        return answers.map { answer in
            guard let answer else { return .failure(Self.unreadable("checkout_commit_batch left a commit unanswered")) }
            // After the Sync the batch committed: an answer we cannot read is retried with the same id, which
            // replays the stored answer, instead of telling the till the sale failed.
            if case .failure(.invariantViolated(let reason)) = answer { return .failure(Self.unreadable(reason)) }
            return answer
        }
    }

    /// The purchase's lines as the JSON the ledger stores (`CheckoutLine`'s keys), written by hand: JSONEncoder was
    /// a large share of a commit's CPU.
    static func linesJSON(_ lines: [CheckoutLine]) -> String {
        "[" + lines.map { line in
            "{\"line_id\":\(JSONText.quoted(line.lineID)),\"quantity\":\(line.quantity),\"paid_minor\":\(line.paidMinor),\"award\":\(line.award)}"
        }.joined(separator: ",") + "]"
    }

    // MARK: Hold, cancel, refund

    public func hold(_ request: POSHold, deadline: ContinuousClock.Instant? = nil) async throws(LedgerStoreError) -> (result: HoldResult, member: CheckoutMemberRow) {
        let key = try CheckoutStore.key(terminalID: request.terminalID, "hold", request.posTransactionID)
        let expiresAt = Date().addingTimeInterval(TimeInterval(request.holdSeconds))
        return try await single(
            "checkout_hold_v1", "SELECT * FROM checkout_hold($1, $2, $3::bytea, $4, $5, $6::bigint, $7::bigint, $8::timestamptz)",
            [key.scope, key.key, PostgresTextLiteral.bytea(requestHash("pos-hold", request)), request.terminalID,
             request.posTransactionID, String(request.memberID), String(request.points), PostgresTextLiteral.timestamp(expiresAt)],
            deadline: deadline)
    }

    /// Voids the purchase committed under the id on this terminal, or else releases the hold taken under it.
    public func cancel(terminalID: String, posTransactionID: String, deadline: ContinuousClock.Instant? = nil) async throws(LedgerStoreError) -> (result: CancelResult, member: CheckoutMemberRow) {
        let key = try CheckoutStore.key(terminalID: terminalID, "cancel", posTransactionID)
        return try await single(
            "checkout_cancel_v1", "SELECT * FROM checkout_cancel($1, $2, $3::bytea, $4, $5, $6)",
            [key.scope, key.key, PostgresTextLiteral.bytea(requestHash("pos-cancel", ["txn": posTransactionID])), terminalID,
             posTransactionID, terminalID],
            deadline: deadline)
    }

    /// The id of the hold taken under `posTransactionID` on this terminal, from the hold's stored answer; nil when
    /// no hold was taken under it.
    public func heldID(terminalID: String, posTransactionID: String) async throws(LedgerStoreError) -> Int64? {
        let key = try CheckoutStore.key(terminalID: terminalID, "hold", posTransactionID)
        let result: PipelineResult
        do {
            result = try await pool.execute(.prepared(
                "checkout_hold_of_v1",
                "SELECT (response->>'hold_id')::bigint FROM idempotency_keys WHERE scope = $1 AND key = $2",
                [key.scope, key.key]))
        } catch {
            throw Self.storeError(error)
        }
        return result.scalar.flatMap { Int64($0) }
    }

    /// Returns lines of a purchase, planned from the purchase's current state (`RefundPlan`); when another refund
    /// of the same purchase lands first, the plan is made again.
    public func refund(_ refund: POSRefund, deadline: ContinuousClock.Instant? = nil) async throws(LedgerStoreError) -> (result: RefundResult, member: CheckoutMemberRow) {
        let key = try CheckoutStore.key(terminalID: refund.terminalID, "refund", refund.refundID)
        let hash = PostgresTextLiteral.bytea(requestHash("pos-refund", refund))
        var attempt = 0
        while true {
            attempt += 1
            guard let record = try await checkoutRecord(terminalID: refund.originalTerminalID, posTransactionID: refund.originalPOSTransactionID)
            else { throw .unknownTransaction(terminalID: refund.originalTerminalID, posTransactionID: refund.originalPOSTransactionID) }
            // An unplannable refund may still be a replay of one that was planned and applied: the function answers
            // replays before it looks at the plan, so send a zero plan and let the key decide.
            var plan: RefundPlan?
            var planError: ProportionalReversalError?
            do {
                plan = try RefundPlan.plan(
                    lines: record.lines, returnedBefore: record.returned, returning: refund.returning,
                    redeemedPoints: record.redeemed, refundedBeforeMinor: record.refundedMinor)
            } catch {
                planError = error
            }
            let returned: String
            do {
                returned = String(decoding: try JSONEncoder().encode(plan?.returnedAfter ?? record.returned), as: UTF8.self)
            } catch {
                throw .invalidAmount("returned quantities could not be encoded: \(error)")
            }
            do {
                return try await single(
                    "checkout_refund_v1",
                    """
                    SELECT * FROM checkout_refund($1, $2, $3::bytea, $4, $5, $6::integer, $7::jsonb, $8::bigint, $9::bigint,
                        $10::bigint, $11::timestamptz, $12, $13::jsonb, $14::boolean)
                    """,
                    [key.scope, key.key, hash, refund.originalTerminalID, refund.originalPOSTransactionID,
                     String(planError == nil ? record.refundVersion : -1), returned, String(plan?.refundedMinor ?? 0),
                     String(plan?.awardToReverse ?? 0), String(plan?.pointsToRestore ?? 0), PostgresTextLiteral.timestamp(Date()),
                     refund.terminalID, refund.explanationJSON, "false"],
                    deadline: deadline)
            } catch .refundConflict(let id) {
                if let planError { throw .invalidRefund(planError) }
                guard attempt < CheckoutStore.refundAttempts else { throw .refundConflict(posTransactionID: id) }
            }
        }
    }

    /// The purchase record a refund is planned from.
    func checkoutRecord(terminalID: String, posTransactionID: String) async throws(LedgerStoreError) -> CheckoutRecord? {
        let result: PipelineResult
        do {
            result = try await pool.execute(.prepared("checkout_record_v1", """
                SELECT jsonb_build_object('member_id', member_id, 'unit', unit, 'awarded', awarded, 'redeemed', redeemed,
                    'paid_total_minor', paid_total_minor, 'lines', lines, 'returned', returned,
                    'refunded_minor', refunded_minor, 'refund_version', refund_version, 'voided', voided,
                    'rules_version', rules_version)::text
                FROM pos_checkouts WHERE terminal_id = $1 AND pos_transaction_id = $2
                """, [terminalID, posTransactionID]))
        } catch {
            throw Self.storeError(error)
        }
        guard let text = result.scalar else { return nil }
        // A plain decoder: snake_case conversion would also rewrite the line ids used as keys of `returned`.
        return try Self.decode(CheckoutRecord.self, text, decoder: JSONDecoder()).get()
    }

    // MARK: Plumbing

    private func single<Response: Decodable>(
        _ name: String, _ sql: String, _ parameters: [String?], deadline: ContinuousClock.Instant?
    ) async throws(LedgerStoreError) -> (result: Response, member: CheckoutMemberRow) {
        let result: PipelineResult
        do {
            result = try await pool.execute(.prepared(name, sql, parameters, deadline: deadline))
        } catch {
            throw Self.storeError(error)
        }
        do throws(LedgerStoreError) {
            guard result.rows.count == 1 else { throw .invariantViolated("\(name) answered \(result.rows.count) rows") }
            let (response, member) = try Self.answer(result, row: 0).get()
            return (try Self.decode(Response.self, response, decoder: LedgerJSON.decoder).get(), member)
        } catch .invariantViolated(let reason) {
            throw Self.unreadable(reason)
        }
    }

    /// A committed call whose answer could not be read: retryable (the retry gets the stored answer), logged loudly
    /// by the caller as unavailable. Persisting, it means the server and the migrations disagree.
    static func unreadable(_ reason: String) -> LedgerStoreError {
        .unavailable("the ledger's answer could not be read (\(reason)); the write may have been applied: retry with the same id")
    }

    /// A `checkout_result` row: its error, or its response text and member.
    /// A commit's answer from the columns of `commitSQL`. A new commit booked exactly what it sent: its lines,
    /// unit and rules version are this pricing's (migration 0013 stores them from the call's arrays), the rest
    /// comes from the row. A replay answers its stored response.
    static func commitAnswer(_ result: PipelineResult, row: Int, pricing: POSCommitPricing) -> Result<CommitAnswer, LedgerStoreError> {
        func text(_ column: String) -> String? { result.value(row: row, column: column) }
        func int(_ column: String) -> Int64? { text(column).flatMap { Int64($0) } }
        return member(result, row: row).flatMap { member -> Result<CommitAnswer, LedgerStoreError> in
            if text("replayed") == "t" {
                guard let response = text("response") else {
                    return .failure(.invariantViolated("a replayed commit without its stored response; are the migrations current?"))
                }
                return Self.decode(CommitResult.self, response, decoder: JSONDecoder()).map { CommitAnswer(result: $0, member: member) }
            }
            guard text("replayed") == "f", let accrual = int("accrual_entry_id"), let redemption = int("redemption_entry_id"),
                  let awarded = int("awarded"), let redeemed = int("redeemed")
            else { return .failure(.invariantViolated("a commit answer without its entries; are the migrations current?")) }
            let tierChange = text("tier_from").flatMap { from in
                text("tier_to").map { TierChange(from: from, to: $0, reason: text("tier_reason") ?? "") }
            }
            return .success(CommitAnswer(result: CommitResult(
                accrualEntryId: accrual, redemptionEntryId: redemption, awarded: awarded, redeemed: redeemed, unit: pricing.unit,
                rulesVersion: pricing.rulesVersion, tierChange: tierChange, points: member.points, lines: pricing.lines,
                replayed: false), member: member))
        }
    }

    static func answer(_ result: PipelineResult, row: Int) -> Result<(String, CheckoutMemberRow), LedgerStoreError> {
        member(result, row: row).flatMap { member in
            guard let response = result.value(row: row, column: "response") else {
                return .failure(.invariantViolated("a checkout_result row without its response; are the migrations current?"))
            }
            return .success((response, member))
        }
    }

    /// The member columns of a checkout answer, or the error the row carries.
    static func member(_ result: PipelineResult, row: Int) -> Result<CheckoutMemberRow, LedgerStoreError> {
        func text(_ column: String) -> String? { result.value(row: row, column: column) }
        func int(_ column: String) -> Int64? { text(column).flatMap { Int64($0) } }
        if let state = text("sqlstate") {
            let message = text("message") ?? "error"
            return .failure(LedgerStoreError.from(state: state, detail: text("detail"), description: "\(message) (SQLSTATE \(state))"))
        }
        guard let memberID = int("member_id"), let version = int("ledger_version"),
              let tierCode = text("tier_code"), let tierName = text("tier_name"), let status = text("status"),
              let pointsAvailable = int("points_available"), let pointsPending = int("points_pending"), let pointsHeld = int("points_held"),
              let cashAvailable = int("cashback_available"), let cashPending = int("cashback_pending"), let cashHeld = int("cashback_held")
        else { return .failure(.invariantViolated("a checkout_result row without its member; are the migrations current?")) }
        return .success(CheckoutMemberRow(
            memberID: memberID, ledgerVersion: version, tierCode: tierCode, tierName: tierName, status: status,
            cardNumber: text("card_number"), phone: text("phone"),
            points: MemberBalances(available: pointsAvailable, pending: pointsPending, held: pointsHeld),
            cashbackMinor: MemberBalances(available: cashAvailable, pending: cashPending, held: cashHeld)))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String, decoder: JSONDecoder) -> Result<T, LedgerStoreError> {
        do {
            return .success(try decoder.decode(T.self, from: Data(text.utf8)))
        } catch {
            return .failure(.invariantViolated("unexpected checkout function reply (\(error)); are the migrations current?"))
        }
    }

    /// A failed call as a ledger error: server errors by SQLSTATE; a lost connection, a full queue or no connection
    /// as `unavailable` (the till retries with the same id); a deadline that passed before sending as `unavailable`
    /// too (nothing was sent).
    static func storeError(_ error: any Error) -> LedgerStoreError {
        if let known = error as? LedgerStoreError { return known }
        guard let pipeline = error as? PipelineError else { return .unavailable("\(error)") }
        switch pipeline {
        case .server(let server):
            return LedgerStoreError.from(state: server.sqlState, detail: server.detail, description: "\(server.message) (SQLSTATE \(server.sqlState))")
        case .outcomeUnknown, .unavailable, .queueFull, .closed, .deadlineExceeded:
            return .unavailable(pipeline.description + "; retry with the same id")
        case .client(let message):
            return .database(message)
        }
    }
}
