/// Outstanding balances of the members of one tier in one unit.
public struct LiabilityRow: Sendable, Codable, Equatable {
    public var tierCode: String
    public var tierRank: Int
    public var unit: String
    public var available: Int64
    public var pending: Int64
    public var held: Int64
    /// Members with a non-zero balance in any of the three buckets.
    public var members: Int64

    enum CodingKeys: String, CodingKey {
        case tierCode = "tier_code", tierRank = "tier_rank", unit, available, pending, held, members
    }
}

/// What is due to expire on one day (UTC) in one unit.
public struct ExpiringDay: Sendable, Codable, Equatable {
    /// `YYYY-MM-DD`, UTC.
    public var date: String
    public var unit: String
    /// Remaining amount of the lots expiring that day. The expiry job takes at most the member's available
    /// balance, so this is an upper bound.
    public var amount: Int64
    public var lots: Int64
    public var members: Int64
}

/// Accruals and redemptions booked on one day (UTC, by the entries' business time) in one unit.
public struct DailyTotals: Sendable, Codable, Equatable {
    public var date: String
    public var unit: String
    public var accrued: Int64
    public var accruals: Int64
    public var redeemed: Int64
    public var redemptions: Int64
}
