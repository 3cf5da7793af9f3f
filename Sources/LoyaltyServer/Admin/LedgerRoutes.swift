import Foundation
import Hummingbird
import LoyaltyCore
import LoyaltyStore

/// A member's balances, ledger history and manual adjustments.
enum LedgerRoutes {
    static let idempotencyKeyHeader = HTTPHeaderName("Idempotency-Key")!
    static let adjustmentFields: Set<String> = ["unit", "delta", "reason", "idempotency_key", "expires_at"]
    static let reasonLength = 3...200
    /// Largest correction in one adjustment (points or minor units): far beyond any real correction, and far
    /// enough from the 64-bit limit that balances and report sums cannot overflow.
    static let maximumDeltaMagnitude: UInt64 = 1_000_000_000_000

    /// Now, or with `as_of` (RFC 3339) as the ledger stood at that instant: every entry recorded up to it.
    @Sendable static func balances(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["as_of"])
        let memberID = try parameters.id()
        let asOf = try parameters.instant("as_of")
        let ledger = services.ledger(context)
        let points: MemberBalances
        let cashback: MemberBalances
        if let asOf {
            try await requireMember(memberID, context, services)
            points = try await ledger.balances(memberID: memberID, unit: .points, asOf: asOf)
            cashback = try await ledger.balances(memberID: memberID, unit: .cashbackMinor, asOf: asOf)
        } else {
            guard let current = try await ledger.currentBalances(memberID: memberID) else {
                throw APIProblem.notFound("member \(memberID) not found")
            }
            (points, cashback) = current
        }
        return try JSONResponse.make(BalancesBody(
            memberID: memberID, points: points, cashbackMinor: cashback, asOf: asOf.map(RulesBody.timestamp)))
    }

    /// Newest first; `cursor` is the previous page's `next_cursor`.
    @Sendable static func history(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["cursor", "limit"])
        let memberID = try parameters.id()
        try await requireMember(memberID, context, services)
        let page = try await services.ledger(context).historyJSON(
            memberID: memberID, before: try parameters.cursor(), limit: try parameters.limit())
        return JSONResponse.page(jsonItems: page.items, nextCursor: page.nextCursor)
    }

    /// A manual correction with a reason, idempotent on `idempotency_key` (or the Idempotency-Key header) per token.
    @Sendable static func adjust(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let memberID = try AdminRequestParameters(request, context).id()
        let audit = try context.auditContext()
        let body = try await JSONRequestBody.object(request)
        try body.allowOnly(adjustmentFields)
        let unitText = try body.required("unit", body.string)
        guard let unit = LedgerUnit(rawValue: unitText) else {
            throw APIProblem.invalidBody("field \"unit\" must be \"points\" or \"cashback_minor\"")
        }
        let delta = try body.required("delta", body.integer)
        guard delta != 0, delta.magnitude <= maximumDeltaMagnitude else {
            throw APIProblem(.invalidAmount, "field \"delta\" must be a non-zero integer from -\(maximumDeltaMagnitude) to \(maximumDeltaMagnitude)")
        }
        let reason = try TextInput.check(body.required("reason", body.string), field: "reason", length: reasonLength)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard reason.unicodeScalars.count >= reasonLength.lowerBound else {
            throw APIProblem.invalidBody("field \"reason\" must be \(reasonLength.lowerBound)-\(reasonLength.upperBound) characters")
        }
        let key = try idempotencyKey(body: body.string("idempotency_key").value, header: request.headers[idempotencyKeyHeader], actor: audit.actor)
        let expiry = try AdjustmentExpiry.read(body, delta: delta, rules: services.rules)
        if audit.actor.role == .support, delta.magnitude > UInt64(services.policy.supportAdjustmentLimit) {
            throw APIProblem(
                .forbidden,
                "support may adjust at most \(services.policy.supportAdjustmentLimit) per adjustment; ask an admin for \(delta)")
        }
        let dailyLimit = audit.actor.role == .support ? DailyAdjustmentLimit(limit: services.policy.supportDailyAdjustmentLimit) : nil
        let ledger = services.ledger(context)
        let outcome: Result<AuditedAdjustment, LedgerStoreError> = await LedgerMetrics.measureResult("admin_adjust") {
            () async throws(LedgerStoreError) in
            try await ledger.adjust(
                AdjustmentRequest(
                    memberID: memberID, unit: unit, delta: delta, reason: reason, actor: audit.actor.ledgerActor,
                    expiresAt: expiry.expiresAt, expiresAfterDays: expiry.expiresAfterDays),
                key: key, audit: audit, dailyLimit: dailyLimit)
        }
        if case .failure(.unavailable) = outcome, key == nil {
            // The connection may have dropped after the commit: without a key a blind retry could apply it twice.
            throw APIProblem(
                .unavailable,
                "PostgreSQL became unavailable; the adjustment may or may not have been applied: check the member's ledger before sending it again, and send an Idempotency-Key to make retries safe")
        }
        let adjustment = try outcome.get()
        let receipt = adjustment.receipt
        if !receipt.replayed {
            await services.invalidateCachedMember(memberID, ledgerVersion: receipt.ledgerVersion, logger: context.logger)
        }
        return try JSONResponse.make(AdjustmentBody(receipt), status: receipt.replayed ? .ok : .created)
    }

    /// Keys are per token (scope `admin:<token id>`): two tokens never collide on a key.
    static func idempotencyKey(body: String?, header: String?, actor: AdminActor) throws(APIProblem) -> IdempotencyKey? {
        if let body, let header, body != header {
            throw .invalidBody("field \"idempotency_key\" and the Idempotency-Key header differ; send one")
        }
        guard let key = body ?? header else { return nil }
        guard (1...IdempotencyKey.maximumKeyLength).contains(key.utf8.count) else {
            throw .invalidBody("field \"idempotency_key\" must be 1-\(IdempotencyKey.maximumKeyLength) bytes")
        }
        do {
            return try IdempotencyKey(scope: "admin:\(actor.tokenID)", key: key)
        } catch {
            throw .invalidBody("field \"idempotency_key\": \(error)")
        }
    }

    static func requireMember(_ memberID: Int64, _ context: AdminRequestContext, _ services: AdminServices) async throws {
        guard try await services.members(context).exists(memberID: memberID) else {
            throw APIProblem.notFound("member \(memberID) not found")
        }
    }
}

struct BalancesBody: Encodable, Sendable {
    var memberID: Int64
    var points: MemberBalances
    var cashbackMinor: MemberBalances
    /// The instant asked for (UTC); absent for the balances now.
    var asOf: String?

    enum CodingKeys: String, CodingKey {
        case memberID = "member_id", points, cashbackMinor = "cashback_minor", asOf = "as_of"
    }
}

struct AdjustmentBody: Encodable, Sendable {
    var entryID: Int64
    var memberID: Int64
    var unit: String
    var delta: Int64?
    var balances: MemberBalances
    var replayed: Bool

    enum CodingKeys: String, CodingKey {
        case entryID = "entry_id", memberID = "member_id", unit, delta, balances, replayed
    }

    init(_ receipt: LedgerReceipt) {
        self.entryID = receipt.entryId
        self.memberID = receipt.memberId
        self.unit = receipt.unit.rawValue
        self.delta = receipt.delta
        self.balances = receipt.balances
        self.replayed = receipt.replayed
    }
}
