import Foundation
import Logging
import LoyaltyCache
import LoyaltyStore

/// Where the checkout reads the member it prices for, and where it leaves the member a write answered: the
/// member cache and PostgreSQL in the server (`CachedCheckoutMembers`), the in-memory ledger in unit tests.
protocol CheckoutMembers: Sendable {
    /// The member snapshot a basket is priced from, with its pricing facts. With `cacheFirst`, a cached snapshot
    /// may be used; without, the snapshot comes from the system of record (after a `tier_changed` refusal the
    /// cached one was old). With `fillCache`, a snapshot read from the system of record is cached. Nil: no such
    /// member.
    func pricingSnapshot(memberID: Int64, cacheFirst: Bool, fillCache: Bool) async throws(LedgerStoreError) -> CachedMember?

    /// Puts the member as a write left it, from the write's own answer. `facts` are the pricing facts of the
    /// snapshot the write was priced from; they stay valid only while the tier is the one they were read with.
    func refresh(row: CheckoutMemberRow, facts: (tierCode: String, facts: CachedMember.PricingFacts)?) async
}

/// The server's members of the checkout: Redis first, PostgreSQL (one query) when the cache cannot answer.
struct CachedCheckoutMembers: CheckoutMembers {
    /// Nil: every pricing read goes to PostgreSQL and nothing is cached.
    let cache: MemberCache?
    /// Reads of the checkout (member snapshots for pricing) through postgres-nio.
    let store: CheckoutStore
    let campaigns: ActiveCampaigns
    let logger: Logger

    /// From the cache, without a PostgreSQL read, when `cacheFirst` and the cached snapshot carries pricing facts of
    /// the campaigns version this server has loaded (a segment refresh, or a campaign or tier change, moves the
    /// version); otherwise read from PostgreSQL and, with `fillCache`, put in the cache for the next purchase. A
    /// commit passes false: its own answer refreshes the cache (with these facts) right after the write, so a put
    /// here would be a Redis flight for nothing.
    func pricingSnapshot(memberID: Int64, cacheFirst: Bool, fillCache: Bool) async throws(LedgerStoreError) -> CachedMember? {
        if cacheFirst, let cache, case .hit(let member) = await cache.member(id: memberID),
           let facts = member.pricing, facts.campaignsVersion == campaigns.pricingVersion {
            return member
        }
        guard let data = try await store.snapshot(.memberID(memberID)) else { return nil }
        guard let member = try? JSONDecoder().decode(CachedMember.self, from: data), member.pricing != nil else {
            throw .invariantViolated("pos_member_snapshot answered without pricing facts; are the migrations current?")
        }
        if fillCache, member.status != "erased" { await put(member) }
        return member
    }

    func refresh(row: CheckoutMemberRow, facts: (tierCode: String, facts: CachedMember.PricingFacts)?) async {
        guard cache != nil, row.status != "erased" else { return }
        await put(CachedMember(
            memberID: row.memberID, tierCode: row.tierCode, tierName: row.tierName, status: row.status,
            cardNumber: row.cardNumber, phone: row.phone,
            points: .init(available: row.points.available, pending: row.points.pending, held: row.points.held),
            cashbackMinor: .init(available: row.cashbackMinor.available, pending: row.cashbackMinor.pending, held: row.cashbackMinor.held),
            ledgerVersion: row.ledgerVersion,
            pricing: facts.flatMap { $0.tierCode == row.tierCode ? $0.facts : nil }))
    }

    /// A failure leaves the older version in the cache, which the next write or the epoch bump after an outage
    /// replaces; the ledger in PostgreSQL is the truth either way.
    func put(_ member: CachedMember) async {
        guard let cache else { return }
        do { try await cache.put(member) } catch {
            logger.warning("member cache write refused", metadata: ["member": "\(member.memberID)", "error": "\(error)"])
        }
    }
}
