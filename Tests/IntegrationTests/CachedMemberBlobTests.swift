import Foundation
@testable import LoyaltyCache
import Testing

@Suite("Member cache blob")
struct CachedMemberBlobTests {
    let member = CachedMember(
        memberID: 42, tierCode: "gold", tierName: "Gold ✦", status: "active", cardNumber: "4000-1234", phone: nil,
        points: .init(available: 1_200, pending: 80, held: 600), cashbackMinor: .init(available: -1, pending: .max, held: .min),
        ledgerVersion: 9_007_199_254_740_992)
    let digests = IdentifierDigest(key: Array(repeating: 7, count: 32))

    @Test func roundTripsEveryFieldAndKeepsOnlyDigestsOfIdentifiers() throws {
        let bytes = try member.encoded(digests: digests)
        #expect(bytes.first == CachedMember.blobMagic)
        let blob = try #require(CachedMember.decode(bytes))
        #expect(blob.member == member.withoutIdentifiers)
        #expect(blob.cardDigest == digests.digest("4000-1234", kind: .card) && blob.phoneDigest == nil)
        #expect(!bytes.containsSequence(Array("4000-1234".utf8)))
        var withPhone = member
        withPhone.phone = "+4930123456"
        withPhone.cardNumber = nil
        let phoneBytes = try withPhone.encoded(digests: digests)
        let phoneBlob = try #require(CachedMember.decode(phoneBytes))
        #expect(phoneBlob.member == withPhone.withoutIdentifiers)
        #expect(phoneBlob.phoneDigest == digests.digest("+4930123456", kind: .phone) && phoneBlob.cardDigest == nil)
        #expect(!phoneBytes.containsSequence(Array("4930123456".utf8)))
    }

    @Test func roundTripsPricingFacts() throws {
        var priced = member
        priced.pricing = .init(tierRateOverrideBp: 150, campaignSegments: [3, 99, 1 << 40], campaignsVersion: 77)
        #expect(CachedMember.decode(try priced.encoded(digests: digests))?.member == priced.withoutIdentifiers)
        priced.pricing = .init(tierRateOverrideBp: nil, campaignSegments: [], campaignsVersion: 1)
        #expect(CachedMember.decode(try priced.encoded(digests: digests))?.member == priced.withoutIdentifiers)
        // Too many campaigns to carry: stored without facts, so pricing reads PostgreSQL.
        priced.pricing = .init(tierRateOverrideBp: 1, campaignSegments: Array(0..<300), campaignsVersion: 1)
        #expect(CachedMember.decode(try priced.encoded(digests: digests))?.member.pricing == nil)
    }

    @Test func digestsDependOnTheKeyAndTheKind() {
        let other = IdentifierDigest(key: Array(repeating: 8, count: 32))
        #expect(digests.digest("4000-1234", kind: .card) != other.digest("4000-1234", kind: .card))
        #expect(digests.digest("+4930", kind: .card) != digests.digest("+4930", kind: .phone))
        #expect(digests.hex("4000-1234", kind: .card).count == 32)
    }

    @Test func refusesAnythingElse() throws {
        let bytes = try member.encoded(digests: digests)
        #expect(CachedMember.decode([]) == nil)
        #expect(CachedMember.decode(Array(bytes.dropLast())) == nil)          // truncated
        #expect(CachedMember.decode(bytes + [0]) == nil)                      // trailing bytes
        #expect(CachedMember.decode([0x7B] + bytes.dropFirst()) == nil)       // not the magic
        #expect(CachedMember.decode([0xB1] + bytes.dropFirst()) == nil)       // the older layout with clear identifiers
        #expect(CachedMember.decode(Array(#"{"id":42}"#.utf8)) == nil)        // the old JSON form
        var corrupt = bytes
        corrupt[1 + 64] = 0x7F                                                // tier code length far past the end
        #expect(CachedMember.decode(corrupt) == nil)
    }
}

extension Array where Element == UInt8 {
    func containsSequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<($0 + needle.count)]) == needle }
    }
}
