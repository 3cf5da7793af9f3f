import Hummingbird
import Logging
import LoyaltyCache
import LoyaltyStore
import NIOCore
import PostgresNIO
import Prometheus

/// Limits the admin API applies on top of roles.
public struct AdminPolicy: Sendable, Equatable {
    /// The largest |delta| a `support` token may adjust in one adjustment (in the adjustment's unit); larger ones
    /// need an admin.
    public var supportAdjustmentLimit: Int64
    /// The most |delta| one `support` token may adjust per UTC day, summed per unit: without it, many adjustments
    /// each under `supportAdjustmentLimit` add up to any amount.
    public var supportDailyAdjustmentLimit: Int64

    public static let defaultSupportAdjustmentLimit: Int64 = 10_000
    public static let defaultSupportDailyAdjustmentLimit: Int64 = 25_000

    public init(
        supportAdjustmentLimit: Int64 = defaultSupportAdjustmentLimit,
        supportDailyAdjustmentLimit: Int64 = defaultSupportDailyAdjustmentLimit
    ) {
        precondition(supportAdjustmentLimit >= 0 && supportDailyAdjustmentLimit >= 0, "a limit is not negative")
        self.supportAdjustmentLimit = supportAdjustmentLimit
        self.supportDailyAdjustmentLimit = supportDailyAdjustmentLimit
    }

    /// Longest a report query may run (PostgreSQL's statement timeout); past it the report is `503` with
    /// Retry-After.
    public var reportStatementTimeoutMs: Int = ReportStore.statementTimeoutMs
}

/// What the admin handlers use. Stores are made per request with the request's logger, so their log lines
/// carry the request id.
struct AdminServices: Sendable {
    let postgres: PostgresClient
    let probe: ReadinessProbe
    let cache: MemberCache?
    let policy: AdminPolicy
    /// docs/openapi.json as read at start; nil when it was missing.
    let openAPIDocument: ByteBuffer?
    /// What `/metrics` exports; nil when the process bootstrapped no metrics backend.
    let metrics: PrometheusCollectorRegistry?
    /// The rules in force, for `/v1/rules`; nil when the process serves no rules (the rules routes answer 404).
    let rules: CurrentRules?

    /// Accepted tokens for a second (one lookup per token per second, not per request).
    let tokenCache = AdminTokenCache()

    var authenticator: AdminAuthenticator { AdminAuthenticator(postgres: postgres, tokens: tokenCache) }

    func members(_ context: AdminRequestContext) -> AdminMemberStore {
        AdminMemberStore(client: postgres, logger: context.logger)
    }

    func ledger(_ context: AdminRequestContext) -> LedgerStore {
        LedgerStore(client: postgres, logger: context.logger)
    }

    func campaigns(_ context: AdminRequestContext) -> CampaignAdminStore {
        CampaignAdminStore(client: postgres, logger: context.logger)
    }

    func campaignRuns(_ context: AdminRequestContext) -> CampaignStore {
        CampaignStore(client: postgres, logger: context.logger)
    }

    func tiers(_ context: AdminRequestContext) -> TierStore {
        TierStore(client: postgres, logger: context.logger)
    }

    func terminals(_ context: AdminRequestContext) -> TerminalStore {
        TerminalStore(client: postgres, logger: context.logger)
    }

    func reports(_ context: AdminRequestContext) -> ReportStore {
        ReportStore(client: postgres, logger: context.logger, statementTimeoutMs: policy.reportStatementTimeoutMs)
    }

    func rulesHistory(_ context: AdminRequestContext) -> RulesHistoryStore {
        RulesHistoryStore(client: postgres, logger: context.logger)
    }

    func auditLog(_ context: AdminRequestContext) -> AuditLogStore {
        AuditLogStore(client: postgres, logger: context.logger)
    }

    /// Makes the till's cached copy of a member miss until a snapshot at least as new as `ledgerVersion` is put:
    /// after a block, an erasure or a changed card the till must not go on seeing the old one. A failure moves the
    /// cache to a new epoch (see `MemberCache`), so it is only logged.
    func eraseCachedMember(_ memberID: Int64, ledgerVersion: Int64, cardNumber: String?, phone: String?, logger: Logger) async {
        guard let cache else { return }
        do {
            try await cache.erase(memberID: memberID, ledgerVersion: ledgerVersion, cardNumber: cardNumber, phone: phone)
        } catch {
            logger.warning("member cache erasure refused", metadata: ["member": "\(memberID)", "error": "\(error)"])
        }
    }

    func invalidateCachedMember(_ memberID: Int64, ledgerVersion: Int64, logger: Logger) async {
        guard let cache else { return }
        do {
            try await cache.invalidate(memberID: memberID, ledgerVersion: ledgerVersion)
        } catch {
            logger.warning("member cache invalidation refused", metadata: ["member": "\(memberID)", "error": "\(error)"])
        }
    }
}
