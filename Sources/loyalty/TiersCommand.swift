import ArgumentParser
import Foundation
import Logging
import LoyaltyCache
import LoyaltyCore
import LoyaltyRules
import LoyaltyServer
import LoyaltyStore
import PostgresNIO

struct TiersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiers", abstract: "Work with the tier ladder and its review.", subcommands: [Review.self])

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "review",
            abstract: "Run the tier review now, as the server's job does, or show what it would do (--dry-run).",
            discussion: """
                The review policy (review_every_days, downgrade_grace_days) comes from the rules folder. A real run \
                changes tiers of the members due now and, with Redis configured (--redis-url or LOYALTY_REDIS_URL), \
                marks their cached snapshots old so tills see the new tier. --dry-run changes nothing and prints \
                one line per member due: member id, current tier, new tier, qualifying spend, reason.
                """)

        @OptionGroup var database: DatabaseOptions

        @Option(name: .customLong("rules-dir"), help: "Rules folder (env LOYALTY_RULES_DIR, default rules).")
        var rulesDirectory: String?

        @Option(name: .customLong("redis-url"), help: "Redis URL (env LOYALTY_REDIS_URL); a real run marks changed members' cached snapshots old.")
        var redisURL: String?

        @Flag(name: .customLong("dry-run"), help: "Show what the review would do; change nothing.")
        var dryRun = false

        @Option(name: .customLong("as-of"), help: "With --dry-run: review as of this RFC 3339 instant instead of now.")
        var asOf: String?

        func validate() throws {
            if asOf != nil && !dryRun {
                throw ValidationError("--as-of only previews: add --dry-run (a real review always runs as of now)")
            }
            if let asOf, RFC3339.parse(asOf) == nil {
                throw ValidationError("--as-of '\(asOf)' must be an RFC 3339 date-time such as 2026-06-01T00:00:00Z")
            }
        }

        func run() async throws {
            try await failingCleanly {
                let logger = makeLogger("tiers")
                let url = try DatabaseURL(try database.resolvedDatabaseURL())
                let path = rulesDirectory ?? environment("LOYALTY_RULES_DIR") ?? "rules"
                let policy: TierReview
                do {
                    policy = try RulesLoader.load(directory: URL(fileURLWithPath: path)).ruleSet.tierReview
                } catch {
                    throw CommandFailure("rules in \(path) are not valid (\(error)); run `loyalty rules check \(path)`")
                }
                let previewAt = dryRun ? asOf.flatMap(RFC3339.parse) ?? Date() : nil
                let redis = try (redisURL ?? environment("LOYALTY_REDIS_URL")).map {
                    RedisClient(configuration: RedisClient.Configuration(url: try RedisURL($0)), logger: logger)
                }
                defer { if let redis { Task { await redis.shutdown() } } }
                try await withPostgres(url, logger: logger) { client in
                    let tiers = TierStore(client: client, logger: logger)
                    if let previewAt {
                        try await Self.preview(tiers, policy: policy, at: previewAt)
                        return
                    }
                    var cache: MemberCache?
                    if let redis { cache = try await Self.memberCache(redis: redis, postgres: client, logger: logger) }
                    let totals = try await TierReviewRun(tiers: tiers, cache: cache, logger: logger).run(policy: policy)
                    print("reviewed \(totals.reviewed) members: \(totals.upgraded) upgraded, \(totals.downgraded) downgraded"
                          + (cache == nil ? " (no Redis configured: cached snapshots expire on their own)" : ""))
                }
            }
        }

        /// Pages through the whole preview; prints one line per member and a summary.
        private static func preview(_ tiers: TierStore, policy: TierReview, at instant: Date) async throws {
            var cursor: Int64?
            var counts: [String: Int] = [:]
            repeat {
                let page = try await tiers.reviewPreview(
                    reviewDays: policy.reviewEveryDays, graceDays: policy.graceDays, asOf: instant, after: cursor,
                    limit: TierStore.maximumPreviewPageSize)
                for decision in page.decisions {
                    counts[decision.action, default: 0] += 1
                    print("member \(decision.memberID): \(decision.currentTier) -> \(decision.newTier) (\(decision.action)), "
                          + "qualifying spend \(decision.qualifyingSpendMinor): \(decision.reason)")
                }
                cursor = page.nextCursor
            } while cursor != nil
            let due = counts.values.reduce(0, +)
            print("dry run as of \(instant.formatted(.iso8601)): \(due) members due, \(counts["upgrade", default: 0]) "
                  + "would be upgraded, \(counts["downgrade", default: 0]) downgraded, \(counts["keep", default: 0]) kept; "
                  + "nothing was changed")
        }

        /// The member cache as the server configures it, on `redis`.
        private static func memberCache(redis: RedisClient, postgres: PostgresClient, logger: Logger) async throws -> MemberCache {
            var configuration = MemberCache.Configuration()
            configuration.identifierDigest = IdentifierDigest(
                key: try await CacheIdentifierKeyStore(client: postgres, logger: logger).load())
            return try MemberCache(redis: redis, configuration: configuration, logger: logger)
        }
    }
}
