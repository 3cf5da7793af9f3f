/// Errors of the admin stores, each naming what the caller can fix. The HTTP layer maps them to problems:
/// `invalid` to 400, `notFound` to 404, `conflict` to 409.
public enum AdminStoreError: Error, Equatable, CustomStringConvertible {
    /// A value the database refuses; `field` is the API's name for it.
    case invalid(field: String, reason: String)
    case notFound(String)
    /// The change collides with the current state: a card number in use, a stale version, an erased member.
    case conflict(String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "field \"\(field)\" \(reason)"
        case .notFound(let what): "\(what) not found"
        case .conflict(let text): text
        }
    }
}
