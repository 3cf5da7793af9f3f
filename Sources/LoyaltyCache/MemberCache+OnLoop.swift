import NIOCore

/// Till lookups without Swift concurrency: a cache hit is answered from NIO futures on the caller's event loop
/// (no task hop there and back). Each returns nil when it cannot be done at once (the epoch is due for a read or a
/// bump, the lookup script was not loaded yet, no live Redis connection): the caller then uses the async lookups,
/// which handle all of that. Answers, counters and failure handling are those of the async lookups.
extension MemberCache {
    public func memberOnLoop(id memberID: Int64, eventLoop: any EventLoop) -> EventLoopFuture<Lookup>? {
        guard memberID > 0 else { return eventLoop.makeSucceededFuture(countedMiss()) }
        guard let epoch = settledEpoch() else { return nil }
        if let hit = localMember(memberID: memberID, epoch: epoch) { return eventLoop.makeSucceededFuture(hit) }
        let fill = localFill(epoch: epoch, indexKey: nil)
        guard let future = redis.sendOnLoop(
            bytes: [Array("HGET".utf8), Array(keys.member(memberID, epoch: epoch).utf8), Array("b".utf8)], preferring: eventLoop)
        else { return nil }
        return answered(future) { self.decodedLookup($0, memberID: memberID, fill: fill) { _ in true } }
    }

    public func memberOnLoop(card: String, eventLoop: any EventLoop) -> EventLoopFuture<Lookup>? {
        let digest = keys.digests.digest(card, kind: .card)
        return indexedOnLoop(identifier: card, kind: "card number", key: keys.card, eventLoop: eventLoop) {
            $0.cardDigest == digest
        }
    }

    public func memberOnLoop(phone: String, eventLoop: any EventLoop) -> EventLoopFuture<Lookup>? {
        let digest = keys.digests.digest(phone, kind: .phone)
        return indexedOnLoop(identifier: phone, kind: "phone", key: keys.phone, eventLoop: eventLoop) {
            $0.phoneDigest == digest
        }
    }

    private func indexedOnLoop(
        identifier: String, kind: String, key: (String, Int64) -> String, eventLoop: any EventLoop,
        matches: @escaping @Sendable (CachedMember.Blob) -> Bool
    ) -> EventLoopFuture<Lookup>? {
        guard (try? MemberCacheKeys.checkIdentifier(identifier, kind: kind)) != nil else {
            return eventLoop.makeSucceededFuture(countedMiss())
        }
        guard let epoch = settledEpoch() else { return nil }
        let indexKey = key(identifier, epoch)
        if let hit = localMember(indexKey: indexKey, epoch: epoch, matches: matches) {
            return eventLoop.makeSucceededFuture(hit)
        }
        let fill = localFill(epoch: epoch, indexKey: indexKey)
        let parts = keys.memberParts(epoch: epoch)
        guard let future = MemberCacheScripts.indexedLookup.runOnLoop(
            on: redis, keys: [indexKey], arguments: [Array(parts.prefix.utf8), Array(parts.suffix.utf8)],
            preferring: eventLoop)
        else { return nil }
        return answered(future) { self.decodedLookup($0, memberID: nil, fill: fill, matches: matches) }
    }

    /// A reply future as a lookup answer: a failure is `unavailable`, counted and noted as in the async lookups.
    private func answered(
        _ future: EventLoopFuture<RedisValue>, _ decode: @escaping @Sendable (RedisValue) -> Lookup
    ) -> EventLoopFuture<Lookup> {
        future.map(decode).recover { error in
            let cacheError = error as? CacheError ?? .protocolError("\(error)")
            self.counters.unavailable.add(1, ordering: .relaxed)
            self.noteFailure(cacheError, duringWrite: false)
            return .unavailable(cacheError)
        }
    }

    /// The epoch when it may be used without reading Redis (known, fresh, no bump or check asked for, no recovery
    /// unseen); nil when `currentEpoch` has work to do first.
    func settledEpoch() -> Int64? {
        let recoveries = recoverySignal?.recoveries
        let now = ContinuousClock.now
        return epochState.withLock { state -> Int64? in
            if let recoveries, recoveries != state.recoveriesSeen { return nil }
            guard let epoch = state.epoch, let refreshedAt = state.refreshedAt,
                state.bumpsDone >= state.bumpsRequested, state.checksDone >= state.checksRequested,
                now - refreshedAt < configuration.epochRefreshInterval
            else { return nil }
            return epoch
        }
    }
}
