import Hummingbird
import LoyaltyStore

/// Every route of the admin HTTP API, in one table. Roles: `admin` may do everything; `marketer` reads member
/// search and balances and manages segments and campaigns; `support` reads and updates members, blocks and unblocks, reads ledger history and
/// adjusts up to `AdminPolicy.supportAdjustmentLimit`; `readonly` may only GET.
public enum AdminRouteTable {
    static let readers: Set<AdminRole> = [.admin, .marketer, .support, .readonly]
    static let staff: Set<AdminRole> = [.admin, .support]
    static let adminOnly: Set<AdminRole> = [.admin]
    static let marketing: Set<AdminRole> = [.admin, .marketer]

    public static let routes: [AdminRoute] = [
        AdminRoute(.get, "/health", .anonymous, HealthRoutes.health),
        AdminRoute(.get, "/ready", .anonymous, HealthRoutes.ready),
        AdminRoute(.get, "/openapi.json", .anonymous, HealthRoutes.openAPI),
        AdminRoute(.get, "/metrics", .anonymous, HealthRoutes.metrics),

        AdminRoute(.post, "/v1/members", .roles(adminOnly), MemberRoutes.create),
        AdminRoute(.get, "/v1/members", .roles(readers), MemberRoutes.search),
        AdminRoute(.get, "/v1/members/{id}", .roles(readers), MemberRoutes.get),
        AdminRoute(.patch, "/v1/members/{id}", .roles(staff), MemberRoutes.update),
        AdminRoute(.post, "/v1/members/{id}/block", .roles(staff), MemberRoutes.block),
        AdminRoute(.post, "/v1/members/{id}/unblock", .roles(staff), MemberRoutes.unblock),
        AdminRoute(.post, "/v1/members/{id}/erase", .roles(adminOnly), MemberRoutes.erase),

        AdminRoute(.get, "/v1/members/{id}/balances", .roles(readers), LedgerRoutes.balances),
        AdminRoute(.get, "/v1/members/{id}/ledger", .roles([.admin, .support, .readonly]), LedgerRoutes.history),
        AdminRoute(.post, "/v1/members/{id}/adjustments", .roles(staff), LedgerRoutes.adjust),

        AdminRoute(.post, "/v1/segments", .roles(marketing), SegmentRoutes.create),
        AdminRoute(.get, "/v1/segments", .roles(readers), SegmentRoutes.list),
        AdminRoute(.post, "/v1/segments/preview", .roles(marketing), SegmentRoutes.preview),
        AdminRoute(.get, "/v1/segments/{id}", .roles(readers), SegmentRoutes.get),
        AdminRoute(.post, "/v1/segments/{id}/refresh", .roles(marketing), SegmentRoutes.refresh),

        AdminRoute(.post, "/v1/campaigns", .roles(marketing), CampaignRoutes.create),
        AdminRoute(.get, "/v1/campaigns", .roles(readers), CampaignRoutes.list),
        AdminRoute(.get, "/v1/campaigns/{id}", .roles(readers), CampaignRoutes.get),
        AdminRoute(.patch, "/v1/campaigns/{id}", .roles(marketing), CampaignRoutes.update),
        AdminRoute(.post, "/v1/campaigns/{id}/schedule", .roles(marketing), CampaignRoutes.schedule),
        AdminRoute(.post, "/v1/campaigns/{id}/cancel", .roles(marketing), CampaignRoutes.cancel),
        AdminRoute(.post, "/v1/campaigns/{id}/trigger", .roles(marketing), CampaignRoutes.trigger),

        AdminRoute(.get, "/v1/audit", .roles(adminOnly), AuditRoutes.list),
    ]
}
