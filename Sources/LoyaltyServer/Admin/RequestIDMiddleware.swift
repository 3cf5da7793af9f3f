import Foundation
import Hummingbird
import LoyaltyCore
import Logging

/// Gives every request an id and one log line. The id is the client's `X-Request-Id` when that is 1-64 safe
/// characters (A-Z a-z 0-9 . _ : -), otherwise a new random one; it is echoed in the response header, put in the
/// metadata of every log line of the request, and in every problem body.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext

    static let headerName = HTTPHeaderName("X-Request-Id")!
    static let maximumLength = 64

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = Self.accepted(request.headers[Self.headerName]) ?? Self.generate()
        context.requestID = id
        // Hummingbird's own key, so its lines and `context.id` carry the same id.
        context.logger[metadataKey: "hb.request.id"] = .string(id)
        let started = ContinuousClock.now
        var response = try await next(request, context)
        response.headers[Self.headerName] = id
        let elapsed = ContinuousClock.now - started
        context.logger.info(
            "admin request",
            metadata: [
                "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
                "duration_ms": "\(elapsed.components.seconds * 1_000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
            ])
        return response
    }

    static func accepted(_ value: String?) -> String? {
        guard let value, (1...maximumLength).contains(value.utf8.count),
            value.utf8.allSatisfy({ isSafe($0) })
        else { return nil }
        return value
    }

    static func generate() -> String {
        // 128 random bits as hex: String(format:) per byte was a few per cent of a read's CPU.
        var generator = SystemRandomNumberGenerator()
        let bits: (UInt64, UInt64) = (generator.next(), generator.next())
        return HexDigits.lowercase(withUnsafeBytes(of: bits) { Array($0) })
    }

    private static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
            UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
