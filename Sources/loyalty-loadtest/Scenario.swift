import Foundation

/// A load-test scenario, read from a JSON file in loadtests/scenarios/. Flags given on the command line win over
/// the file's defaults.
struct Scenario: Codable, Sendable {
    struct Members: Codable, Sendable {
        /// "uniform" over all seeded members, or "hot": every request goes to one of `hotMembers`.
        var distribution: String
        var hotMembers: Int?
    }

    var name: String
    var description: String?
    /// Operation → weight. POS operations: lookup, quote, commit, hold_commit, refund, cancel; admin-API reads
    /// (with `protocol: "admin"`): admin_member, admin_balances, admin_ledger, admin_search.
    var mix: [String: Int]
    /// "pos" (default) or "admin" (the admin HTTP API; `connections` × `pipeline` concurrent requests).
    var `protocol`: String?
    var members: Members?
    var connections: Int?
    var pipeline: Int?
    /// "closed" (each worker sends its next request when the last one is answered: maximum throughput) or "open"
    /// (a fixed arrival rate, latency measured from the intended send time so queueing is not hidden).
    var mode: String?
    var ratePerS: Int?
    var durationS: Int?
    var warmupS: Int?
    /// What the throughput is compared with: "redis-get-rps", "pgbench-tps" or "scenario:<label>".
    var baseline: String?
    var targetRatio: Double?
    var targetP99Ms: Double?
    /// The operation whose throughput and latency the comparison is about; nil = all requests.
    var primaryOperation: String?
    /// Look every member up once before the warm-up, so a lookup scenario measures a warm cache, as a store
    /// sees it after its first hour, not a cold start.
    var prewarm: Bool?

    static let posOperations: Set<String> = ["lookup", "quote", "commit", "hold_commit", "refund", "cancel"]

    var isAdmin: Bool { self.protocol == "admin" }
    var operations: Set<String> { isAdmin ? Set(AdminReads.paths.keys) : Self.posOperations }

    static func load(_ path: String) throws -> Scenario {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadTestError("cannot read scenario \(path)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let scenario: Scenario
        do { scenario = try decoder.decode(Scenario.self, from: data) } catch {
            throw LoadTestError("\(path) is not a valid scenario: \(error)")
        }
        guard [nil, "pos", "admin"].contains(scenario.protocol) else { throw LoadTestError("\(path): protocol must be pos or admin") }
        for (operation, weight) in scenario.mix {
            guard scenario.operations.contains(operation) else {
                throw LoadTestError("\(path): unknown operation '\(operation)'; use \(scenario.operations.sorted().joined(separator: ", "))")
            }
            guard weight >= 0 else { throw LoadTestError("\(path): weight of \(operation) must not be negative") }
        }
        guard scenario.mix.values.reduce(0, +) > 0 else { throw LoadTestError("\(path): the mix has no positive weight") }
        if let members = scenario.members, !["uniform", "hot"].contains(members.distribution) {
            throw LoadTestError("\(path): members.distribution must be uniform or hot")
        }
        return scenario
    }
}

struct LoadTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
