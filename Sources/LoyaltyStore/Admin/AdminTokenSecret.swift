import Crypto
import Foundation

/// An admin bearer token: `lyt_` followed by base64url (no padding) of 32 random bytes.
///
/// Guarantees: `generate()` draws from the system's secure generator; `init?(parsing:)` accepts exactly that
/// shape and nothing else; `hash` is the SHA-256 of the 32 bytes, the only thing ever stored.
public struct AdminTokenSecret: Sendable {
    public static let prefix = "lyt_"
    public static let randomByteCount = 32
    /// base64url of 32 bytes without padding.
    static let encodedCharacterCount = 43

    /// The token as the client sends it. Shown once at creation, never stored.
    public let text: String
    let bytes: [UInt8]

    public static func generate() -> AdminTokenSecret {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<randomByteCount).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return AdminTokenSecret(bytes: bytes)
    }

    init(bytes: [UInt8]) {
        precondition(bytes.count == Self.randomByteCount, "a token is 32 random bytes")
        self.bytes = bytes
        // base64url without padding, mapped byte by byte (string replacements were a few per cent of a read).
        let base64URL = Data(bytes).base64EncodedData().compactMap { byte -> UInt8? in
            switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            case UInt8(ascii: "="): nil
            default: byte
            }
        }
        self.text = Self.prefix + String(decoding: base64URL, as: UTF8.self)
    }

    /// nil unless `text` is a well-formed token (prefix, 43 base64url characters, 32 bytes).
    public init?(parsing text: String) {
        guard text.hasPrefix(Self.prefix) else { return nil }
        let encoded = text.dropFirst(Self.prefix.count)
        guard encoded.utf8.count == Self.encodedCharacterCount,
            encoded.utf8.allSatisfy({ Self.isBase64URL($0) })
        else { return nil }
        var standard = encoded.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "-"): UInt8(ascii: "+")
            case UInt8(ascii: "_"): UInt8(ascii: "/")
            default: byte
            }
        }
        standard.append(UInt8(ascii: "="))
        guard let data = Data(base64Encoded: Data(standard)), data.count == Self.randomByteCount else { return nil }
        self.init(bytes: Array(data))
        // Non-canonical trailing bits would give two texts for one token; refuse them.
        guard self.text == text else { return nil }
    }

    /// SHA-256 of the random bytes: the lookup key in `admin_tokens.token_hash`.
    public var hash: [UInt8] { Array(SHA256.hash(data: bytes)) }

    private static func isBase64URL(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}
