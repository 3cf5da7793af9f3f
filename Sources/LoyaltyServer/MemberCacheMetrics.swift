import LoyaltyCache
import Metrics
import ServiceLifecycle

/// Exports the member cache's own counters (`MemberCache.Statistics`, kept as atomics inside the cache, which does
/// not depend on a metrics library) once a second, so the hit ratio of each level can be read from `/metrics`:
///
///     loyalty_member_cache_level_total{level="local"|"redis", result="hit"|"miss"}
///     loyalty_member_cache_local_events_total{event="fill"|"fill_refused"|"eviction"|"invalidation"|"drop"}
///     loyalty_member_cache_local_bytes, loyalty_member_cache_local_entries, loyalty_member_cache_local_live
///
/// Redis-level lookups are the local level's misses (every lookup when it is off): redis hits are the cache's
/// hits less the local ones.
struct MemberCacheMetrics: Service {
    let cache: MemberCache
    var interval: Duration = .seconds(1)

    func run() async throws {
        var exported = MemberCache.Statistics()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = cache.statistics
            Self.export(now, since: exported)
            exported = now
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    static func export(_ now: MemberCache.Statistics, since before: MemberCache.Statistics) {
        func add(_ label: String, _ dimensions: [(String, String)], _ value: Int, _ previous: Int) {
            let delta = value - previous
            if delta > 0 { Counter(label: label, dimensions: dimensions).increment(by: delta) }
        }
        let level = "loyalty_member_cache_level_total"
        add(level, [("level", "local"), ("result", "hit")], now.localHits, before.localHits)
        add(level, [("level", "local"), ("result", "miss")], now.localMisses, before.localMisses)
        add(level, [("level", "redis"), ("result", "hit")], now.hits - now.localHits, before.hits - before.localHits)
        add(level, [("level", "redis"), ("result", "miss")], now.misses, before.misses)
        let events = "loyalty_member_cache_local_events_total"
        add(events, [("event", "fill")], now.localFills, before.localFills)
        add(events, [("event", "fill_refused")], now.localFillsRefused, before.localFillsRefused)
        add(events, [("event", "eviction")], now.localEvictions, before.localEvictions)
        add(events, [("event", "invalidation")], now.localInvalidations, before.localInvalidations)
        add(events, [("event", "drop")], now.localDrops, before.localDrops)
        Gauge(label: "loyalty_member_cache_local_bytes").record(now.localBytes)
        Gauge(label: "loyalty_member_cache_local_entries").record(now.localEntries)
        Gauge(label: "loyalty_member_cache_local_live").record(now.localLive ? 1 : 0)
    }
}
