import Foundation
@testable import LoyaltyCache
import Testing

@Suite("Member cache blob")
struct CachedMemberBlobTests {
    let member = CachedMember(
        memberID: 42, tierCode: "gold", tierName: "Gold ✦", status: "active", cardNumber: "4000-1234", phone: nil,
        points: .init(available: 1_200, pending: 80, held: 600), cashbackMinor: .init(available: -1, pending: .max, held: .min),
        ledgerVersion: 9_007_199_254_740_992)

    @Test func roundTripsEveryField() throws {
        let bytes = try member.encoded()
        #expect(bytes.first == CachedMember.blobMagic)
        #expect(CachedMember.decode(bytes) == member)
        var withPhone = member
        withPhone.phone = "+4930123456"
        withPhone.cardNumber = nil
        #expect(CachedMember.decode(try withPhone.encoded()) == withPhone)
    }

    @Test func refusesAnythingElse() throws {
        let bytes = try member.encoded()
        #expect(CachedMember.decode([]) == nil)
        #expect(CachedMember.decode(Array(bytes.dropLast())) == nil)          // truncated
        #expect(CachedMember.decode(bytes + [0]) == nil)                      // trailing bytes
        #expect(CachedMember.decode([0x7B] + bytes.dropFirst()) == nil)       // not the magic
        #expect(CachedMember.decode(Array(#"{"id":42}"#.utf8)) == nil)        // the old JSON form
        var corrupt = bytes
        corrupt[1 + 64] = 0x7F                                                // tier code length far past the end
        #expect(CachedMember.decode(corrupt) == nil)
    }
}
