import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import Logging
import LoyaltyStore
import PostgresNIO

@main
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loyalty-loadtest",
        abstract: "Load generator for the POS protocol: seed members and terminals, run scenarios, report ratios to baselines.",
        discussion: "loadtests/run.sh runs the whole measurement (services, server, baselines, scenarios) in one go.",
        subcommands: [Seed.self, Run.self, Blast.self, Report.self, Chaos.self])
}

struct DatabaseOption: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL of the load-test database (env LOYALTY_DATABASE_URL).")
    var databaseURL: String?

    func withClient<T: Sendable>(connections: Int = 4, _ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
        guard let text = databaseURL ?? ProcessInfo.processInfo.environment["LOYALTY_DATABASE_URL"] else {
            throw LoadTestError("no database: pass --database-url or set LOYALTY_DATABASE_URL")
        }
        let url = try DatabaseURL(text)
        let client = PostgresClient(
            configuration: url.clientConfiguration(maximumConnections: connections, connectTimeoutMs: 5_000),
            backgroundLogger: Logger(label: "postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                return try await body(client)
            } catch let error as LoadTestError {
                throw error
            } catch {
                throw LoadTestError("PostgreSQL: \(PostgresErrorText.describe(error))")
            }
        }
    }
}

struct Seed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seed N members with cards, phones, tiers, balances and a purchase each, and the load-test terminals (resumable).")
    @OptionGroup var database: DatabaseOption
    @Option(help: "Members to have (existing load-test members are kept).") var members = 100_000
    @Option(help: "Terminals lt-0 … lt-(N-1) to register.") var terminals = 16
    @Option(name: .customLong("secret-file"), help: "Where the terminals' shared secret is kept (base64).") var secretFile = ".local/loadtest-secret"

    func run() async throws {
        guard (1...10_000_000).contains(members), (1...1_024).contains(terminals) else {
            throw ValidationError("--members 1-10000000, --terminals 1-1024")
        }
        let members = self.members, terminals = self.terminals, secretFile = self.secretFile
        let started = ContinuousClock.now
        try await database.withClient { client in
            try await Seeder(client: client, logger: Logger(label: "seed")).seed(members: members, terminals: terminals, secretFile: secretFile)
        }
        FileHandle.standardError.write(Data("[seed] done in \(Int((ContinuousClock.now - started).seconds)) s\n".utf8))
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one scenario against a running server and print (and save) its figures.")
    @OptionGroup var database: DatabaseOption
    @Option(help: "Scenario file (JSON), e.g. loadtests/scenarios/lookup-only.json.") var scenario: String
    @Option var host = "127.0.0.1"
    @Option(help: "The server's POS port.") var port = 7070
    @Option(name: .customLong("secret-file")) var secretFile = ".local/loadtest-secret"
    @Option(help: "Connections (one terminal each); default from the scenario.") var connections: Int?
    @Option(help: "Outstanding requests per connection (closed loop); default from the scenario.") var pipeline: Int?
    @Option(name: .customLong("duration-s")) var durationS: Int?
    @Option(name: .customLong("warmup-s")) var warmupS: Int?
    @Option(name: .customLong("rate"), help: "Open loop: requests per second over all connections (overrides the scenario's mode).") var rate: Int?
    @Option(name: .customLong("server-pid"), help: "Server process, to sample its RSS.") var serverPID: Int32?
    @Option(help: "Name in the report; default the scenario's.") var label: String?
    @Option(help: "Write the figures as JSON here.") var json: String?
    @Option(name: .customLong("target-ratio"), help: "Target ratio for this run (overrides the scenario's).") var targetRatio: Double?
    @Flag(name: .customLong("no-prewarm"), help: "Skip the scenario's pre-warming lookups.") var noPrewarm = false
    @Option(name: .customLong("admin-url"), help: "Admin API base URL, for admin-API scenarios.") var adminURL = "http://127.0.0.1:8080"
    @Option(name: .customLong("admin-token-file"), help: "File holding an admin API bearer token (e.g. role readonly), for admin-API scenarios.")
    var adminTokenFile = ".local/loadtest-admin-token"

    func run() async throws {
        var scenario = try Scenario.load(self.scenario)
        if let targetRatio { scenario.targetRatio = targetRatio }
        guard let secretText = try? String(contentsOfFile: secretFile, encoding: .utf8),
              let secret = Data(base64Encoded: secretText.trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw LoadTestError("cannot read the terminal secret from \(secretFile); run `loyalty-loadtest seed` first") }
        let pool = try await database.withClient { client in
            let rows = try await client.query(
                "SELECT member_id, card_number FROM members WHERE card_number LIKE 'LT%' ORDER BY member_id")
            var ids: [Int64] = []
            var cards: [String] = []
            for try await (id, card) in rows.decode((Int64, String).self) {
                ids.append(id)
                cards.append(card)
            }
            return MemberPool(ids: ids, cards: cards)
        }
        guard !pool.ids.isEmpty else { throw LoadTestError("no load-test members: run `loyalty-loadtest seed` first") }
        let openRate = rate ?? (scenario.mode == "open" ? scenario.ratePerS : nil)
        var settings = LoadRunner.Settings(
            host: host, port: port, secret: Array(secret), connections: connections ?? scenario.connections ?? 16,
            pipeline: pipeline ?? scenario.pipeline ?? 4, duration: .seconds(durationS ?? scenario.durationS ?? 15),
            warmup: .seconds(warmupS ?? scenario.warmupS ?? 2), openLoopRatePerS: openRate,
            hotMembers: scenario.members?.distribution == "hot" ? (scenario.members?.hotMembers ?? 10) : nil,
            serverPID: serverPID, prewarm: (scenario.prewarm ?? false) && !noPrewarm)
        guard (1...1_024).contains(settings.connections), (1...256).contains(settings.pipeline) else {
            throw ValidationError("--connections 1-1024, --pipeline 1-256")
        }
        var http: HTTPClient?
        if scenario.isAdmin {
            guard let token = try? String(contentsOfFile: adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
                  !token.isEmpty
            else { throw LoadTestError("cannot read an admin token from \(adminTokenFile); create one with `loyalty token create --role readonly`") }
            // One connection per concurrent request: HTTP/1.1 does not pipeline here.
            http = AdminReads.makeClient(connections: settings.connections * settings.pipeline)
            settings.admin = AdminReads(http: http!, baseURL: adminURL, token: token)
        }

        FileHandle.standardError.write(Data(
            "[\(scenario.name)] \(openRate.map { "open loop at \($0)/s" } ?? "closed loop") over \(settings.connections) connections × \(settings.pipeline), \(pool.ids.count) members\(settings.hotMembers.map { ", all on \($0) hot members" } ?? ""), \(settings.duration) after \(settings.warmup) warm-up\n".utf8))
        let runner = LoadRunner(settings: settings, scenario: scenario, members: pool)
        let outcome: (WorkerTally, measured: Duration, peakRSSMiB: Double?, cpu: LoadRunner.CPUSpent?)
        do { outcome = try await runner.run() } catch {
            try? await http?.shutdown()
            throw error
        }
        try? await http?.shutdown()
        let (tally, measured, peakRSS, cpu) = outcome
        var result = RunResult(
            label: label ?? scenario.name, scenario: scenario, settings: settings, tally: tally, measured: measured, peakRSSMiB: peakRSS)
        result.clientCPUSeconds = cpu?.client
        result.serverCPUSeconds = cpu?.server
        print(result.table())
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
        }
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print our figures next to the baselines of the same run, as a Markdown table.")
    @Option(name: .customLong("baseline"), help: "NAME=VALUE, e.g. pgbench-tps=5100 or redis-get-rps=90000. Repeat.") var baselines: [String] = []
    @Argument(help: "Result files written by `run --json`.") var results: [String]

    func run() async throws {
        var values: [String: Double] = [:]
        for text in baselines {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let value = Double(parts[1]) else { throw ValidationError("--baseline \(text): expected NAME=NUMBER") }
            values[parts[0]] = value
        }
        var loaded: [RunResult] = []
        for path in results where path.hasSuffix(".json") {
            guard let data = FileManager.default.contents(atPath: path) else { throw LoadTestError("cannot read \(path)") }
            loaded.append(try JSONDecoder().decode(RunResult.self, from: data))
        }
        for result in loaded { values["scenario:\(result.label)"] = result.primaryThroughputPerS }
        print(RunResult.ratioTable(loaded, baselines: values))
    }
}

struct Blast: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pay a bonus to every active member (a segment of all of them) and print members awarded per second.",
        discussion: "Uses the campaign machinery the server runs (segment, bonus campaign, trigger, batches). Writes to the ledger: run it on a load-test database.")
    @OptionGroup var database: DatabaseOption
    @Option(help: "Points per member.") var bonus: Int64 = 100
    @Option(name: .customLong("batch"), help: "Members per batch call.") var batchSize = 500
    @Option(help: "Write the figures as JSON here.") var json: String?

    func run() async throws {
        let bonus = self.bonus, batchSize = self.batchSize, json = self.json
        try await database.withClient { client in
            let store = CampaignStore(client: client, logger: Logger(label: "blast"))
            let stamp = Int(Date().timeIntervalSince1970)
            let segmentStarted = ContinuousClock.now
            let segment = try await store.createSegment(name: "load test blast \(stamp)", definition: SegmentDefinition())
            let segmentSeconds = (ContinuousClock.now - segmentStarted).seconds
            FileHandle.standardError.write(Data("[blast] segment of \(segment.members) members filled in \(String(format: "%.1f", segmentSeconds)) s\n".utf8))
            let campaign = try await store.createBonus(
                name: "load test blast \(stamp)", segmentID: segment.id, bonusPoints: bonus, expiresDays: 90, budgetPoints: nil,
                createdBy: "loadtest")
            _ = try await store.trigger(campaign)
            let started = ContinuousClock.now
            var lastPrint = started
            var progress = try await store.awardBatch(campaign, batchSize: batchSize, actor: "loadtest")
            while progress.done != true {
                progress = try await store.awardBatch(campaign, batchSize: batchSize, actor: "loadtest")
                if ContinuousClock.now - lastPrint > .seconds(2) {
                    lastPrint = ContinuousClock.now
                    FileHandle.standardError.write(Data(String(
                        format: "[blast] %lld/%lld members, %.0f/s, ETA %.0f s\n", progress.awardedMembers, progress.targetMembers ?? 0,
                        progress.ratePerS ?? 0, progress.etaS ?? 0).utf8))
                }
            }
            let seconds = (ContinuousClock.now - started).seconds
            let rate = Double(progress.awardedMembers) / max(seconds, 0.001)
            print(String(format: "blast: %lld members awarded %lld points each in %.1f s: %.0f members/s (batches of %d)",
                         progress.awardedMembers, bonus, seconds, rate, batchSize))
            if let json {
                let object: [String: Any] = ["members": progress.awardedMembers, "seconds": seconds, "members_per_s": rate,
                                             "batch": batchSize, "segment_fill_s": segmentSeconds]
                try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: json))
            }
        }
    }
}
