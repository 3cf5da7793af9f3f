import Logging
import Synchronization

/// The till's member lookups from Redis: member, tier and balances by member id, card number or phone.
///
/// Guarantees:
/// - A cache, never the truth for a write: a redemption always checks PostgreSQL.
/// - Every lookup answers hit, miss or unavailable and never hangs: the first failed command ends it, so it waits
///   for at most one command timeout (an open breaker answers at once) and the till falls back to PostgreSQL.
/// - An older snapshot never replaces a newer one: writes are versioned by `ledgerVersion` in one Lua script.
/// - Every value has a TTL (`Configuration.timeToLive`; only the one small epoch counter has none), so memory
///   stays bounded. Blobs over 16 KiB, oversized identifiers and out-of-range settings are refused before
///   anything is sent.
/// - After Redis was unreachable or failed a command, values from before are not served: this cache moves to a
///   new key epoch before its next lookup, and other servers follow within `epochRefreshInterval` (see "Epochs").
///
/// Epochs: all member keys carry the epoch (`loyalty:e7:...`). Writes made while Redis was down went only to
/// PostgreSQL, so what Redis still holds may be older than the ledger. This cache therefore moves to a new epoch
/// (a shared counter, `loyalty:cache-epoch`) before it answers again when any of these happened:
/// - one of its writes failed;
/// - a lookup or a read of the counter found Redis unreachable (connection refused or lost, breaker open, an
///   error reply). After a timeout there it re-reads the run_id and the counter first and bumps only if they show
///   a restart;
/// - the `RedisRecoverySignal` it was given fired (the client's breaker closed after opening);
/// - Redis restarted or failed over (its run_id changed), or lost or rolled back the counter.
/// Other servers read the counter when they start and every `epochRefreshInterval`.
///
/// The window: a server that saw no failure itself (say it was idle during a short outage, or only another
/// server's path to Redis broke) keeps reading the old epoch until its next refresh, that is for at most
/// `epochRefreshInterval` plus one command timeout after the bump. Its reads in that window may be stale; its
/// writes land in the old epoch and are simply never read. Keep the interval short (default 5 s) and redemptions
/// on PostgreSQL. Old epochs are never deleted: their values expire with their TTL, so for one TTL after a bump
/// Redis holds the old working set beside the new one. Trade-off: a single failed write (a timeout, say) also empties
/// the cache for every server; we prefer a cold cache to a stale balance.
///
/// Not covered: a fill that read PostgreSQL just before another writer's ledger change, when that writer's `put`
/// failed, can still land in the new epoch; it is replaced by the member's next `put` or expires with its TTL.
///
/// The local level (`Configuration.localCacheBytes` > 0): a byte-bounded copy of what lookups found, in this
/// process, consulted before Redis (`LocalMemberCache`, `MemberCache+Local`). Invariant: a lookup never returns a
/// snapshot older than the last write acknowledged to any till, except within the invalidation delay (from Redis
/// executing a write to this process handling its client-side-caching invalidation). This cache's own writes
/// update or remove its local entries when Redis acknowledges them; the level is dropped whole when the
/// invalidation connection is lost, the epoch moves, a Redis command fails or a flush arrives. Call `close()` when
/// done with a cache that has the level: it owns one Redis connection of its own.
public final class MemberCache: Sendable {
    /// Settings, checked by `MemberCache.init` against `Limits`.
    public struct Configuration: Sendable {
        /// The first part of every key; tests use their own so they never share an epoch.
        public var namespace = "loyalty"
        /// How long a member blob or index lives after its last write.
        public var timeToLive: Duration = .seconds(3_600)
        /// How often the shared epoch is read again, which bounds how long a server may use an old epoch.
        public var epochRefreshInterval: Duration = .seconds(5)
        /// Keys the digests that stand for card numbers and phones in keys and blobs. Servers sharing a Redis must
        /// share it (the server reads it from PostgreSQL); the default is this process's own.
        public var identifierDigest: IdentifierDigest = .processLocal()
        /// The byte bound of the process-local level in front of Redis (`LocalMemberCache`, kept coherent by
        /// Redis client-side caching); 0 leaves it out and every lookup asks Redis.
        public var localCacheBytes = 0
        /// How often the invalidation connection is pinged; a missed answer empties the local level.
        public var invalidationHeartbeatMs = 1_000

        public init() {}
    }

    /// The explicit limits; anything outside them is refused with `CacheError.limitExceeded`.
    public enum Limits {
        /// A blob larger than this is refused: members are small, and a big value would slow every lookup.
        public static let maximumBlobBytes = 16 * 1_024
        /// Longest card number or phone accepted (only its fixed-size digest reaches a key).
        public static let maximumIdentifierBytes = 128
        public static let maximumNamespaceBytes = 64
        public static let timeToLive: ClosedRange<Duration> = .seconds(1) ... .seconds(7 * 24 * 3_600)
        public static let epochRefreshInterval: ClosedRange<Duration> = .milliseconds(50) ... .seconds(600)
        /// Lua compares versions as doubles, which are exact up to 2^53.
        public static let maximumLedgerVersion: Int64 = 1 << 53
        /// The local level's bound: 0 (off) up to 64 GiB.
        public static let localCacheBytes: ClosedRange<Int> = 0...(64 << 30)
        public static let invalidationHeartbeatMs: ClosedRange<Int> = 50...60_000
    }

    /// The answer to a lookup.
    public enum Lookup: Sendable, Equatable {
        case hit(CachedMember)
        /// Not cached (or an index pointed at a member who no longer has that card or phone): ask PostgreSQL.
        case miss
        /// Redis is down, slow or its breaker is open: ask PostgreSQL and count a fallback.
        case unavailable(CacheError)

        public var member: CachedMember? {
            if case .hit(let member) = self { return member }
            return nil
        }
    }

    /// The answer to a write.
    public enum WriteOutcome: Sendable, Equatable {
        /// Written (for `invalidate`: the marker was written).
        case stored
        /// Not written: Redis already holds this ledger version or a newer one.
        case skippedStale
        /// Not written, and the cache will move to a new epoch before it answers again.
        case unavailable(CacheError)

        public var didStore: Bool { self == .stored }
    }

    /// Counters since the cache was created, for metrics.
    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        /// Lookups answered `unavailable` (each is a PostgreSQL fallback).
        public var unavailable = 0
        public var writes = 0
        public var staleWriteSkips = 0
        public var writeFailures = 0
        /// Epoch bumps this cache made (other servers' bumps are picked up, not counted).
        public var epochBumps = 0
        /// The epoch in use; nil before the first successful read of the counter.
        public var epoch: Int64?
        /// The local level (all zero when it is off). `hits` above counts its hits too; `localMisses` are the
        /// lookups it passed on to Redis.
        public var localHits = 0
        public var localMisses = 0
        /// Entries the local level took from Redis reads and own writes, and those it refused (a change or a drop
        /// came after the read started, or it held a newer version).
        public var localFills = 0
        public var localFillsRefused = 0
        public var localEvictions = 0
        /// Entries removed by invalidation messages and by this cache's own writes.
        public var localInvalidations = 0
        /// Times the local level was emptied while holding entries (connection lost, epoch moved, Redis failed, flush).
        public var localDrops = 0
        public var localEntries = 0
        public var localBytes = 0
        /// Whether the invalidation stream is complete now (the local level answers only then).
        public var localLive = false
        /// Redis's id of the invalidation connection while it is live (for `CLIENT KILL` in tests and by operators).
        public var invalidationConnectionID: Int64?

        public init() {}
    }

    let redis: RedisClient
    let configuration: Configuration
    let keys: MemberCacheKeys
    let logger: Logger
    let recoverySignal: RedisRecoverySignal?
    let epochState: Mutex<MemberCacheEpochState>
    let counters = MemberCacheCounters()
    /// The process-local level; nil when `localCacheBytes` is 0.
    let local: LocalMemberCache?
    let invalidations: RedisInvalidationListener?
    let invalidationConnectionID = Atomic<Int64>(0)
    /// The prefix of every key this cache writes.
    public var namespace: String { configuration.namespace }

    /// - Parameter recoverySignal: the signal given to `redis`'s `onRecovery`, so that an outage seen only by
    ///   other users of the client (health checks, PostgreSQL-only writes) also moves this cache to a new epoch.
    public init(
        redis: RedisClient, configuration: Configuration = Configuration(), recoverySignal: RedisRecoverySignal? = nil,
        logger: Logger
    ) throws(CacheError) {
        try MemberCacheKeys.checkNamespace(configuration.namespace)
        guard Limits.timeToLive.contains(configuration.timeToLive) else {
            throw .limitExceeded("timeToLive \(configuration.timeToLive) is outside \(Limits.timeToLive)")
        }
        guard Limits.epochRefreshInterval.contains(configuration.epochRefreshInterval) else {
            throw .limitExceeded(
                "epochRefreshInterval \(configuration.epochRefreshInterval) is outside \(Limits.epochRefreshInterval)")
        }
        guard Limits.localCacheBytes.contains(configuration.localCacheBytes) else {
            throw .limitExceeded("localCacheBytes \(configuration.localCacheBytes) is outside \(Limits.localCacheBytes)")
        }
        guard Limits.invalidationHeartbeatMs.contains(configuration.invalidationHeartbeatMs) else {
            throw .limitExceeded(
                "invalidationHeartbeatMs \(configuration.invalidationHeartbeatMs) is outside \(Limits.invalidationHeartbeatMs)")
        }
        self.redis = redis
        self.configuration = configuration
        self.keys = MemberCacheKeys(namespace: configuration.namespace, digests: configuration.identifierDigest)
        self.recoverySignal = recoverySignal
        self.logger = logger
        // Recoveries before this cache existed cannot have left anything stale in it.
        self.epochState = Mutex(MemberCacheEpochState(recoveriesSeen: recoverySignal?.recoveries ?? 0))
        if configuration.localCacheBytes > 0 {
            self.local = LocalMemberCache(capacityBytes: configuration.localCacheBytes)
            var listener = RedisInvalidationListener.Configuration(
                url: redis.configuration.url, prefix: "\(configuration.namespace):")
            listener.connectTimeoutMs = redis.configuration.connectTimeoutMs
            listener.heartbeatMs = configuration.invalidationHeartbeatMs
            self.invalidations = RedisInvalidationListener(
                configuration: listener, eventLoopGroup: redis.eventLoopGroup, logger: logger)
        } else {
            self.local = nil
            self.invalidations = nil
        }
        invalidations?.start { [weak self] event in self?.handleInvalidation(event) }
    }

    /// Stops the invalidation connection and empties the local level (Redis itself is the client's to shut down).
    public func close() async {
        await invalidations?.stop()
        local?.drop(live: false)
        invalidationConnectionID.store(0, ordering: .relaxed)
    }

    public var statistics: Statistics {
        var snapshot = counters.snapshot()
        snapshot.epoch = epochState.withLock { $0.epoch }
        if let local {
            let localCounters = local.counters
            snapshot.localHits = localCounters.hits.load(ordering: .relaxed)
            snapshot.localMisses = localCounters.misses.load(ordering: .relaxed)
            snapshot.localFills = localCounters.fills.load(ordering: .relaxed)
            snapshot.localFillsRefused = localCounters.fillsRefused.load(ordering: .relaxed)
            snapshot.localEvictions = localCounters.evictions.load(ordering: .relaxed)
            snapshot.localInvalidations = localCounters.invalidations.load(ordering: .relaxed)
            snapshot.localDrops = localCounters.drops.load(ordering: .relaxed)
            (snapshot.localEntries, snapshot.localBytes) = local.usage
            snapshot.localLive = local.isLive
            let id = invalidationConnectionID.load(ordering: .relaxed)
            snapshot.invalidationConnectionID = snapshot.localLive && id > 0 ? id : nil
        }
        return snapshot
    }

    // MARK: Lookups

    public func member(id memberID: Int64) async -> Lookup {
        guard memberID > 0 else { return countedMiss() }
        let epoch: Int64
        switch await currentEpoch() {
        case .success(let value): epoch = value
        case .failure(let error): return lookupFailed(error)
        }
        if let hit = localMember(memberID: memberID, epoch: epoch) { return hit }
        return await blob(memberID: memberID, epoch: epoch) { _ in true }
    }

    public func member(card: String) async -> Lookup {
        let digest = keys.digests.digest(card, kind: .card)
        return await lookUp(identifier: card, kind: "card number", key: keys.card) { $0.cardDigest == digest }
    }

    public func member(phone: String) async -> Lookup {
        let digest = keys.digests.digest(phone, kind: .phone)
        return await lookUp(identifier: phone, kind: "phone", key: keys.phone) { $0.phoneDigest == digest }
    }

    /// Index → member id → blob, in one script call (one round trip). The blob must still carry the identifier: an
    /// index is written after its blob and not removed when a card moves, so it may point at a member who no
    /// longer has that card.
    private func lookUp(
        identifier: String, kind: String, key: (String, Int64) -> String,
        matches: @Sendable (CachedMember.Blob) -> Bool
    ) async -> Lookup {
        // An identifier no key can be made of was never cached.
        guard (try? MemberCacheKeys.checkIdentifier(identifier, kind: kind)) != nil else { return countedMiss() }
        let epoch: Int64
        switch await currentEpoch() {
        case .success(let value): epoch = value
        case .failure(let error): return lookupFailed(error)
        }
        let indexKey = key(identifier, epoch)
        if let hit = localMember(indexKey: indexKey, epoch: epoch, matches: matches) { return hit }
        let fill = localFill(epoch: epoch, indexKey: indexKey)
        let parts = keys.memberParts(epoch: epoch)
        let reply: RedisValue
        do {
            reply = try await MemberCacheScripts.indexedLookup.run(
                on: redis, keys: [indexKey], arguments: [Array(parts.prefix.utf8), Array(parts.suffix.utf8)])
        } catch {
            return lookupFailed(error)
        }
        return decodedLookup(reply, memberID: nil, fill: fill, matches: matches)
    }

    private func blob(memberID: Int64, epoch: Int64, matches: @Sendable (CachedMember.Blob) -> Bool) async -> Lookup {
        let fill = localFill(epoch: epoch, indexKey: nil)
        let reply: RedisValue
        do {
            reply = try await redis.send(["HGET", keys.member(memberID, epoch: epoch), "b"])
        } catch {
            return lookupFailed(error)
        }
        return decodedLookup(reply, memberID: memberID, fill: fill, matches: matches)
    }

    /// A blob reply as a hit or a miss. `memberID`: the id the key was made of, when the caller knows it. A hit is
    /// copied into the local level as `fill` says (nil: the level is off or not live).
    func decodedLookup(
        _ reply: RedisValue, memberID: Int64?, fill: LocalFill?, matches: (CachedMember.Blob) -> Bool
    ) -> Lookup {
        guard let bytes = reply.bytes, let blob = CachedMember.decode(bytes), blob.member.memberID > 0,
            memberID == nil || blob.member.memberID == memberID, matches(blob)
        else { return countedMiss() }
        if let fill, let local {
            local.fill(
                memberKey: keys.member(blob.member.memberID, epoch: fill.epoch), blob: blob,
                indexKeys: fill.indexKey.map { [$0] } ?? [], startedAt: fill.sequence)
        }
        counters.hits.add(1, ordering: .relaxed)
        return .hit(blob.member)
    }

    func countedMiss() -> Lookup {
        counters.misses.add(1, ordering: .relaxed)
        return .miss
    }

    private func lookupFailed(_ error: CacheError) -> Lookup {
        counters.unavailable.add(1, ordering: .relaxed)
        noteFailure(error, duringWrite: false)
        return .unavailable(error)
    }

    // MARK: Writes

    /// Caches `member` unless Redis already holds its ledger version or a newer one, and points its card and phone
    /// indexes at it, in one round trip. Writers call this after every ledger change with the new version: there is no
    /// delete-then-fill, so a slow reader can never put an older snapshot back.
    ///
    /// - Throws: `CacheError.limitExceeded` for a member outside the limits (nothing is sent).
    @discardableResult
    public func put(_ member: CachedMember) async throws(CacheError) -> WriteOutcome {
        try Self.checkVersion(memberID: member.memberID, ledgerVersion: member.ledgerVersion)
        if let card = member.cardNumber { try MemberCacheKeys.checkIdentifier(card, kind: "card number") }
        if let phone = member.phone { try MemberCacheKeys.checkIdentifier(phone, kind: "phone") }
        let blob = try member.encoded(digests: keys.digests)
        guard blob.count <= Limits.maximumBlobBytes else {
            throw .limitExceeded(
                "member \(member.memberID) encodes to \(blob.count) bytes, over \(Limits.maximumBlobBytes)")
        }
        let epoch: Int64
        switch await currentEpoch() {
        case .success(let value): epoch = value
        case .failure(let error): return writeFailed(error)
        }
        // One script call writes the blob and, only if it won, its indexes: one round trip.
        let indexes = [member.cardNumber.map { keys.card($0, epoch: epoch) }, member.phone.map { keys.phone($0, epoch: epoch) }]
            .compactMap { $0 }
        let fill = localFill(epoch: epoch, indexKey: nil)
        let outcome = await versionedWrite(
            memberID: member.memberID, version: member.ledgerVersion, blob: blob, epoch: epoch,
            indexes: indexes, indexAction: .point)
        applyOwnWrite(outcome, memberKey: keys.member(member.memberID, epoch: epoch), blob: blob, indexKeys: indexes, fill: fill)
        return outcome
    }

    /// Makes lookups of `memberID` miss until a snapshot of at least `ledgerVersion` is put, for writers that
    /// changed the ledger but have no whole snapshot at hand. It writes a version marker rather than deleting, so
    /// a concurrent `put` of an older snapshot is refused instead of refilling the cache with it.
    @discardableResult
    public func invalidate(memberID: Int64, ledgerVersion: Int64) async throws(CacheError) -> WriteOutcome {
        try Self.checkVersion(memberID: memberID, ledgerVersion: ledgerVersion)
        let epoch: Int64
        switch await currentEpoch() {
        case .success(let value): epoch = value
        case .failure(let error): return writeFailed(error)
        }
        let outcome = await versionedWrite(memberID: memberID, version: ledgerVersion, blob: [], epoch: epoch)
        local?.invalidate([keys.member(memberID, epoch: epoch)])
        return outcome
    }

    /// For an erased member: invalidates like `invalidate`, and deletes the index keys of the identifiers it had
    /// (given by the caller, read before the erasure), so no key links those identifiers' digests to it any more.
    /// Call it before answering the erasure.
    @discardableResult
    public func erase(memberID: Int64, ledgerVersion: Int64, cardNumber: String?, phone: String?) async throws(CacheError) -> WriteOutcome {
        try Self.checkVersion(memberID: memberID, ledgerVersion: ledgerVersion)
        let epoch: Int64
        switch await currentEpoch() {
        case .success(let value): epoch = value
        case .failure(let error): return writeFailed(error)
        }
        let indexes = [cardNumber.map { keys.card($0, epoch: epoch) }, phone.map { keys.phone($0, epoch: epoch) }].compactMap { $0 }
        // The script deletes the indexes whatever the marker's outcome, in the same round trip.
        let outcome = await versionedWrite(
            memberID: memberID, version: ledgerVersion, blob: [], epoch: epoch, indexes: indexes, indexAction: .delete)
        local?.invalidate([keys.member(memberID, epoch: epoch)] + indexes)
        return outcome
    }

    static func checkVersion(memberID: Int64, ledgerVersion: Int64) throws(CacheError) {
        guard memberID > 0 else { throw .limitExceeded("member id \(memberID) is not positive") }
        guard (0...Limits.maximumLedgerVersion).contains(ledgerVersion) else {
            throw .limitExceeded("ledger version \(ledgerVersion) is outside 0...\(Limits.maximumLedgerVersion)")
        }
    }

    var ttlMilliseconds: Int64 {
        let parts = configuration.timeToLive.components
        return parts.seconds * 1_000 + parts.attoseconds / 1_000_000_000_000_000
    }

    /// What the versioned-write script does with the index keys it is given.
    enum IndexAction: String {
        /// Point them at the member, if its blob won.
        case point
        /// Delete them, whatever the version (erasure).
        case delete
    }

    private func versionedWrite(
        memberID: Int64, version: Int64, blob: [UInt8], epoch: Int64, indexes: [String] = [],
        indexAction: IndexAction = .point
    ) async -> WriteOutcome {
        let reply: RedisValue
        do {
            reply = try await MemberCacheScripts.versionedWrite.run(
                on: redis, keys: [keys.member(memberID, epoch: epoch)] + indexes,
                arguments: [
                    Array(String(version).utf8), Array(String(ttlMilliseconds).utf8), blob,
                    Array(indexAction.rawValue.utf8), Array(String(memberID).utf8),
                ])
        } catch {
            return writeFailed(error)
        }
        guard reply.integer == 1 else {
            counters.staleWriteSkips.add(1, ordering: .relaxed)
            return .skippedStale
        }
        counters.writes.add(1, ordering: .relaxed)
        return .stored
    }

    func writeFailed(_ error: CacheError) -> WriteOutcome {
        counters.writeFailures.add(1, ordering: .relaxed)
        // The write may not have landed, so what Redis holds for this member may now be older than PostgreSQL.
        noteFailure(error, duringWrite: true)
        return .unavailable(error)
    }
}

/// The counters behind `MemberCache.Statistics`: atomics, so lookups never queue behind each other to count.
final class MemberCacheCounters: Sendable {
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let unavailable = Atomic<Int>(0)
    let writes = Atomic<Int>(0)
    let staleWriteSkips = Atomic<Int>(0)
    let writeFailures = Atomic<Int>(0)
    let epochBumps = Atomic<Int>(0)

    func snapshot() -> MemberCache.Statistics {
        var statistics = MemberCache.Statistics()
        statistics.hits = hits.load(ordering: .relaxed)
        statistics.misses = misses.load(ordering: .relaxed)
        statistics.unavailable = unavailable.load(ordering: .relaxed)
        statistics.writes = writes.load(ordering: .relaxed)
        statistics.staleWriteSkips = staleWriteSkips.load(ordering: .relaxed)
        statistics.writeFailures = writeFailures.load(ordering: .relaxed)
        statistics.epochBumps = epochBumps.load(ordering: .relaxed)
        return statistics
    }
}
