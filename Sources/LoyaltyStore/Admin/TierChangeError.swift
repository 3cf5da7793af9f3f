/// Why an admin change of the tier ladder was refused. Each case is one thing the caller can fix, so the HTTP
/// layer gives each its own problem code.
public enum TierChangeError: Error, Equatable, CustomStringConvertible {
    /// A field value the tiers table refuses; `field` is the API's name for it.
    case invalid(field: String, reason: String)
    case exists(code: String)
    case unknown(code: String)
    case rankTaken(rank: Int, by: String)
    case thresholdsNotIncreasing(lower: String, higher: String)
    /// The ladder as a whole would break: no tier left, or the lowest one needs spend.
    case ladder(String)
    case inUse(code: String, members: Int64)
    /// Members' tier history names the tier, so deleting it would rewrite history.
    case inHistory(code: String, changes: Int64)
    case tooMany(limit: Int)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "field \"\(field)\" \(reason)"
        case .exists(let code): "tier \"\(code)\" already exists; change it with PATCH /v1/tiers/\(code)"
        case .unknown(let code): "tier \"\(code)\" not found"
        case .rankTaken(let rank, let other): "rank \(rank) is taken by tier \"\(other)\"; ranks are unique"
        case .thresholdsNotIncreasing(let lower, let higher):
            "tier \"\(higher)\" ranks above \"\(lower)\" but does not need more spend; thresholds must rise with rank"
        case .ladder(let reason): reason
        case .inUse(let code, let members): "tier \"\(code)\" still has \(members) members; move them to another tier first"
        case .inHistory(let code, let changes):
            "tier \"\(code)\" appears in \(changes) recorded tier changes and cannot be deleted; keep it, or give it another name"
        case .tooMany(let limit): "the ladder holds at most \(limit) tiers"
        }
    }
}
