import Foundation
import Histogram

/// The figures of one scenario run, as printed and as saved for the report.
struct RunResult: Codable {
    struct Operation: Codable {
        var count: Int
        var throughputPerS: Double
        var p50Ms: Double
        var p90Ms: Double
        var p99Ms: Double
        var p999Ms: Double
        var maxMs: Double
    }

    var label: String
    var scenario: String
    var mode: String
    var connections: Int
    var pipeline: Int
    var durationS: Double
    var requests: Int
    var requestsPerS: Double
    var operations: [String: Operation]
    var errors: [String: Int]
    var serverRSSPeakMiB: Double?
    var baseline: String?
    var targetRatio: Double?
    var targetP99Ms: Double?
    var primaryOperation: String?
    /// CPU seconds over the measured window: the load generator's own, and the server's (with --server-pid).
    var clientCPUSeconds: Double?
    var serverCPUSeconds: Double?

    /// CPU seconds per 1,000 requests answered in the measured window.
    func cpuPerThousand(_ seconds: Double?) -> Double? {
        guard let seconds, requests > 0 else { return nil }
        return seconds * 1_000 / Double(requests)
    }

    init(label: String, scenario: Scenario, settings: LoadRunner.Settings, tally: WorkerTally, measured: Duration, peakRSSMiB: Double?) {
        let seconds = max(measured.seconds, 0.001)
        self.label = label
        self.scenario = scenario.name
        self.mode = settings.openLoopRatePerS.map { "open \($0)/s" } ?? "closed"
        self.connections = settings.connections
        self.pipeline = settings.pipeline
        self.durationS = seconds
        self.requests = tally.requests
        self.requestsPerS = Double(tally.requests) / seconds
        self.operations = tally.histograms.mapValues { histogram in
            func ms(_ value: UInt64) -> Double { Double(value) / 1_000 }
            return Operation(
                count: Int(histogram.totalCount), throughputPerS: Double(histogram.totalCount) / seconds,
                p50Ms: ms(histogram.valueAtPercentile(50)), p90Ms: ms(histogram.valueAtPercentile(90)),
                p99Ms: ms(histogram.valueAtPercentile(99)), p999Ms: ms(histogram.valueAtPercentile(99.9)), maxMs: ms(histogram.max))
        }
        self.errors = tally.errors
        self.serverRSSPeakMiB = peakRSSMiB
        self.baseline = scenario.baseline
        self.targetRatio = scenario.targetRatio
        self.targetP99Ms = scenario.targetP99Ms
        self.primaryOperation = scenario.primaryOperation
    }

    /// What the comparison is about: the primary operation's rate, or every request's.
    var primaryThroughputPerS: Double {
        primaryOperation.flatMap { operations[$0]?.throughputPerS } ?? requestsPerS
    }

    var primaryP99Ms: Double? {
        primaryOperation.flatMap { operations[$0]?.p99Ms } ?? operations.values.map(\.p99Ms).max()
    }

    func table() -> String {
        var lines = [
            "\(label): \(mode), \(connections) connections × \(pipeline), \(String(format: "%.1f", durationS)) s measured",
            "  \(requests) requests, \(String(format: "%.0f", requestsPerS)) requests/s\(serverRSSPeakMiB.map { String(format: ", server RSS peak %.0f MiB", $0) } ?? "")",
            "  CPU s per 1,000 requests: server \(cpuPerThousand(serverCPUSeconds).map { String(format: "%.3f", $0) } ?? "—"), load generator \(cpuPerThousand(clientCPUSeconds).map { String(format: "%.3f", $0) } ?? "—")",
            "  operation      count      ops/s    p50 ms   p90 ms   p99 ms p99.9 ms   max ms",
        ]
        for (name, operation) in operations.sorted(by: { $0.key < $1.key }) {
            let padded = name.padding(toLength: 12, withPad: " ", startingAt: 0)
            lines.append("  " + padded + String(
                format: " %7d %10.0f %9.2f %8.2f %8.2f %8.2f %8.2f", operation.count, operation.throughputPerS,
                operation.p50Ms, operation.p90Ms, operation.p99Ms, operation.p999Ms, operation.maxMs))
        }
        if errors.isEmpty {
            lines.append("  errors: none")
        } else {
            lines.append("  errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    static func ratioTable(_ results: [RunResult], baselines: [String: Double]) -> String {
        var lines = [
            "| scenario | measured | ours /s | baseline | baseline /s | ratio | target | p50 ms | p99 ms | p99 target | errors | server RSS MiB | server CPU s / 1k | load gen. CPU s / 1k |",
            "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for result in results where result.sweepShare == nil {
            let ours = result.primaryThroughputPerS
            let baseline = result.baseline.flatMap { baselines[$0] }
            let ratio = baseline.map { ours / max($0, 0.001) }
            let primary = result.primaryOperation.flatMap { result.operations[$0] }
            let p50 = primary?.p50Ms ?? result.operations.values.map(\.p50Ms).max()
            let verdict: String =
                if let ratio, let target = result.targetRatio { ratio >= target ? "met" : "missed" } else { "" }
            let latencyVerdict: String =
                if let p99 = result.primaryP99Ms, let target = result.targetP99Ms { p99 <= target ? "met" : "missed" } else { "" }
            let cells: [String] = [
                result.label,
                result.primaryOperation ?? "all requests",
                String(format: "%.0f", ours),
                result.baseline ?? "—",
                baseline.map { String(format: "%.0f", $0) } ?? "—",
                ratio.map { String(format: "%.2f×", $0) } ?? "—",
                result.targetRatio.map { String(format: "≥ %.2f× %@", $0, verdict as NSString) } ?? "—",
                p50.map { String(format: "%.2f", $0) } ?? "—",
                result.primaryP99Ms.map { String(format: "%.2f", $0) } ?? "—",
                result.targetP99Ms.map { String(format: "< %.0f %@", $0, latencyVerdict as NSString) } ?? "—",
                "\(result.errors.values.reduce(0, +))",
                result.serverRSSPeakMiB.map { String(format: "%.0f", $0) } ?? "—",
                result.cpuPerThousand(result.serverCPUSeconds).map { String(format: "%.3f", $0) } ?? "—",
                result.cpuPerThousand(result.clientCPUSeconds).map { String(format: "%.3f", $0) } ?? "—",
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        let sweep = results.filter { $0.sweepShare != nil }
        if !sweep.isEmpty {
            lines += [
                "",
                "Open-loop sweep: a fixed arrival rate at a share of the scenario's closed-loop maximum; latency is measured from",
                "when each request was due, so queueing shows. This is the latency a till feels at that load.",
                "",
                "| scenario | share of max | offered /s | answered /s | p50 ms | p99 ms | p99.9 ms | errors |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for result in sweep {
                // A mix has no primary operation: its slowest one (by p99) is what a till waits for.
                let primary = result.primaryOperation.flatMap { result.operations[$0] } ?? result.operations.values.max { $0.p99Ms < $1.p99Ms }
                let cells: [String] = [
                    result.scenario, "\(result.sweepShare ?? 0) %", result.mode.replacingOccurrences(of: "open ", with: ""),
                    String(format: "%.0f", result.primaryThroughputPerS),
                    primary.map { String(format: "%.2f", $0.p50Ms) } ?? "—", primary.map { String(format: "%.2f", $0.p99Ms) } ?? "—",
                    primary.map { String(format: "%.2f", $0.p999Ms) } ?? "—", "\(result.errors.values.reduce(0, +))",
                ]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// For a run of the open-loop sweep, labelled `<scenario>@<share>%`: the share of the closed-loop maximum.
    var sweepShare: Int? {
        guard let at = label.lastIndex(of: "@"), label.hasSuffix("%") else { return nil }
        return Int(label[label.index(after: at)...].dropLast())
    }
}
