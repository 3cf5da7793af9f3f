import Synchronization

/// The process-local level of the member cache: decoded member blobs by their Redis key, and identifier index
/// keys to member ids, so a lookup found here needs no Redis round trip. Kept coherent with Redis by the
/// invalidation messages `RedisInvalidationListener` receives (client-side caching, BCAST mode), and dropped whole
/// whenever that coherence cannot be vouched for.
///
/// Entries are keyed by the Redis key they copy (`loyalty:b2:e7:{m42}:member`, `…:card:<digest>`), so an
/// invalidation message names the entries it removes, and entries of an old epoch are never found under the new
/// epoch's keys.
///
/// The invariant: a lookup never returns a snapshot older than the last write acknowledged to any till, except
/// within the invalidation delay (the time from Redis executing a write to this process handling its
/// invalidation message; measured in docs/performance.md). The argument:
/// 1. Entries are only added while the listener is live: its connection has tracking on (BCAST, the cache's
///    namespace as prefix, invalidations redirected to itself) and is subscribed to `__redis__:invalidate`. Losing
///    it (closed, killed, a missed heartbeat) empties this level at once and stops adding until it is live again,
///    when it is emptied once more: nothing copied before can outlive a gap in the invalidation stream.
/// 2. Once live, every later write under the prefix, by any client, sends an invalidation naming its keys, and
///    handling it removes those entries. A FLUSHALL/FLUSHDB (a null invalidation) empties everything.
/// 3. The race: a Redis read that began before a write but whose answer is inserted after that write's
///    invalidation was handled would put the old value back. Every change here (an invalidation, an own write, a
///    drop) takes the next number of one sequence and stamps it on the key's stripe (`stripeCount` stripes by key
///    hash); a drop stamps everything. A caller takes `startSequence()` before sending its read and inserts with
///    it; the insert is refused when the key's stripe (or the last drop) is stamped later than that. A write that
///    Redis executed after the read was sent has its invalidation handled after the sequence was taken, so either
///    the insert sees the stamp and is refused, or the insert came first and the invalidation removes it. The check
///    and the insert are one critical section with invalidation handling, so nothing falls between them. Stripes
///    shared by other keys only cause needless refusals (a later miss), never a stale insert.
/// 4. Versions: a member entry is never replaced by one of a lower ledger version.
/// 5. The writer's own copy: after its own write to Redis is acknowledged, `MemberCache` removes or replaces its
///    entries at once (the replacement checked as in 3), so its next lookup never sees its own older copy.
///    Other servers follow when the write's invalidation reaches them.
///
/// Thread-safe: one mutex around the store, held for a dictionary operation or two; counters are atomics.
final class LocalMemberCache: Sendable {
    /// What an entry holds.
    enum Value {
        /// A member blob as decoded from Redis, boxed so that every slot stays small.
        case member(Box)
        /// An identifier index: the member id it points at.
        case index(Int64)
    }

    final class Box: Sendable {
        let blob: CachedMember.Blob
        init(_ blob: CachedMember.Blob) { self.blob = blob }
    }

    /// Index entries cost the member id's 8 bytes.
    static let indexValueBytes = 8

    /// What a decoded blob keeps on the heap: the box (object header and the struct), the two digest arrays
    /// (header and 16 bytes each), the campaign ids and the text fields (counted even when Swift stores short ones
    /// inline). An estimate on the generous side, so the bound holds for the real footprint too.
    static func valueBytes(_ blob: CachedMember.Blob) -> Int {
        let member = blob.member
        return 16 + MemoryLayout<CachedMember.Blob>.stride + 2 * 48
            + 32 + 8 * (member.pricing?.campaignSegments.count ?? 0)
            + member.tierCode.utf8.count + member.tierName.utf8.count + member.status.utf8.count
    }
    /// Stripes of the invalidation stamps: enough that two keys in flight rarely share one (a shared stripe costs
    /// one needless miss), small enough to clear at once on a drop.
    static let stripeCount = 4_096

    struct State {
        var store: ClockCache<Value>
        /// Bumped by every invalidation, own write and drop.
        var sequence: UInt64 = 0
        /// The sequence of the last drop: inserts that started before it are refused.
        var droppedAt: UInt64 = 0
        var stripes: [UInt64]
        /// True while the invalidation stream is complete (see the type's point 1).
        var live = false
    }

    let capacityBytes: Int
    private let state: Mutex<State>
    let counters = LocalMemberCacheCounters()

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        self.state = Mutex(State(store: ClockCache(capacityBytes: capacityBytes), stripes: Array(repeating: 0, count: Self.stripeCount)))
    }

    static func stripe(_ key: String) -> Int {
        // Hasher is seeded per process, which is all a stripe needs.
        Int(UInt(bitPattern: key.hashValue) % UInt(stripeCount))
    }

    var isLive: Bool { state.withLock { $0.live } }

    /// The sequence to hand to `fill` for a Redis read about to be sent; nil when nothing may be inserted now
    /// (not live), so the caller need not decode for this level.
    func startSequence() -> UInt64? {
        state.withLock { $0.live ? $0.sequence : nil }
    }

    // MARK: Lookups

    /// A member blob under its member key, counted as a local hit or miss by the caller.
    func member(key: String) -> CachedMember.Blob? {
        state.withLock { state -> CachedMember.Blob? in
            guard state.live, case .member(let box)? = state.store.value(forKey: key) else { return nil }
            return box.blob
        }
    }

    /// Index key → member id → blob under one lock; nil when either is absent.
    func member(indexKey: String, memberKey: (Int64) -> String) -> CachedMember.Blob? {
        state.withLock { state -> CachedMember.Blob? in
            guard state.live, case .index(let memberID)? = state.store.value(forKey: indexKey),
                case .member(let box)? = state.store.value(forKey: memberKey(memberID))
            else { return nil }
            return box.blob
        }
    }

    // MARK: Inserts

    /// Inserts what a Redis read started at `sequence` found: the member blob under `memberKey` and, when given, the
    /// index key pointing at it. Refused (nothing inserted) when the level is not live, when a drop or an
    /// invalidation of either key's stripe came after `sequence`, or (for the blob) when a newer version is held.
    /// Returns whether the blob was inserted.
    @discardableResult
    func fill(memberKey: String, blob: CachedMember.Blob, indexKeys: [String] = [], startedAt sequence: UInt64) -> Bool {
        let box = Box(blob)
        let valueBytes = Self.valueBytes(blob)
        let outcome = state.withLock { state -> (inserted: Bool, evicted: Int) in
            guard state.live, state.droppedAt <= sequence else { return (false, 0) }
            let evictionsBefore = state.store.evictions
            guard state.stripes[Self.stripe(memberKey)] <= sequence else { return (false, 0) }
            if case .member(let held)? = state.store.peek(memberKey), held.blob.member.ledgerVersion > blob.member.ledgerVersion {
                return (false, 0)
            }
            guard state.store.insert(.member(box), forKey: memberKey, valueBytes: valueBytes) else { return (false, 0) }
            for indexKey in indexKeys where state.stripes[Self.stripe(indexKey)] <= sequence {
                state.store.insert(.index(blob.member.memberID), forKey: indexKey, valueBytes: Self.indexValueBytes)
            }
            return (true, state.store.evictions - evictionsBefore)
        }
        counters.evictions.add(outcome.evicted, ordering: .relaxed)
        counters.fills.add(outcome.inserted ? 1 : 0, ordering: .relaxed)
        counters.fillsRefused.add(outcome.inserted ? 0 : 1, ordering: .relaxed)
        return outcome.inserted
    }

    // MARK: Invalidations and drops

    /// Removes the entries of `keys` and stamps their stripes: for invalidation messages, and for this process's
    /// own writes the moment Redis acknowledged them.
    func invalidate(_ keys: [String]) {
        let removed = state.withLock { state -> Int in
            state.sequence += 1
            var removed = 0
            for key in keys {
                state.stripes[Self.stripe(key)] = state.sequence
                if state.store.remove(key) { removed += 1 }
            }
            return removed
        }
        counters.invalidations.add(removed, ordering: .relaxed)
    }

    /// Empties the level and refuses inserts that started before. `live`: whether the invalidation stream is
    /// complete from now on (true only when the listener has just subscribed).
    func drop(live: Bool? = nil) {
        let hadEntries = state.withLock { state -> Bool in
            state.sequence += 1
            state.droppedAt = state.sequence
            if let live { state.live = live }
            let had = state.store.count > 0
            state.store.removeAll()
            return had
        }
        if hadEntries { counters.drops.add(1, ordering: .relaxed) }
    }

    /// Entries and accounted bytes held now.
    var usage: (entries: Int, bytes: Int) {
        state.withLock { ($0.store.count, $0.store.bytes) }
    }
}

/// Counters of the local level since it was made.
final class LocalMemberCacheCounters: Sendable {
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let fills = Atomic<Int>(0)
    /// Fills refused by the race check, the version rule or a level that is not live.
    let fillsRefused = Atomic<Int>(0)
    let evictions = Atomic<Int>(0)
    /// Entries removed by invalidations (messages and own writes).
    let invalidations = Atomic<Int>(0)
    /// Times the level was emptied while it held entries.
    let drops = Atomic<Int>(0)
}
