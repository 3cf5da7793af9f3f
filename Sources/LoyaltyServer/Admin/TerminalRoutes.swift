import Foundation
import Hummingbird
import LoyaltyStore
import POSProtocol

/// `/v1/terminals` (admin only): register a till, rotate its secret, disable it. A secret is made here, shown
/// once in the answer to register or rotate (`Cache-Control: no-store`), and never stored, logged or audited:
/// only its derived keys reach the database (see `TerminalAuth`).
enum TerminalRoutes {
    static let registerFields: Set<String> = ["terminal_id", "store_id"]
    static let secretBytes = 32
    static let storeIDLength = 1...64

    /// Ordered by terminal id; optionally one store's, or only `active` or `disabled` ones.
    @Sendable static func list(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["store_id", "status", "cursor", "limit"])
        let status = parameters.string("status")
        if let status, !TerminalStore.statuses.contains(status) {
            throw APIProblem.invalidParameter("query parameter \"status\" must be one of active, disabled")
        }
        let storeID = parameters.string("store_id")
        if let storeID, !PrintableText.isAcceptable(storeID, length: storeIDLength) {
            throw APIProblem.invalidParameter("query parameter \"store_id\" must be 1-64 characters")
        }
        let cursor = parameters.string("cursor")
        if let cursor, !isTerminalID(cursor) {
            throw APIProblem.invalidParameter("query parameter \"cursor\" must be a next_cursor from a previous page")
        }
        let (terminals, next) = try await services.terminals(context).page(
            storeID: storeID, status: status, after: cursor, limit: try parameters.limit())
        return try JSONResponse.make(TerminalPage(items: terminals, nextCursor: next))
    }

    @Sendable static func get(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let terminalID = try pathID(context)
        guard let terminal = try await services.terminals(context).terminal(terminalID) else {
            throw APIProblem.notFound("terminal \"\(terminalID)\" not found")
        }
        return try JSONResponse.make(terminal)
    }

    /// 201 with the terminal and its secret (base64 of 32 random bytes); an id in use is 409.
    @Sendable static func register(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let body = try await JSONRequestBody.object(request)
        try body.allowOnly(registerFields)
        let terminalID = try body.required("terminal_id", body.string)
        guard isTerminalID(terminalID) else { throw APIProblem.invalidBody("field \"terminal_id\" must be 1-64 of A-Z a-z 0-9 _ . -") }
        let storeID = try body.required("store_id", body.string)
        guard storeIDLength.contains(storeID.unicodeScalars.count), storeID.unicodeScalars.allSatisfy({ $0.properties.generalCategory != .control }) else {
            throw APIProblem.invalidBody("field \"store_id\" must be 1-64 characters, none of them control characters")
        }
        let (secret, credentials) = newSecret()
        let terminal = try await services.terminals(context).register(
            terminalID: terminalID, storeID: storeID, credentials: credentials, audit: try context.auditContext())
        return try secretResponse(terminal, secret: secret, status: .created, location: "/v1/terminals/\(terminalID)")
    }

    /// A new secret; the old one stops working at once. A disabled terminal is active again.
    @Sendable static func rotate(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let terminalID = try pathID(context)
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let (secret, credentials) = newSecret()
        let terminal = try await services.terminals(context).rotate(
            terminalID: terminalID, credentials: credentials, audit: try context.auditContext())
        return try secretResponse(terminal, secret: secret, status: .ok, location: nil)
    }

    /// The terminal's next Hello fails. Repeating it answers the disabled terminal again.
    @Sendable static func disable(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let terminalID = try pathID(context)
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let terminal = try await services.terminals(context).disable(terminalID: terminalID, audit: try context.auditContext())
        return try JSONResponse.make(terminal)
    }

    static func newSecret() -> (text: String, credentials: TerminalCredentials) {
        let secret = TerminalAuth.randomBytes(secretBytes)
        let derived = TerminalAuth.credentials(secret: secret)
        return (Data(secret).base64EncodedString(),
                TerminalCredentials(salt: derived.salt, iterations: derived.iterations, storedKey: derived.storedKey,
                                    serverKey: derived.serverKey))
    }

    static func secretResponse(
        _ terminal: AdminTerminal, secret: String, status: HTTPResponse.Status, location: String?
    ) throws -> Response {
        var headers: HTTPFields = [.cacheControl: "no-store"]
        if let location { headers[.location] = location }
        return try JSONResponse.make(TerminalSecretBody(terminal: terminal, secret: secret), status: status, headers: headers)
    }

    static func pathID(_ context: AdminRequestContext) throws(APIProblem) -> String {
        guard let id = context.parameters.get("id"), isTerminalID(id) else {
            throw .invalidParameter("path parameter \"id\" must be a terminal id: 1-64 of A-Z a-z 0-9 _ . -")
        }
        return id
    }

    static func isTerminalID(_ text: String) -> Bool { TerminalStore.isValidID(text) }
}

struct TerminalPage: Encodable, Sendable {
    var items: [AdminTerminal]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case items, nextCursor = "next_cursor"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

/// The terminal with its new secret: the only time the secret is ever shown.
struct TerminalSecretBody: Encodable, Sendable {
    var terminal: AdminTerminal
    var secret: String

    enum CodingKeys: String, CodingKey {
        case secret
    }

    func encode(to encoder: any Encoder) throws {
        try terminal.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(secret, forKey: .secret)
    }
}
