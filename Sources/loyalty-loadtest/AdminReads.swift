import AsyncHTTPClient
import Foundation
import NIOHTTP1

/// The admin API's read mix, as support staff and reports use it while the tills are busy: GETs with a bearer
/// token over a bounded pool of keep-alive HTTP/1.1 connections. Each operation is one request.
struct AdminReads: Sendable {
    /// Operation → path, for a member (`{id}`) or a card (`{card}`).
    static let paths: [String: String] = [
        "admin_member": "/v1/members/{id}",
        "admin_balances": "/v1/members/{id}/balances",
        "admin_ledger": "/v1/members/{id}/ledger?limit=20",
        "admin_search": "/v1/members?card={card}",
    ]
    static let requestTimeoutMs: Int64 = 10_000
    /// Bytes of a response read at most (a ledger page is a few KiB).
    static let maximumResponseBytes = 1 << 20

    let http: HTTPClient
    let baseURL: String
    let token: String

    /// A client whose pool holds at most `connections` connections to the server.
    static func makeClient(connections: Int) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        configuration.timeout = .init(connect: .seconds(5), read: .milliseconds(requestTimeoutMs))
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// One GET; failures are counted by HTTP status (`http_404`) or `transport`.
    func perform(_ operation: String, memberID: Int64, card: String) async -> Result<Int, RequestFailed> {
        guard let template = Self.paths[operation] else { return .failure(RequestFailed(key: "unknown_operation")) }
        let path = template.replacingOccurrences(of: "{id}", with: String(memberID))
            .replacingOccurrences(of: "{card}", with: card.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? card)
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Self.requestTimeoutMs))
            // Read the whole body: the latency includes the answer, not just its headers.
            _ = try await response.body.collect(upTo: Self.maximumResponseBytes)
            guard response.status == .ok else { return .failure(RequestFailed(key: "http_\(response.status.code)")) }
            return .success(1)
        } catch {
            return .failure(RequestFailed(key: "transport"))
        }
    }
}
