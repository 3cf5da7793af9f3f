import Foundation
import Hummingbird

/// JSON responses of the admin API: sorted keys (stable output for diffs and tests), no escaped slashes.
/// Field names are spelled out in each type's CodingKeys, so a key strategy never rewrites JSON passed through
/// (explanations, audit before/after).
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = try encoder.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// JSON text that PostgreSQL already built, sent as it is.
    static func raw(_ json: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    /// A `Page` whose items are JSON texts PostgreSQL already built.
    static func page(jsonItems: [String], nextCursor: Int64?) -> Response {
        let cursor = nextCursor.map { "\"\($0)\"" } ?? "null"
        return raw("{\"items\":[" + jsonItems.joined(separator: ",") + "],\"next_cursor\":" + cursor + "}")
    }
}

/// A page of a list: `items` and the cursor of the next page (null on the last).
struct Page<Item: Encodable & Sendable>: Encodable, Sendable {
    var items: [Item]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case items
        case nextCursor = "next_cursor"
    }

    init(items: [Item], nextCursor: Int64?) {
        self.items = items
        self.nextCursor = nextCursor.map { String($0) }
    }

    // Explicit null for the last page, so clients need not tell "absent" from "no more".
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

/// `HTTPField.Name`, reached through the `HTTPFields` Hummingbird re-exports (this target does not depend on
/// HTTPTypes itself).
typealias HTTPHeaderName = HTTPFields.Element.Name
