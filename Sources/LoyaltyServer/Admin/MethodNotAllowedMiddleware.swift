import Hummingbird

/// Answers a request for a path the API has with a method it does not take `405` and an `Allow` header listing
/// the methods it does (RFC 9110 §15.5.6), instead of the router's 404: `TRACE /v1/members` is a wrong method, not
/// a missing resource. Paths are matched as the router matches them: segment by segment, a literal segment before
/// a `{parameter}` (so `/v1/segments/preview` is the preview route, never segment "preview").
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext

    let table: AllowedMethods

    init(routes: [AdminRoute]) {
        self.table = AllowedMethods(routes: routes)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let allowed = table.methods(forPath: request.uri.path), !allowed.contains(request.method) {
            let list = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            throw APIProblem(
                .methodNotAllowed, "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(list)",
                headers: [.allow: list])
        }
        return try await next(request, context)
    }
}

/// The methods of each path pattern of the route table, and the lookup of a concrete path.
struct AllowedMethods: Sendable {
    struct Pattern: Sendable {
        /// nil: a `{parameter}` segment.
        var segments: [String?]
        var methods: Set<HTTPRequest.Method>
    }

    let patterns: [Pattern]

    init(routes: [AdminRoute]) {
        var byPath: [String: Set<HTTPRequest.Method>] = [:]
        for route in routes { byPath[route.path, default: []].insert(route.method) }
        patterns = byPath.map { path, methods in
            Pattern(segments: Self.split(path).map { $0.hasPrefix("{") && $0.hasSuffix("}") ? nil : String($0) }, methods: methods)
        }
    }

    static func split(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    /// The methods of the pattern the router would pick for `path`, or nil when no pattern matches it.
    func methods(forPath path: String) -> Set<HTTPRequest.Method>? {
        let segments = Self.split(path)
        var best: Pattern?
        for pattern in patterns where pattern.segments.count == segments.count {
            guard zip(pattern.segments, segments).allSatisfy({ $0 == nil || $0! == $1 }) else { continue }
            if let current = best, !Self.isMoreSpecific(pattern, than: current) { continue }
            best = pattern
        }
        return best?.methods
    }

    /// At the first segment where they differ, a literal beats a parameter.
    static func isMoreSpecific(_ pattern: Pattern, than other: Pattern) -> Bool {
        for (mine, theirs) in zip(pattern.segments, other.segments) where (mine == nil) != (theirs == nil) {
            return mine != nil
        }
        return false
    }
}
