import NIOCore
import Synchronization

/// A Lua script that is sent whole once (SCRIPT LOAD) and then run by its SHA-1 (EVALSHA).
///
/// Guarantees: when the server no longer knows the script (NOSCRIPT: it restarted, failed over, or someone ran
/// SCRIPT FLUSH) the call is repeated once with EVAL, which also puts the script back into the server's cache, so
/// callers never see NOSCRIPT. Any other error, including a script error, reaches the caller unchanged.
final class RedisScript: Sendable {
    let source: String
    private let digest = Mutex<String?>(nil)

    init(_ source: String) {
        self.source = source
    }

    func run(on redis: RedisClient, keys: [String], arguments: [[UInt8]]) async throws(CacheError) -> RedisValue {
        let sha = try await loadedDigest(on: redis)
        let tail = [Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments
        do {
            return try await redis.send(bytes: [Array("EVALSHA".utf8), Array(sha.utf8)] + tail)
        } catch {
            guard case .server(let message) = error, message.hasPrefix("NOSCRIPT") else { throw error }
            return try await redis.send(bytes: [Array("EVAL".utf8), Array(source.utf8)] + tail)
        }
    }

    /// `run` without Swift concurrency (see `RedisClient.sendOnLoop`). Nil when the script was not loaded yet by
    /// a `run`, or no connection is live: use `run`. NOSCRIPT is answered with EVAL, as in `run`.
    func runOnLoop(on redis: RedisClient, keys: [String], arguments: [[UInt8]], preferring eventLoop: any EventLoop)
        -> EventLoopFuture<RedisValue>?
    {
        guard let sha = digest.withLock({ $0 }) else { return nil }
        let tail = [Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments
        guard let first = redis.sendOnLoop(bytes: [Array("EVALSHA".utf8), Array(sha.utf8)] + tail, preferring: eventLoop) else {
            return nil
        }
        let source = self.source
        return first.flatMapError { error in
            guard case .server(let message)? = error as? CacheError, message.hasPrefix("NOSCRIPT"),
                let again = redis.sendOnLoop(bytes: [Array("EVAL".utf8), Array(source.utf8)] + tail, preferring: eventLoop)
            else { return first.eventLoop.makeFailedFuture(error) }
            return again.hop(to: first.eventLoop)
        }
    }

    private func loadedDigest(on redis: RedisClient) async throws(CacheError) -> String {
        if let known = digest.withLock({ $0 }) { return known }
        // Two first calls may both load: harmless, SCRIPT LOAD of the same text answers the same SHA.
        let reply = try await redis.send(["SCRIPT", "LOAD", source])
        guard let sha = reply.string, sha.utf8.count == 40 else {
            throw .protocolError("SCRIPT LOAD answered \(reply) instead of a SHA-1")
        }
        digest.withLock { $0 = sha }
        return sha
    }
}

/// The scripts of the member cache. They assume one Redis server (no cluster): see each script.
enum MemberCacheScripts {
    /// Stores a member blob, or an invalidation marker, only when it is newer than what is stored, and in the same
    /// call points the member's card and phone index keys at it (or, for an erasure, deletes them): one round trip
    /// for a whole cache update after a ledger write.
    ///
    /// KEYS[1] the member's hash; KEYS[2..] index keys. ARGV[1] ledger version; ARGV[2] TTL in ms; ARGV[3] blob,
    /// or '' for a marker; ARGV[4] what to do with the index keys: 'point' (set them to ARGV[5], the member id, with
    /// the TTL) or 'delete'. The hash keeps the version in field v beside the blob in field b, so the check and the
    /// write are one atomic step and the blob is never deleted first and filled later. Rules, with s = the stored
    /// version:
    /// - nothing stored, or version > s: write (a marker deletes b and keeps v = version), set the TTL, answer 1;
    /// - version < s: answer 0 (an older snapshot never replaces a newer one, nor a newer marker);
    /// - version = s: a blob fills an invalidated hash (answer 1); it leaves an equal blob alone (answer 0); a
    ///   marker at the version of the stored blob answers 0 (that blob is already as new as the marker asks).
    /// Index keys are pointed only by a blob at least as new as the stored one (a skipped writer's card may be out
    /// of date; an equal blob carries the same identifiers, so it may restore an index that expired or was
    /// evicted alone). 'delete' runs first and always: an erasure removes the identifiers whatever the version.
    ///
    /// Not for Redis Cluster: the index keys are not in the member's slot (a till looks them up by digest only).
    static let versionedWrite = RedisScript(
        """
        if ARGV[4] == 'delete' and #KEYS > 1 then redis.call('DEL', unpack(KEYS, 2)) end
        local function point()
          if ARGV[4] ~= 'point' then return end
          for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[5], 'PX', ARGV[2]) end
        end
        local stored = tonumber(redis.call('HGET', KEYS[1], 'v'))
        local version = tonumber(ARGV[1])
        if stored then
          if version < stored then return 0 end
          if version == stored and (ARGV[3] == '' or redis.call('HEXISTS', KEYS[1], 'b') == 1) then
            if ARGV[3] ~= '' then point() end
            return 0
          end
        end
        if ARGV[3] == '' then
          redis.call('HDEL', KEYS[1], 'b')
          redis.call('HSET', KEYS[1], 'v', ARGV[1])
        else
          redis.call('HSET', KEYS[1], 'v', ARGV[1], 'b', ARGV[3])
          point()
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """)

    /// Follows an index key to the member's blob in one call: a till's card or phone lookup is one round trip.
    ///
    /// KEYS[1] the index key; ARGV[1] and ARGV[2] the member hash key before and after the member id (same
    /// namespace, layout and epoch as the index). Answers the blob, or nil when the index or the blob is missing
    /// or the index does not hold a member id. The caller still checks that the blob carries the identifier's
    /// digest (an index may point at a member who no longer has that card).
    ///
    /// Reads a key it was not given (the member hash, known only after the GET): fine on one Redis server, not
    /// on Redis Cluster.
    static let indexedLookup = RedisScript(
        """
        local id = redis.call('GET', KEYS[1])
        if not id or not string.match(id, '^[1-9][0-9]*$') then return false end
        return redis.call('HGET', ARGV[1] .. id .. ARGV[2], 'b')
        """)

    /// Moves the shared epoch past both its stored value and the caller's, and answers the new epoch.
    ///
    /// KEYS[1] the epoch key; ARGV[1] the epoch the caller last used. INCR alone would go backwards when Redis
    /// lost the key (restart without persistence) or came back from an older snapshot: the counter would restart
    /// at 1 and an epoch that still has old values in Redis could be used again.
    static let bumpEpoch = RedisScript(
        """
        local stored = tonumber(redis.call('GET', KEYS[1]))
        if not stored or stored < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
        return redis.call('INCR', KEYS[1])
        """)
}
