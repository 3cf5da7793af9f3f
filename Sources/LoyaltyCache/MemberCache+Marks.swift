/// Marking many members' snapshots old at once, for batch jobs (a bonus blast pays 500 members per batch): one
/// script call per `maximumMarksPerCall` members instead of one command per member.
extension MemberCache {
    /// The most members one script call marks: bounds the command's size and how long Redis is busy with it
    /// (about a millisecond for a thousand markers).
    public static let maximumMarksPerCall = 1_000

    /// The answer to a batch of marks.
    public enum MarksOutcome: Sendable, Equatable {
        /// The calls went through: `marked` markers written, `skippedStale` members already at that version or newer.
        case written(marked: Int, skippedStale: Int)
        /// A call failed (the members after it were not sent); the cache moves to a new epoch before it answers again.
        case unavailable(CacheError)
    }

    /// `invalidate` for many members: each is marked only when the marker is newer than what is stored, as
    /// `invalidate` does, in one script call per `maximumMarksPerCall` members.
    ///
    /// - Throws: `CacheError.limitExceeded` for a member id or version outside the limits (nothing is sent).
    @discardableResult
    public func invalidate(_ members: [(memberID: Int64, ledgerVersion: Int64)]) async throws(CacheError) -> MarksOutcome {
        for member in members { try Self.checkVersion(memberID: member.memberID, ledgerVersion: member.ledgerVersion) }
        guard !members.isEmpty else { return .written(marked: 0, skippedStale: 0) }
        let epoch: Int64
        switch await currentEpoch() {
        case .success(let value): epoch = value
        case .failure(let error): return .unavailable(error)
        }
        var marked = 0
        var start = members.startIndex
        while start < members.endIndex {
            let chunk = members[start..<min(start + Self.maximumMarksPerCall, members.endIndex)]
            start = chunk.endIndex
            let reply: RedisValue
            do {
                reply = try await MemberCacheScripts.versionedMarks.run(
                    on: redis, keys: chunk.map { keys.member($0.memberID, epoch: epoch) },
                    arguments: [Array(String(ttlMilliseconds).utf8)] + chunk.map { Array(String($0.ledgerVersion).utf8) })
            } catch {
                _ = writeFailed(error)
                return .unavailable(error)
            }
            local?.invalidate(chunk.map { keys.member($0.memberID, epoch: epoch) })
            let written = reply.integer.map(Int.init) ?? 0
            counters.writes.add(written, ordering: .relaxed)
            counters.staleWriteSkips.add(chunk.count - written, ordering: .relaxed)
            marked += written
        }
        return .written(marked: marked, skippedStale: members.count - marked)
    }
}

extension MemberCacheScripts {
    /// The marker branch of `versionedWrite` for many members in one call.
    ///
    /// KEYS[i] member i's hash; ARGV[1] TTL in ms; ARGV[i + 1] member i's ledger version. A marker is written (b
    /// deleted, v set, TTL set) only when nothing is stored or its version is above the stored one; answers how many
    /// were written. Not for Redis Cluster: the members' keys lie in different slots.
    static let versionedMarks = RedisScript(
        """
        local written = 0
        for i = 1, #KEYS do
          local version = tonumber(ARGV[i + 1])
          local stored = tonumber(redis.call('HGET', KEYS[i], 'v'))
          if not stored or version > stored then
            redis.call('HDEL', KEYS[i], 'b')
            redis.call('HSET', KEYS[i], 'v', ARGV[i + 1])
            redis.call('PEXPIRE', KEYS[i], ARGV[1])
            written = written + 1
          end
        end
        return written
        """)
}
