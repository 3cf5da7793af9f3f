import Foundation
import Hummingbird
import LoyaltyStore

/// Reads a request body as one JSON object, refusing before reading it all when it cannot be accepted:
/// over 64 KiB by its Content-Length (413), not JSON by its Content-Type (415); then reads at most 64 KiB
/// (413 beyond, for bodies without a length).
enum JSONRequestBody {
    static let maximumBytes = 64 * 1_024

    /// The body's object. `required` false accepts an absent or empty body (as an empty object).
    static func object(_ request: Request, required: Bool = true) async throws -> JSONFields {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBytes {
            throw APIProblem(.payloadTooLarge, "the request body is \(length) bytes; the limit is \(maximumBytes)")
        }
        let contentType = request.headers[.contentType]
        if let contentType { try checkMediaType(contentType) }
        let buffer = try await request.body.collect(upTo: maximumBytes)
        guard buffer.readableBytes > 0 else {
            if required { throw APIProblem.invalidBody("a JSON object body is required") }
            return JSONFields(fields: [:])
        }
        guard contentType != nil else {
            throw APIProblem(.unsupportedMediaType, "send the body with Content-Type: application/json")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))
        } catch {
            throw APIProblem.invalidBody("the body is not valid JSON")
        }
        guard case .object(let fields) = value else { throw APIProblem.invalidBody("the body must be a JSON object") }
        return JSONFields(fields: fields)
    }

    /// `application/json` or any `+json` type; parameters (charset) are ignored.
    static func checkMediaType(_ value: String) throws(APIProblem) {
        let type = value.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json")) else {
            throw APIProblem(.unsupportedMediaType, "the body is \(type.isEmpty ? "untyped" : type); send application/json")
        }
    }
}
