import Foundation
import Hummingbird
import LoyaltyStore

/// Path and query parameters of admin requests, read strictly: an unknown query parameter, a repeated one, a
/// malformed id, cursor or limit, or an empty value (`?state=`) is a 400 `invalid_parameter` naming it.
struct AdminRequestParameters {
    static let defaultPageSize = 50
    static let maximumPageSize = 200

    let query: Parameters
    let path: Parameters

    init(_ request: Request, _ context: AdminRequestContext, allowedQuery: Set<String> = []) throws(APIProblem) {
        self.query = request.uri.queryParameters
        self.path = context.parameters
        if let unknown = query.map({ String($0.key) }).filter({ !allowedQuery.contains($0) }).sorted().first {
            throw .invalidParameter("unknown query parameter \"\(unknown)\"")
        }
        for name in allowedQuery where query[values: Substring(name)].count > 1 {
            throw .invalidParameter("query parameter \"\(name)\" is given more than once")
        }
        // An empty value is a client mistake (a form field left blank), not "absent": say so.
        if let empty = query.filter({ $0.value.isEmpty }).map({ String($0.key) }).sorted().first {
            throw .invalidParameter("query parameter \"\(empty)\" is empty; give a value or leave it out")
        }
    }

    /// The `{id}` of the path as a positive integer.
    func id(_ name: String = "id") throws(APIProblem) -> Int64 {
        guard let text = path.get(name), let value = Int64(text), value > 0 else {
            throw .invalidParameter("path parameter \"\(name)\" must be a positive integer")
        }
        return value
    }

    /// A query parameter (never empty: `init` refused that).
    func string(_ name: String) -> String? {
        guard let value = query[Substring(name)], !value.isEmpty else { return nil }
        return String(value)
    }

    /// The opaque cursor of the previous page's `next_cursor` (today a positive id).
    func cursor() throws(APIProblem) -> Int64? {
        guard let text = string("cursor") else { return nil }
        guard let value = Int64(text), value > 0 else {
            throw .invalidParameter("query parameter \"cursor\" must be a next_cursor from a previous page")
        }
        return value
    }

    /// A query parameter holding an RFC 3339 instant (`as_of`); nil when absent.
    func instant(_ name: String) throws(APIProblem) -> Date? {
        guard let text = string(name) else { return nil }
        guard let instant = RFC3339.parse(text) else {
            throw .invalidParameter(
                "query parameter \"\(name)\" must be an RFC 3339 date-time such as 2026-06-01T00:00:00Z (send + in an offset as %2B)")
        }
        return instant
    }

    func limit() throws(APIProblem) -> Int {
        guard let text = string("limit") else { return Self.defaultPageSize }
        guard let value = Int(text), (1...Self.maximumPageSize).contains(value) else {
            throw .invalidParameter("query parameter \"limit\" must be an integer from 1 to \(Self.maximumPageSize)")
        }
        return value
    }
}
