/// The process-local level in front of Redis (`LocalMemberCache`; its invariant and the race argument are in its
/// doc comment). Lookups ask it first and copy Redis hits into it; this cache's own writes replace or remove its
/// entries the moment Redis acknowledges them; everything that makes Redis's content doubtful empties it.
extension MemberCache {
    /// How a Redis read's answer may be copied into the local level: under which epoch's keys, with which index
    /// key, and the sequence taken before the read was sent.
    struct LocalFill: Sendable {
        var epoch: Int64
        var indexKey: String?
        var sequence: UInt64
    }

    /// nil when the level is off or not live: then nothing is copied.
    func localFill(epoch: Int64, indexKey: String?) -> LocalFill? {
        guard let sequence = local?.startSequence() else { return nil }
        return LocalFill(epoch: epoch, indexKey: indexKey, sequence: sequence)
    }

    /// A local hit by member id, counted; nil (a local miss, counted when the level is on) otherwise.
    func localMember(memberID: Int64, epoch: Int64) -> Lookup? {
        guard let local else { return nil }
        guard let blob = local.member(key: keys.member(memberID, epoch: epoch)), blob.member.memberID == memberID else {
            local.counters.misses.add(1, ordering: .relaxed)
            return nil
        }
        return localHit(blob, local)
    }

    /// A local hit by card or phone index key; the blob must still carry the identifier's digest, as in Redis.
    func localMember(indexKey: String, epoch: Int64, matches: (CachedMember.Blob) -> Bool) -> Lookup? {
        guard let local else { return nil }
        guard let blob = local.member(indexKey: indexKey, memberKey: { self.keys.member($0, epoch: epoch) }), matches(blob) else {
            local.counters.misses.add(1, ordering: .relaxed)
            return nil
        }
        return localHit(blob, local)
    }

    private func localHit(_ blob: CachedMember.Blob, _ local: LocalMemberCache) -> Lookup {
        local.counters.hits.add(1, ordering: .relaxed)
        counters.hits.add(1, ordering: .relaxed)
        return .hit(blob.member)
    }

    /// This cache's own `put`, acknowledged: the blob Redis now holds replaces the local copy at once, unless a
    /// change of those keys was handled since the write was sent (it may be a newer write by another server), in
    /// which case the local copies are removed instead. Either way this process never reads its own older copy
    /// after the acknowledgement.
    func applyOwnWrite(_ outcome: WriteOutcome, memberKey: String, blob: [UInt8], indexKeys: [String], fill: LocalFill?) {
        guard let local else { return }
        if outcome == .stored, let fill, let decoded = CachedMember.decode(blob),
            local.fill(memberKey: memberKey, blob: decoded, indexKeys: indexKeys, startedAt: fill.sequence)
        {
            return
        }
        local.invalidate([memberKey] + indexKeys)
    }

    /// What the invalidation connection reports.
    func handleInvalidation(_ event: RedisInvalidationListener.Event) {
        guard let local else { return }
        switch event {
        case .live(let connectionID):
            invalidationConnectionID.store(connectionID, ordering: .relaxed)
            local.drop(live: true)
        case .lost:
            invalidationConnectionID.store(0, ordering: .relaxed)
            local.drop(live: false)
        case .flushed:
            local.drop()
            // The epoch counter went with the flush: read it again before the next command.
            epochState.withLock { $0.checksRequested += 1 }
        case .invalidated(let changed):
            local.invalidate(changed)
            if changed.contains(keys.epoch) {
                // Another server moved the epoch: follow now instead of at the next refresh. The entries are of
                // the old epoch's keys, which lookups stop using once the counter is read.
                local.drop()
                epochState.withLock { $0.checksRequested += 1 }
            }
        }
    }
}
