/// What an admin token may do. The HTTP layer decides which roles each route admits; this is only the vocabulary,
/// shared with the `admin_tokens.role` CHECK constraint.
public enum AdminRole: String, Sendable, CaseIterable, Codable, Comparable {
    /// Everything.
    case admin
    /// Campaigns, segments and reports; reads member search and balances.
    case marketer
    /// Members read/update/block/unblock, ledger history, adjustments up to a limit.
    case support
    /// GET only.
    case readonly

    public static func < (lhs: AdminRole, rhs: AdminRole) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Who made an admin request: the token, its name and role. Recorded on every audit row.
public struct AdminActor: Sendable, Equatable {
    public var tokenID: Int64
    public var name: String
    public var role: AdminRole

    public init(tokenID: Int64, name: String, role: AdminRole) {
        self.tokenID = tokenID
        self.name = name
        self.role = role
    }

    /// The journal entries' `actor` for ledger writes made with this token.
    public var ledgerActor: String { "admin:\(tokenID)" }
}

/// Who and which request: what an audited write needs besides its own before and after.
public struct AuditContext: Sendable, Equatable {
    public var actor: AdminActor
    public var requestID: String

    public init(actor: AdminActor, requestID: String) {
        self.actor = actor
        self.requestID = requestID
    }
}
