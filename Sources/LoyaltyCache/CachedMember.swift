import Foundation

/// What a till needs to show for a member: identity, tier, status and balances, as of one ledger version.
///
/// Guarantees: a snapshot, never the truth for a write (a redemption always checks PostgreSQL); `ledgerVersion`
/// orders snapshots of the same member, so `MemberCache` can refuse to replace a newer one with an older one.
/// Codable with short JSON keys (the form PostgreSQL's `pos_member_snapshot` produces); stored in Redis in a compact
/// binary form (`encoded()`).
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
    /// What pricing a basket needs beyond the tier code, so a commit can be priced without reading PostgreSQL.
    /// Nil when the snapshot was made without them (then pricing reads PostgreSQL).
    public var pricing: PricingFacts?

    /// The tier's own earn rate and the member's live multiplier campaigns, as of a campaigns version.
    public struct PricingFacts: Codable, Sendable, Equatable {
        /// The tier's earn-rate override in basis points, nil when the program's rate applies.
        public var tierRateOverrideBp: Int64?
        /// Live multiplier campaigns whose segment holds the member.
        public var campaignSegments: [Int64]
        /// `campaigns_version` when these were read: segment refreshes, campaign and tier changes move it, so
        /// facts of another version than the server's loaded campaigns are not used.
        public var campaignsVersion: Int64

        public init(tierRateOverrideBp: Int64?, campaignSegments: [Int64], campaignsVersion: Int64) {
            self.tierRateOverrideBp = tierRateOverrideBp
            self.campaignSegments = campaignSegments
            self.campaignsVersion = campaignsVersion
        }

        private enum CodingKeys: String, CodingKey {
            case tierRateOverrideBp = "ro", campaignSegments = "cs", campaignsVersion = "cv"
        }

        /// A bound that keeps the blob small; a member in more live campaigns is priced from PostgreSQL.
        public static let maximumCampaignSegments = 256
    }

    public init(
        memberID: Int64, tierCode: String, tierName: String, status: String, cardNumber: String? = nil,
        phone: String? = nil, points: Balances, cashbackMinor: Balances, ledgerVersion: Int64, pricing: PricingFacts? = nil
    ) {
        self.pricing = pricing
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
        case points = "pt", cashbackMinor = "cb", ledgerVersion = "lv", pricing = "pr"
    }

    /// The same member without its identifiers: what a lookup from Redis returns (the blob holds only their
    /// digests).
    public var withoutIdentifiers: CachedMember {
        var copy = self
        copy.cardNumber = nil
        copy.phone = nil
        return copy
    }

    /// The blob stored in Redis: a fixed binary layout, because decoding it is on every till lookup and a JSON
    /// decoder took a tenth of the server's time there. Layout (big-endian): `0xB2`, member id, ledger version,
    /// points available/pending/held, cashback available/pending/held (each Int64), then tier code, tier name,
    /// status as u16 length + UTF-8, then the keyed digests of card and phone (`IdentifierDigest`) as u16 length +
    /// bytes (length 0xFFFF = absent), then the pricing facts: u8 0 (absent) or 1 followed by the rate override
    /// (Int64, `Int64.min` = none), the campaigns version (Int64), u16 count and that many campaign ids (Int64).
    /// No card number or phone is ever stored.
    static let blobMagic: UInt8 = 0xB2

    func encoded(digests: IdentifierDigest) throws(CacheError) -> [UInt8] {
        var bytes: [UInt8] = [Self.blobMagic]
        bytes.reserveCapacity(104 + tierCode.utf8.count + tierName.utf8.count)
        for value in [memberID, ledgerVersion, points.available, points.pending, points.held,
                      cashbackMinor.available, cashbackMinor.pending, cashbackMinor.held] {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }
        let fields: [[UInt8]?] = [
            Array(tierCode.utf8), Array(tierName.utf8), Array(status.utf8),
            cardNumber.map { digests.digest($0, kind: .card) }, phone.map { digests.digest($0, kind: .phone) },
        ]
        for field in fields {
            guard let field else {
                bytes.append(contentsOf: [0xFF, 0xFF])
                continue
            }
            guard field.count < 0xFFFF else { throw .limitExceeded("member \(memberID): a text field of \(field.count) bytes") }
            bytes.append(UInt8(field.count >> 8))
            bytes.append(UInt8(field.count & 0xFF))
            bytes.append(contentsOf: field)
        }
        func append(_ value: Int64) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
        if let pricing, pricing.campaignSegments.count <= PricingFacts.maximumCampaignSegments,
           pricing.tierRateOverrideBp != Int64.min {
            bytes.append(1)
            append(pricing.tierRateOverrideBp ?? Int64.min)
            append(pricing.campaignsVersion)
            bytes.append(UInt8(pricing.campaignSegments.count >> 8))
            bytes.append(UInt8(pricing.campaignSegments.count & 0xFF))
            for campaign in pricing.campaignSegments { append(campaign) }
        } else {
            bytes.append(0)
        }
        return bytes
    }

    /// A blob read back: the member (without identifiers) and the digests of its card and phone.
    struct Blob: Equatable {
        var member: CachedMember
        var cardDigest: [UInt8]?
        var phoneDigest: [UInt8]?
    }

    /// nil for bytes that are not a member blob (treated as a miss: the next `put` replaces them).
    static func decode(_ bytes: [UInt8]) -> Blob? {
        guard bytes.first == blobMagic else { return nil }
        var reader = BlobReader(bytes: bytes, offset: 1)
        guard let id = reader.int64(), let version = reader.int64(),
              let pointsAvailable = reader.int64(), let pointsPending = reader.int64(), let pointsHeld = reader.int64(),
              let cashAvailable = reader.int64(), let cashPending = reader.int64(), let cashHeld = reader.int64(),
              let tierCode = reader.field(), let tierName = reader.field(), let status = reader.field(),
              let card = reader.field(), let phone = reader.field(),
              let tierCodeBytes = tierCode, let tierNameBytes = tierName, let statusBytes = status,
              let pricing = reader.pricingFacts(),
              reader.offset == bytes.count
        else { return nil }
        let member = CachedMember(
            memberID: id, tierCode: String(decoding: tierCodeBytes, as: UTF8.self),
            tierName: String(decoding: tierNameBytes, as: UTF8.self), status: String(decoding: statusBytes, as: UTF8.self),
            points: Balances(available: pointsAvailable, pending: pointsPending, held: pointsHeld),
            cashbackMinor: Balances(available: cashAvailable, pending: cashPending, held: cashHeld), ledgerVersion: version,
            pricing: pricing)
        return Blob(member: member, cardDigest: card, phoneDigest: phone)
    }
}

/// Reads the blob layout of `CachedMember.encoded()`; every read checks the bounds.
private struct BlobReader {
    let bytes: [UInt8]
    var offset: Int

    mutating func int64() -> Int64? {
        guard offset + 8 <= bytes.count else { return nil }
        var value: UInt64 = 0
        for index in offset..<(offset + 8) { value = value << 8 | UInt64(bytes[index]) }
        offset += 8
        return Int64(bitPattern: value)
    }

    /// `.some(nil)` when absent, nil for bytes that do not fit the layout.
    mutating func pricingFacts() -> CachedMember.PricingFacts?? {
        guard offset < bytes.count else { return nil }
        let present = bytes[offset]
        offset += 1
        if present == 0 { return .some(nil) }
        guard present == 1, let override = int64(), let version = int64(), offset + 2 <= bytes.count else { return nil }
        let count = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
        offset += 2
        guard count <= CachedMember.PricingFacts.maximumCampaignSegments else { return nil }
        var campaigns: [Int64] = []
        campaigns.reserveCapacity(count)
        for _ in 0..<count {
            guard let campaign = int64() else { return nil }
            campaigns.append(campaign)
        }
        return .some(CachedMember.PricingFacts(
            tierRateOverrideBp: override == Int64.min ? nil : override, campaignSegments: campaigns, campaignsVersion: version))
    }

    /// `.some(nil)` for an absent field, nil for bytes that do not fit the layout.
    mutating func field() -> [UInt8]?? {
        guard offset + 2 <= bytes.count else { return nil }
        let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
        offset += 2
        if length == 0xFFFF { return .some(nil) }
        guard offset + length <= bytes.count else { return nil }
        let field = Array(bytes[offset..<(offset + length)])
        offset += length
        return .some(field)
    }
}

/// The Redis keys of the member cache. Layout (`loyalty` is the configurable namespace, `b2` the blob layout,
/// `7` the epoch, `<digest>` the keyed digest of a card number or phone, `IdentifierDigest`):
///
///     loyalty:cache-epoch             the shared epoch counter (no TTL: losing it is detected and bumped past)
///     loyalty:b2:e7:{m42}:member      hash: v = ledger version, b = the member blob (b absent: invalidated)
///     loyalty:b2:e7:card:<digest>     member id as text
///     loyalty:b2:e7:phone:<digest>    member id as text
///
/// No key or value holds a card number or phone. The blob layout is part of every key: a server with a new
/// layout never reads (or, at an equal ledger version, fails to replace) blobs of the old one; those simply expire.
///
/// `{m42}` is a Redis Cluster hash tag, but the scripts (`MemberCacheScripts`) also touch index keys, which live
/// on other slots: the cache needs one Redis server, not a cluster.
struct MemberCacheKeys: Sendable {
    let namespace: String
    let digests: IdentifierDigest

    var epoch: String { "\(namespace):cache-epoch" }

    static let blobLayout = "b2"

    func member(_ memberID: Int64, epoch: Int64) -> String {
        let parts = memberParts(epoch: epoch)
        return "\(parts.prefix)\(memberID)\(parts.suffix)"
    }

    /// The member hash key around the member id, for the lookup script that learns the id from an index.
    func memberParts(epoch: Int64) -> (prefix: String, suffix: String) {
        ("\(namespace):\(Self.blobLayout):e\(epoch):{m", "}:member")
    }

    func card(_ card: String, epoch: Int64) -> String {
        "\(namespace):\(Self.blobLayout):e\(epoch):card:\(digests.hex(card, kind: .card))"
    }

    func phone(_ phone: String, epoch: Int64) -> String {
        "\(namespace):\(Self.blobLayout):e\(epoch):phone:\(digests.hex(phone, kind: .phone))"
    }

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
