import Hummingbird
import LoyaltyCore
import LoyaltyStore

/// `GET /v1/members/{id}/lots`: what makes up a member's balance, lot by lot (admin, support, readonly, like the
/// ledger history): how much is left of each, when it was earned, becomes spendable and expires.
enum LotRoutes {
    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["unit", "cursor", "limit"])
        let memberID = try parameters.id()
        var unit: LedgerUnit?
        if let text = parameters.string("unit") {
            guard let value = LedgerUnit(rawValue: text) else {
                throw APIProblem.invalidParameter("query parameter \"unit\" must be \"points\" or \"cashback_minor\"")
            }
            unit = value
        }
        try await LedgerRoutes.requireMember(memberID, context, services)
        let page = try await services.ledger(context).openLots(
            memberID: memberID, unit: unit, after: try parameters.cursor(), limit: try parameters.limit())
        return try JSONResponse.make(Page(items: page.lots.map(LotItem.init), nextCursor: page.nextCursor))
    }
}

/// One open lot as the API shows it; `expires_at` null means it never expires.
struct LotItem: Encodable, Sendable {
    var lot: OpenLot

    init(_ lot: OpenLot) { self.lot = lot }

    enum CodingKeys: String, CodingKey {
        case lotID = "lot_id", unit, state, originalAmount = "original_amount", remainingAmount = "remaining_amount"
        case earnedAt = "earned_at", availableAt = "available_at", expiresAt = "expires_at", entryID = "entry_id", kind
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lot.lotId, forKey: .lotID)
        try container.encode(lot.unit.rawValue, forKey: .unit)
        try container.encode(lot.state, forKey: .state)
        try container.encode(lot.originalAmount, forKey: .originalAmount)
        try container.encode(lot.remainingAmount, forKey: .remainingAmount)
        try container.encode(lot.earnedAt, forKey: .earnedAt)
        try container.encode(lot.availableAt, forKey: .availableAt)
        try container.encode(lot.expiresAt, forKey: .expiresAt)
        try container.encode(lot.entryId, forKey: .entryID)
        try container.encode(lot.kind, forKey: .kind)
    }
}
