import Crypto
import LoyaltyCore

/// Keyed digests of the identifiers a till looks members up by (card numbers, phones), so that neither Redis key
/// names nor cached values ever hold one: an index key is `…:card:<digest>`, and a cached blob carries the digests
/// of its member's identifiers, not the identifiers.
///
/// HMAC-SHA256 under a server secret, truncated to 128 bits: without the secret, a digest cannot be turned back
/// into a card number by trying every card number (a plain hash of a 16-digit card could). Every server that
/// shares a Redis must use the same secret; `loyalty serve` reads it from PostgreSQL (`cache_identifier_key`), so
/// servers on one database agree without configuration.
public struct IdentifierDigest: Sendable {
    /// The secret's size; HMAC-SHA256 keys beyond the block size add nothing.
    public static let keyBytes = 32
    static let digestBytes = 16

    /// Kept as bytes (SymmetricKey is not Sendable); a key is made per digest, which costs a copy of 32 bytes.
    private let key: [UInt8]

    /// - Precondition: `key` holds exactly `keyBytes` bytes.
    public init(key: [UInt8]) {
        precondition(key.count == Self.keyBytes, "the identifier key is \(Self.keyBytes) bytes")
        self.key = key
    }

    /// A key of this process only: for tests and tools where one process is the only cache user.
    public static func processLocal() -> IdentifierDigest { IdentifierDigest(key: processLocalKey) }

    private static let processLocalKey: [UInt8] = {
        var generator = SystemRandomNumberGenerator()
        return (0..<keyBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }()

    /// The kind is part of the message, so a card and a phone with the same text never share a digest.
    func digest(_ identifier: String, kind: IdentifierKind) -> [UInt8] {
        var message = Array(kind.rawValue.utf8)
        message.append(0)
        message.append(contentsOf: identifier.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return Array(Array(mac).prefix(Self.digestBytes))
    }

    func hex(_ identifier: String, kind: IdentifierKind) -> String {
        HexDigits.lowercase(digest(identifier, kind: kind))
    }
}

/// Which identifier a digest is of.
enum IdentifierKind: String, Sendable {
    case card
    case phone
}
