import Foundation

/// `loyalty audit` on the run's database: every ledger invariant, rebuilt from postings.
struct ChaosAudit {
    var clean: Bool
    var exitCode: Int32
    /// Its last lines (the verdict), for the summary.
    var tail: [String]

    static func run(loyaltyBin: String?, databaseURL: String?) async -> ChaosAudit {
        let executable = loyaltyBin ?? Bundle.main.executableURL.map { $0.deletingLastPathComponent().appendingPathComponent("loyalty").path } ?? "loyalty"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["audit"] + (databaseURL.map { ["--database-url", $0] } ?? [])
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            let finished = AsyncStream<Void> { continuation in
                process.terminationHandler = { _ in continuation.finish() }
            }
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            for await _ in finished {}
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            return ChaosAudit(clean: process.terminationStatus == 0, exitCode: process.terminationStatus, tail: Array(lines.suffix(3)))
        } catch {
            return ChaosAudit(clean: false, exitCode: -1, tail: ["could not run \(executable) audit: \(error)"])
        }
    }
}

/// The figures a chaos run prints at the end (and docs/reliability.md records).
struct ChaosSummary {
    let durationS: Int
    let settleS: Int
    let tills: Int
    let members: Int
    let journal: [ChaosOperation]
    let counters: ChaosCounters
    let faults: ChaosFaults
    let checks: [ChaosCheck]
    let audit: ChaosAudit

    var violations: Int { checks.reduce(0) { $0 + $1.violations } }

    func text() -> String {
        var perKind: [ChaosOperation.Kind: Int] = [:]
        var acknowledged = 0, refused: [String: Int] = [:], unresolved = 0, replayed = 0, retried = 0
        for operation in journal {
            perKind[operation.kind, default: 0] += 1
            if operation.attempts > 1 { retried += 1 }
            switch operation.outcome {
            case .acknowledged(let ack): acknowledged += 1; if ack.replayed { replayed += 1 }
            case .refused(let code): refused[code, default: 0] += 1
            case .unresolved: unresolved += 1
            }
        }
        let kinds = ChaosOperation.Kind.allCases.map { "\($0.rawValue) \(perKind[$0, default: 0])" }.joined(separator: ", ")
        let refusals = refused.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let faultKinds = ChaosFaults.kinds.map { "\($0) \(faults.counts[$0, default: 0])" }.joined(separator: ", ")
        var lines = [
            "chaos run summary",
            "  run                  \(durationS) s of checkouts + \(settleS) s for the last answers; \(tills) tills, \(members) members",
            "  operations sent      \(journal.count) (\(kinds)); quotes \(counters.readsSent.current)",
            "  acknowledged         \(acknowledged) (of which replayed answers \(replayed))",
            "  refused (final)      \(refused.values.reduce(0, +))\(refusals.isEmpty ? "" : " (\(refusals))")",
            "  unresolved           \(unresolved)",
            "  retried              \(retried) operations, \(counters.resends.current) resends, \(counters.reconnects.current) reconnects, \(counters.timeouts.current) till timeouts",
            "  faults injected      \(faults.total) (\(faultKinds))",
            "  checks",
        ]
        for check in checks {
            lines.append("    \(check.violations == 0 ? "ok  " : "FAIL") \(check.name)\(check.violations == 0 ? "" : ": \(check.violations)")")
            for sample in check.samples { lines.append("           e.g. \(sample)") }
        }
        lines.append("  loyalty audit        \(audit.clean ? "clean" : "FAILED") (exit \(audit.exitCode)): \(audit.tail.last ?? "")")
        lines.append("  violations           \(violations)")
        return lines.joined(separator: "\n")
    }
}
