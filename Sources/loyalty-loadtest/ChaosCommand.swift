import ArgumentParser
import Foundation
import Logging
import POSProtocol
import PostgresNIO

/// The tills and the checks of a chaos run. loadtests/chaos.sh starts the services and the server, injects the
/// faults (and writes them to the fault log) while this runs, and stops everything afterwards.
struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive checkouts from many tills that resend unanswered requests with the same ids, then prove exactly-once against the ledger.",
        discussion: "Run it through loadtests/chaos.sh, which injects the faults. Exit 1 when any check finds a violation.")
    @OptionGroup var database: DatabaseOption
    @Option var host = "127.0.0.1"
    @Option(help: "The server's POS port.") var port = 7070
    @Option(name: .customLong("secret-file")) var secretFile = ".local/loadtest-secret"
    @Option(help: "Tills (terminals lt-0 … lt-(N-1), registered by `seed --terminals N`).") var tills = 24
    @Option(name: .customLong("duration-s"), help: "Seconds during which tills start new checkouts.") var durationS = 150
    @Option(name: .customLong("drain-s"), help: "Seconds after that for unanswered requests to get their answers.") var drainS = 120
    @Option(name: .customLong("fault-log"), help: "The fault injector's log: one line per fault, `end` when done.") var faultLog: String?
    @Option(name: .customLong("min-faults-per-kind"), help: "Fail the run when fewer faults of a kind were injected.") var minFaultsPerKind = 0
    @Option(name: .customLong("loyalty-bin"), help: "The `loyalty` executable, for `loyalty audit` (default: next to this one).") var loyaltyBin: String?

    func run() async throws {
        guard (1...1_024).contains(tills), (5...3_600).contains(durationS), (10...3_600).contains(drainS) else {
            throw ValidationError("--tills 1-1024, --duration-s 5-3600, --drain-s 10-3600")
        }
        guard let secretText = try? String(contentsOfFile: secretFile, encoding: .utf8),
              let secret = Data(base64Encoded: secretText.trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw LoadTestError("cannot read the terminal secret from \(secretFile); run `loyalty-loadtest seed` first") }
        let logger = Logger(label: "chaos")
        let (members, initialTotals) = try await database.withClient { client in
            let rows = try await client.query("SELECT member_id FROM members WHERE card_number LIKE 'LT%' ORDER BY member_id", logger: logger)
            var ids: [Int64] = []
            for try await id in rows.decode(Int64.self) { ids.append(id) }
            return (ids, try await ChaosVerifier.totals(client: client, logger: logger, members: ids))
        }
        guard members.count >= tills else { throw LoadTestError("\(members.count) load-test members for \(tills) tills: seed more") }

        let started = ContinuousClock.now
        let runUntil = started + .seconds(durationS)
        let settings = ChaosLinkSettings(host: host, port: port, secret: Array(secret), hardStop: runUntil + .seconds(drainS))
        let counters = ChaosCounters()
        let runID = String(UInt64(Date().timeIntervalSince1970 * 1_000), radix: 36)
        let tills = self.tills, faultLog = self.faultLog
        log("\(tills) tills, \(members.count) members (disjoint sets per till), checkouts for \(durationS) s, then up to \(drainS) s for answers")
        let reporter = Task {
            await Self.reportProgress(counters: counters, started: started, runUntil: runUntil, hardStop: settings.hardStop, faultLog: faultLog)
        }
        let journal = await withTaskGroup(of: [ChaosOperation].self) { group in
            for index in 0..<tills {
                let own = stride(from: index, to: members.count, by: tills).map { members[$0] }
                group.addTask {
                    await ChaosTill(index: index, members: own, runID: runID, settings: settings, counters: counters).run(until: runUntil)
                }
            }
            var all: [ChaosOperation] = []
            for await operations in group { all += operations }
            return all
        }
        reporter.cancel()
        let settled = ContinuousClock.now
        log("tills done after \(Int((settled - started).seconds)) s; waiting for the fault injector to finish")
        let faults = await ChaosFaults.waitForEnd(path: faultLog, boundS: 300)

        let terminals = (0..<tills).map { "lt-\($0)" }
        let checks = try await database.withClient { client in
            try await ChaosVerifier(client: client, logger: logger, journal: journal, terminals: terminals, members: members,
                                    initialTotals: initialTotals).run()
        }
        let lookups = await ChaosLookups(settings: settings, members: members).check(
            against: try await database.withClient { client in try await ChaosVerifier.totals(client: client, logger: logger, members: members) })
        let audit = await ChaosAudit.run(loyaltyBin: loyaltyBin, databaseURL: database.databaseURL)

        let summary = ChaosSummary(
            durationS: durationS, settleS: Int((settled - runUntil).seconds.rounded()), tills: tills, members: members.count,
            journal: journal, counters: counters, faults: faults, checks: checks + [lookups], audit: audit)
        print(summary.text())
        var failures: [String] = []
        if summary.violations > 0 { failures.append("\(summary.violations) violations") }
        if !audit.clean { failures.append("loyalty audit failed") }
        for kind in ChaosFaults.kinds where faults.counts[kind, default: 0] < minFaultsPerKind {
            failures.append("only \(faults.counts[kind, default: 0]) \(kind) faults (at least \(minFaultsPerKind) required)")
        }
        guard failures.isEmpty else {
            log("FAILED: \(failures.joined(separator: "; "))")
            throw ExitCode(1)
        }
        log("passed")
    }

    static func reportProgress(
        counters: ChaosCounters, started: ContinuousClock.Instant, runUntil: ContinuousClock.Instant, hardStop: ContinuousClock.Instant,
        faultLog: String?
    ) async {
        var lastAcknowledged = 0
        let everyS = 5
        while ContinuousClock.now < hardStop, !Task.isCancelled {
            try? await Task.sleep(for: .seconds(everyS))
            if Task.isCancelled { return }
            let acknowledged = counters.acknowledged.current
            let phase = ContinuousClock.now < runUntil ? "running" : "draining"
            let faults = ChaosFaults.read(path: faultLog)
            log("\(phase) \(Int((ContinuousClock.now - started).seconds)) s: \(counters.operationsSent.current) sent, \(acknowledged) acknowledged (\((acknowledged - lastAcknowledged) / everyS)/s), \(counters.refused.current) refused, \(counters.resends.current) resends, \(counters.reconnects.current) reconnects, \(counters.tillsRetrying.current) tills retrying; faults \(faults.total)")
            lastAcknowledged = acknowledged
        }
    }
}

func log(_ line: String) {
    FileHandle.standardError.write(Data("[chaos] \(line)\n".utf8))
}

/// The fault injector's log: `<time> <kind> <detail…>` per fault, `end` once every service is back.
struct ChaosFaults {
    static let kinds = ["server-sigkill", "redis-restart", "postgres-restart"]
    var counts: [String: Int] = [:]
    var lines: [String] = []
    var ended = false

    var total: Int { counts.values.reduce(0, +) }

    static func read(path: String?) -> ChaosFaults {
        var faults = ChaosFaults()
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return faults }
        for line in text.split(separator: "\n").map(String.init) {
            let fields = line.split(separator: " ").map(String.init)
            if fields.first == "end" { faults.ended = true; continue }
            guard fields.count >= 2 else { continue }
            faults.counts[fields[1], default: 0] += 1
            faults.lines.append(line)
        }
        return faults
    }

    /// Waits until the injector wrote `end` (so no fault lands during the checks), at most `boundS` seconds.
    static func waitForEnd(path: String?, boundS: Int) async -> ChaosFaults {
        let until = ContinuousClock.now + .seconds(boundS)
        var faults = read(path: path)
        while path != nil, !faults.ended, ContinuousClock.now < until {
            try? await Task.sleep(for: .seconds(1))
            faults = read(path: path)
        }
        if path != nil, !faults.ended { log("the fault log has no `end` line after \(boundS) s; checking anyway") }
        return faults
    }
}
