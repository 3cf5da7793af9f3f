import ArgumentParser
import Foundation
import Histogram
import Logging
import LoyaltyStore
import PostgresNIO

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure ledger throughput on this database against a hot-row baseline measured in the same run.",
        discussion: """
            Creates a scratch database on the configured server, migrates it, seeds members, then runs for a \
            bounded time: accrual + redemption transactions by N clients, and, as the baseline, N clients updating \
            one hot row (what a single system account updated per checkout would cost). Drops the scratch \
            database at the end.
            """)

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Concurrent clients (pool connections).") var clients = 16
    @Option(help: "Members to spread the load over.") var members = 10_000
    @Option(help: "Seconds per measurement.") var seconds = 10

    func run() async throws {
        try await failingCleanly {
            guard (1...256).contains(clients), (1...1_000_000).contains(members), (1...600).contains(seconds) else {
                throw CommandFailure("--clients 1-256, --members 1-1000000, --seconds 1-600")
            }
            let base = try DatabaseURL(try database.resolvedDatabaseURL())
            let logger = makeLogger("bench")
            let scratch = "loyalty_bench_\(ProcessInfo.processInfo.processIdentifier)"
            _ = try await withPostgres(base, logger: logger) { admin in
                try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(scratch)"))
            }
            let url = base.with(database: scratch)
            let files = try MigrationFile.load(from: URL(fileURLWithPath: database.migrationsDirectory))
            let clients = self.clients, members = self.members, seconds = self.seconds
            let dropScratch: @Sendable () async -> Void = {
                _ = try? await withPostgres(base, logger: logger) { admin in
                    try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(scratch) WITH (FORCE)"))
                }
            }
            let report: (BenchResult, BenchResult, Bool)
            do {
            report = try await withPostgres(url, logger: logger, maximumConnections: clients) { client in
                _ = try await MigrationRunner(client: client, logger: logger).migrate(files)
                print("seeding \(members) members …")
                try await client.query("INSERT INTO members (tier_id) SELECT 1 FROM generate_series(1, \(members))")
                try await client.query("CREATE TABLE bench_hot_row (id int PRIMARY KEY, n bigint NOT NULL)")
                try await client.query("INSERT INTO bench_hot_row VALUES (1, 0)")
                let ledger = LedgerStore(client: client, logger: logger)

                print("ledger: \(clients) clients, accrual then redemption on random members, \(seconds) s …")
                let ledgerResult = try await measure(clients: clients, seconds: seconds) { worker, sequence in
                    let member = Int64.random(in: 1...Int64(members))
                    let now = Date()
                    let key = try IdempotencyKey(scope: "bench", key: "\(worker)-\(sequence)")
                    _ = try await ledger.accrue(
                        AccrualRequest(memberID: member, unit: .points, amount: 100, availableAt: now,
                                       expiresAt: now.addingTimeInterval(86_400 * 365), occurredAt: now, actor: "bench"),
                        key: key)
                    _ = try await ledger.redeem(
                        RedemptionRequest(memberID: member, unit: .points, amount: 60, holdID: nil, occurredAt: now, actor: "bench"),
                        key: try IdempotencyKey(scope: "bench", key: "\(worker)-\(sequence)-r"))
                    return 2
                }
                print("baseline: \(clients) clients updating one hot row, \(seconds) s …")
                let hotResult = try await measure(clients: clients, seconds: seconds) { _, _ in
                    try await client.query("UPDATE bench_hot_row SET n = n + 1 WHERE id = 1")
                    return 1
                }
                let audit = try await LedgerAudit(client: client, logger: logger).run()
                return (ledgerResult, hotResult, audit.isClean)
            }
            } catch {
                await dropScratch()
                throw error
            }
            await dropScratch()
            let (ledgerResult, hotResult, clean) = report
            print("")
            print("| measurement | transactions/s | p50 ms | p99 ms | ratio to hot row |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for (name, result) in [("ledger accrual + redemption", ledgerResult), ("baseline: one hot row", hotResult)] {
                let ratio = Double(result.transactionsPerSecond) / Double(max(hotResult.transactionsPerSecond, 1))
                print("| \(name) | \(result.transactionsPerSecond) | \(result.p50Ms) | \(result.p99Ms) | \(String(format: "%.2f", ratio))× |")
            }
            print("")
            print("errors: \(ledgerResult.errors) ledger, \(hotResult.errors) baseline; audit after the run: \(clean ? "clean" : "VIOLATIONS")")
            if !clean { throw ExitCode(1) }
        }
    }
}

struct BenchResult: Sendable {
    var transactionsPerSecond: Int
    var p50Ms: String
    var p99Ms: String
    var errors: Int
}

/// Runs `operation` in `clients` loops for `seconds`; each call returns how many transactions it made.
func measure(
    clients: Int, seconds: Int, _ operation: @escaping @Sendable (_ worker: Int, _ sequence: Int) async throws -> Int
) async throws -> BenchResult {
    let deadline = ContinuousClock.now + .seconds(seconds)
    let started = ContinuousClock.now
    let perWorker = try await withThrowingTaskGroup(of: (Int, Int, Histogram<UInt64>).self) { group in
        for worker in 0..<clients {
            group.addTask {
                var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                var transactions = 0
                var errors = 0
                var sequence = 0
                while ContinuousClock.now < deadline {
                    sequence += 1
                    let begin = ContinuousClock.now
                    do {
                        transactions += try await operation(worker, sequence)
                    } catch {
                        errors += 1
                    }
                    let elapsed = ContinuousClock.now - begin
                    _ = histogram.record(UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
                }
                return (transactions, errors, histogram)
            }
        }
        return try await group.reduce(into: [(Int, Int, Histogram<UInt64>)]()) { $0.append($1) }
    }
    let elapsed = ContinuousClock.now - started
    let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    for (_, _, histogram) in perWorker { merged.add(histogram) }
    let transactions = perWorker.reduce(0) { $0 + $1.0 }
    let errors = perWorker.reduce(0) { $0 + $1.1 }
    func ms(_ microseconds: UInt64) -> String { String(format: "%.2f", Double(microseconds) / 1_000) }
    return BenchResult(
        transactionsPerSecond: Int(Double(transactions) / elapsedSeconds),
        p50Ms: ms(merged.valueAtPercentile(50)), p99Ms: ms(merged.valueAtPercentile(99)), errors: errors)
}
