import Foundation
import LoyaltyCore
import NIOCore
import PostgresNIO

/// An adjustment made through the admin API, with the balances before it.
public struct AuditedAdjustment: Sendable, Equatable {
    public var receipt: LedgerReceipt
    /// The member's balances in the adjustment's unit just before it (on a replay: now, unchanged).
    public var balancesBefore: MemberBalances
}

extension LedgerStore {
    /// `adjust`, with its audit row in the same transaction; a replay (same key, same request) returns the first
    /// receipt and writes no second row. An erased member is refused (`member_not_active`): nothing belongs to
    /// nobody. The request hash is `adjust`'s, so a key used here and through `adjust` is the same request.
    /// With `dailyLimit`, an adjustment that takes the actor's |delta| of this UTC day past it is rolled back and
    /// refused (`dailyAdjustmentLimitReached`); a replay is answered as before, whatever the day's usage.
    public func adjust(
        _ request: AdjustmentRequest, key: IdempotencyKey?, audit: AuditContext, dailyLimit: DailyAdjustmentLimit? = nil
    ) async throws(LedgerStoreError) -> AuditedAdjustment {
        let hash = ByteBuffer(bytes: requestHash("adjust", request))
        let logger = self.logger
        do {
            return try await client.transaction(logger: logger) { connection in
                if dailyLimit != nil {
                    try await DailyAdjustmentLimit.lock(actor: request.actor, on: connection, logger: logger)
                }
                // The member lock the ledger function takes anyway, taken first to read the balances before.
                let rows = try await connection.query(
                    """
                    SELECT status, ledger_balances(member_id, \(request.unit.rawValue))::text
                    FROM members WHERE member_id = \(request.memberID) FOR UPDATE
                    """, logger: logger)
                var found: (status: String, balances: String)?
                for try await row in rows.decode((String, String).self) { found = row }
                guard let found else { throw LedgerStoreError.unknownMember(request.memberID) }
                guard found.status != "erased" else {
                    throw LedgerStoreError.memberNotActive(memberID: request.memberID, status: found.status)
                }
                let before = try LedgerJSON.decoder.decode(MemberBalances.self, from: Data(found.balances.utf8))
                let replies = try await connection.query(
                    """
                    SELECT ledger_adjust(\(key?.scope)::text, \(key?.key)::text, \(hash), \(request.memberID),
                        \(request.unit.rawValue), \(request.delta), \(request.reason), \(request.actor),
                        coalesce(\(request.expiresAt)::timestamptz, now() + make_interval(days => \(request.expiresAfterDays)::int4)))::text
                    """, logger: logger)
                var text: String?
                for try await reply in replies.decode(String.self) { text = reply }
                guard let text else { throw LedgerStoreError.invariantViolated("ledger_adjust returned no row") }
                let receipt = try LedgerJSON.decoder.decode(LedgerReceipt.self, from: Data(text.utf8))
                if let dailyLimit, !receipt.replayed {
                    // Counted after the write, so the sum includes it; throwing rolls the adjustment back.
                    let usage = try await DailyAdjustmentLimit.usage(actor: request.actor, unit: request.unit, on: connection, logger: logger)
                    if usage.used > dailyLimit.limit {
                        let requested = Int64(request.delta.magnitude)
                        throw LedgerStoreError.dailyAdjustmentLimitReached(DailyAdjustmentUsage(
                            unit: request.unit, limit: dailyLimit.limit, usedBefore: usage.used - requested,
                            requested: requested, resetsAt: usage.resetsAt))
                    }
                }
                if !receipt.replayed {
                    let unit = JSONValue.string(request.unit.rawValue)
                    try await AuditLogStore.write(
                        AuditRecord(
                            action: "member.adjust", resource: AdminMemberStore.resource(request.memberID),
                            before: .object([
                                "unit": unit, "available": .integer(before.available), "pending": .integer(before.pending),
                                "held": .integer(before.held),
                            ]),
                            after: .object([
                                "unit": unit, "delta": .integer(request.delta), "reason": .string(request.reason),
                                "entry_id": .integer(receipt.entryId), "available": .integer(receipt.balances.available),
                                "pending": .integer(receipt.balances.pending), "held": .integer(receipt.balances.held),
                            ])),
                        context: audit, on: connection, logger: logger)
                }
                return AuditedAdjustment(receipt: receipt, balancesBefore: before)
            }
        } catch let error as DecodingError {
            throw .invariantViolated("unexpected ledger reply (\(error)); are the migrations current?")
        } catch {
            throw LedgerStoreError.from(error)
        }
    }
}
