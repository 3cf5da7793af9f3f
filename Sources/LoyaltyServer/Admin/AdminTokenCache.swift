import LoyaltyStore
import Synchronization

/// Accepted admin tokens kept for `timeToLive`, so a burst of requests with one token costs one token lookup
/// instead of one per request. Only tokens that passed (known, unrevoked, unexpired) are kept: an unknown or refused
/// token is looked up every time, so random tokens cannot fill the cache. Bounded: when `maximumEntries` is reached
/// the whole cache is dropped (it refills at one lookup per token).
///
/// Guarantee: a token revoked, or expiring, is refused by every server at most `timeToLive` later.
final class AdminTokenCache: Sendable {
    static let timeToLive: Duration = .seconds(1)
    static let maximumEntries = 1_024

    private struct Entry {
        let record: AdminTokenRecord
        let fetchedAt: ContinuousClock.Instant
    }

    private let entries = Mutex<[[UInt8]: Entry]>([:])

    /// The record for `hash` if it was accepted less than `timeToLive` ago.
    func record(hash: [UInt8], now: ContinuousClock.Instant = .now) -> AdminTokenRecord? {
        entries.withLock { entries in
            guard let entry = entries[hash] else { return nil }
            guard now - entry.fetchedAt < Self.timeToLive else {
                entries[hash] = nil
                return nil
            }
            return entry.record
        }
    }

    func keep(_ record: AdminTokenRecord, hash: [UInt8], now: ContinuousClock.Instant = .now) {
        precondition(!record.isRevoked && !record.isExpired, "only accepted tokens are kept")
        entries.withLock { entries in
            if entries.count >= Self.maximumEntries { entries.removeAll(keepingCapacity: true) }
            entries[hash] = Entry(record: record, fetchedAt: now)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}
