import Hummingbird
import LoyaltyStore

/// Every route of the admin HTTP API, in one table. Roles: `admin` may do everything (alone: tier changes,
/// the tier review preview, terminals, rules reload, the audit log); `marketer` reads member search and balances, manages segments and
/// campaigns, validates rules and reads reports; `support` reads and updates members (not their tier), blocks and unblocks, reads
/// ledger history and adjusts up to `AdminPolicy.supportAdjustmentLimit`; `readonly` may only GET (reports too).
public enum AdminRouteTable {
    static let readers: Set<AdminRole> = [.admin, .marketer, .support, .readonly]
    static let staff: Set<AdminRole> = [.admin, .support]
    static let adminOnly: Set<AdminRole> = [.admin]
    static let marketing: Set<AdminRole> = [.admin, .marketer]
    static let reporting: Set<AdminRole> = [.admin, .marketer, .readonly]

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
        AdminRoute(.get, "/v1/members/{id}/lots", .roles([.admin, .support, .readonly]), LotRoutes.list),
        AdminRoute(.get, "/v1/members/{id}/tier-history", .roles([.admin, .support, .readonly]), TierHistoryRoutes.list),
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

        AdminRoute(.get, "/v1/tiers", .roles(readers), TierRoutes.list),
        AdminRoute(.post, "/v1/tiers", .roles(adminOnly), TierRoutes.create),
        AdminRoute(.get, "/v1/tiers/{code}", .roles(readers), TierRoutes.get),
        AdminRoute(.patch, "/v1/tiers/{code}", .roles(adminOnly), TierRoutes.update),
        AdminRoute(.delete, "/v1/tiers/{code}", .roles(adminOnly), TierRoutes.delete),
        AdminRoute(.get, "/v1/tier-review/preview", .roles(adminOnly), TierReviewRoutes.preview),

        AdminRoute(.get, "/v1/terminals", .roles(adminOnly), TerminalRoutes.list),
        AdminRoute(.post, "/v1/terminals", .roles(adminOnly), TerminalRoutes.register),
        AdminRoute(.get, "/v1/terminals/{id}", .roles(adminOnly), TerminalRoutes.get),
        AdminRoute(.post, "/v1/terminals/{id}/rotate", .roles(adminOnly), TerminalRoutes.rotate),
        AdminRoute(.post, "/v1/terminals/{id}/disable", .roles(adminOnly), TerminalRoutes.disable),

        AdminRoute(.get, "/v1/rules", .roles(readers), RulesRoutes.current),
        AdminRoute(.post, "/v1/rules/validate", .roles(marketing), RulesRoutes.validate),
        AdminRoute(.post, "/v1/rules/reload", .roles(adminOnly), RulesRoutes.reload),

        AdminRoute(.get, "/v1/reports/liability", .roles(reporting), ReportRoutes.liability),
        AdminRoute(.get, "/v1/reports/expiring", .roles(reporting), ReportRoutes.expiring),
        AdminRoute(.get, "/v1/reports/daily", .roles(reporting), ReportRoutes.daily),

        AdminRoute(.get, "/v1/audit", .roles(adminOnly), AuditRoutes.list),
    ]
}
