import Foundation

/// What a till needs to show for a member: identity, tier, status and balances, as of one ledger version.
///
/// Guarantees: a snapshot, never the truth for a write (a redemption always checks PostgreSQL); `ledgerVersion`
/// orders snapshots of the same member, so `MemberCache` can refuse to replace a newer one with an older one.
/// Encodes to compact JSON with short keys (absent card or phone are left out).
public struct CachedMember: Codable, Sendable, Equatable {
    /// Amounts of one unit (points, or cashback in minor currency units) by state.
    public struct Balances: Codable, Sendable, Equatable {
        public var available: Int64
        public var pending: Int64
        public var held: Int64

        public init(available: Int64, pending: Int64 = 0, held: Int64 = 0) {
            self.available = available
            self.pending = pending
            self.held = held
        }

        private enum CodingKeys: String, CodingKey {
            case available = "a", pending = "p", held = "h"
        }
    }

    public var memberID: Int64
    public var tierCode: String
    public var tierName: String
    public var status: String
    public var cardNumber: String?
    public var phone: String?
    public var points: Balances
    public var cashbackMinor: Balances
    /// The member's ledger version in PostgreSQL when this snapshot was read; higher is newer.
    public var ledgerVersion: Int64

    public init(
        memberID: Int64, tierCode: String, tierName: String, status: String, cardNumber: String? = nil,
        phone: String? = nil, points: Balances, cashbackMinor: Balances, ledgerVersion: Int64
    ) {
        self.memberID = memberID
        self.tierCode = tierCode
        self.tierName = tierName
        self.status = status
        self.cardNumber = cardNumber
        self.phone = phone
        self.points = points
        self.cashbackMinor = cashbackMinor
        self.ledgerVersion = ledgerVersion
    }

    // Short keys: the blob is stored once per member and read on every till lookup.
    private enum CodingKeys: String, CodingKey {
        case memberID = "id", tierCode = "tc", tierName = "tn", status = "st", cardNumber = "cn", phone = "ph"
        case points = "pt", cashbackMinor = "cb", ledgerVersion = "lv"
    }

    func encoded() throws(CacheError) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(self))
        } catch {
            throw .protocolError("member \(memberID) could not be encoded: \(error)")
        }
    }

    /// nil for bytes that are not a member blob (treated as a miss: the next `put` replaces them).
    static func decode(_ bytes: [UInt8]) -> CachedMember? {
        try? JSONDecoder().decode(CachedMember.self, from: Data(bytes))
    }
}

/// The Redis keys of the member cache. Layout (`loyalty` is the configurable namespace, `7` the epoch):
///
///     loyalty:cache-epoch          the shared epoch counter (no TTL: losing it is detected and bumped past)
///     loyalty:e7:{m42}:member      hash: v = ledger version, b = the member blob (b absent: invalidated)
///     loyalty:e7:card:<card>       member id as text
///     loyalty:e7:phone:<phone>     member id as text
///
/// `{m42}` is a Redis Cluster hash tag: everything the versioned-write script touches is in one slot. Index keys
/// are written by separate commands, so they may live on any slot.
struct MemberCacheKeys: Sendable {
    let namespace: String

    var epoch: String { "\(namespace):cache-epoch" }

    func member(_ memberID: Int64, epoch: Int64) -> String { "\(namespace):e\(epoch):{m\(memberID)}:member" }

    func card(_ card: String, epoch: Int64) -> String { "\(namespace):e\(epoch):card:\(card)" }

    func phone(_ phone: String, epoch: Int64) -> String { "\(namespace):e\(epoch):phone:\(phone)" }

    /// A card number or phone fit to be part of a key: not empty, no control characters or spaces (they make keys
    /// unreadable in redis-cli and logs), and the whole key within the limit.
    static func checkIdentifier(_ identifier: String, kind: String) throws(CacheError) {
        guard !identifier.isEmpty else { throw .limitExceeded("empty \(kind)") }
        guard identifier.utf8.count <= MemberCache.Limits.maximumIdentifierBytes else {
            throw .limitExceeded(
                "\(kind) of \(identifier.utf8.count) bytes is over \(MemberCache.Limits.maximumIdentifierBytes)")
        }
        guard !identifier.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            throw .limitExceeded("\(kind) contains a space or control character")
        }
    }

    static func checkNamespace(_ namespace: String) throws(CacheError) {
        guard !namespace.isEmpty, namespace.utf8.count <= MemberCache.Limits.maximumNamespaceBytes else {
            throw .limitExceeded("namespace must be 1-\(MemberCache.Limits.maximumNamespaceBytes) bytes")
        }
        // Braces would add a hash tag of their own and split a member's keys across cluster slots.
        guard !namespace.contains(where: { $0 == "{" || $0 == "}" || $0.isWhitespace }) else {
            throw .limitExceeded("namespace '\(namespace)' contains braces or whitespace")
        }
    }
}
