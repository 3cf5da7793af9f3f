import Hummingbird
import LoyaltyStore

/// `GET /v1/members/{id}/tier-history`: every tier change of a member, newest first (admin, support, readonly,
/// like the ledger history): from and to tier, when, why, and who (the actor and its role).
enum TierHistoryRoutes {
    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["cursor", "limit"])
        let memberID = try parameters.id()
        try await LedgerRoutes.requireMember(memberID, context, services)
        let page = try await services.tiers(context).history(
            memberID: memberID, before: try parameters.cursor(), limit: try parameters.limit())
        return try JSONResponse.make(Page(items: page.changes.map(TierChangeItem.init), nextCursor: page.nextCursor))
    }
}

struct TierChangeItem: Encodable, Sendable {
    var change: TierHistoryEntry

    init(_ change: TierHistoryEntry) { self.change = change }

    enum CodingKeys: String, CodingKey {
        case changeID = "change_id", changedAt = "changed_at", fromTier = "from_tier", toTier = "to_tier", reason
        case spendMinor = "spend_minor", actor, actorRole = "actor_role"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(change.changeId, forKey: .changeID)
        try container.encode(change.changedAt, forKey: .changedAt)
        try container.encode(change.fromTier, forKey: .fromTier)
        try container.encode(change.toTier, forKey: .toTier)
        try container.encode(change.reason, forKey: .reason)
        try container.encode(change.spendMinor, forKey: .spendMinor)
        try container.encode(change.actor, forKey: .actor)
        try container.encode(change.actorRole, forKey: .actorRole)
    }
}
