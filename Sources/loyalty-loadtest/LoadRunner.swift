import Foundation
import Histogram
import NIOCore
import POSProtocol
import SwiftProtobuf
import Synchronization

/// The seeded members a run draws from: ids and cards side by side.
struct MemberPool: Sendable {
    let ids: [Int64]
    let cards: [String]

    func pick(hot: Int?) -> Int {
        let bound = hot.map { min($0, ids.count) } ?? ids.count
        return Int.random(in: 0..<bound)
    }
}

/// What one worker measured. Latencies in microseconds.
struct WorkerTally: Sendable {
    var histograms: [String: Histogram<UInt64>] = [:]
    var requests = 0
    var errors: [String: Int] = [:]

    mutating func record(_ operation: String, microseconds: UInt64) {
        if histograms[operation] == nil {
            histograms[operation] = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        }
        _ = histograms[operation]!.record(max(1, microseconds))
    }

    mutating func merge(_ other: WorkerTally) {
        requests += other.requests
        for (key, value) in other.errors { errors[key, default: 0] += value }
        for (key, histogram) in other.histograms {
            if histograms[key] == nil { histograms[key] = histogram } else { histograms[key]!.add(histogram) }
        }
    }
}

/// A request that did not answer OK: counted per status and code, never retried here (the load test measures
/// the server, not a till's retry policy).
struct RequestFailed: Error {
    let key: String
}

/// Runs one scenario: `connections` authenticated terminals, `pipeline` outstanding requests each.
final class LoadRunner: Sendable {
    struct Settings: Sendable {
        var host: String
        var port: Int
        var secret: [UInt8]
        var connections: Int
        var pipeline: Int
        var duration: Duration
        var warmup: Duration
        var openLoopRatePerS: Int?
        var hotMembers: Int?
        var serverPID: Int32?
        var prewarm = false
        /// Set for an admin-API scenario: requests go over HTTP instead of POS connections.
        var admin: AdminReads?
    }

    let settings: Settings
    let scenario: Scenario
    let members: MemberPool
    let runID = String(UInt64(Date().timeIntervalSince1970 * 1_000), radix: 36)
    private let weights: [(String, Int)]
    private let completed = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let peakRSSKiB = Atomic<Int>(0)
    private let prewarmNext = Atomic<Int>(0)

    init(settings: Settings, scenario: Scenario, members: MemberPool) {
        self.settings = settings
        self.scenario = scenario
        self.members = members
        self.weights = scenario.mix.filter { $0.value > 0 }.sorted { $0.key < $1.key }
    }

    /// CPU seconds spent during the measured window (not the warm-up).
    struct CPUSpent: Sendable {
        var client: Double
        var server: Double?
    }

    func run() async throws -> (WorkerTally, measured: Duration, peakRSSMiB: Double?, cpu: CPUSpent?) {
        var clients: [POSClient?] = []
        for index in 0..<settings.connections {
            if settings.admin != nil {
                clients.append(nil)
                continue
            }
            let client = try await POSClient.connect(host: settings.host, port: settings.port)
            do {
                try await client.hello(terminalID: "lt-\(index)", secret: settings.secret)
            } catch {
                throw LoadTestError("terminal lt-\(index) could not authenticate (\(error)); run `loyalty-loadtest seed` with this secret file")
            }
            clients.append(client)
        }
        if settings.prewarm, settings.admin == nil { try await prewarm(clients.compactMap { $0 }) }
        let start = ContinuousClock.now
        let measureFrom = start + settings.warmup
        let end = measureFrom + settings.duration
        let serverPID = settings.serverPID
        let cpuWindow = Task { () -> CPUSpent? in
            try? await Task.sleep(until: measureFrom, clock: .continuous)
            let client = CPUTime.ownSeconds()
            let server = serverPID.flatMap(CPUTime.processSeconds)
            try? await Task.sleep(until: end, clock: .continuous)
            let serverAfter = serverPID.flatMap(CPUTime.processSeconds)
            return CPUSpent(client: CPUTime.ownSeconds() - client, server: server.flatMap { before in serverAfter.map { $0 - before } })
        }
        let tally = try await withThrowingTaskGroup(of: WorkerTally?.self) { group in
            group.addTask { await self.reportProgress(start: start, measureFrom: measureFrom, end: end); return nil }
            for (index, client) in clients.enumerated() {
                if let rate = settings.openLoopRatePerS {
                    group.addTask {
                        try await self.openLoop(client: client, connection: index, ratePerS: Double(rate) / Double(self.settings.connections),
                                                start: start, measureFrom: measureFrom, end: end)
                    }
                } else {
                    for worker in 0..<settings.pipeline {
                        group.addTask {
                            await self.closedLoop(client: client, worker: "\(index)-\(worker)", measureFrom: measureFrom, end: end)
                        }
                    }
                }
            }
            var total = WorkerTally()
            for try await tally in group { if let tally { total.merge(tally) } }
            return total
        }
        for client in clients { await client?.close() }
        let peak = peakRSSKiB.load(ordering: .relaxed)
        return (tally, settings.duration, peak > 0 ? Double(peak) / 1_024 : nil, await cpuWindow.value)
    }

    /// Looks every member up once (by card), all connections and their pipelines sharing the work.
    private func prewarm(_ clients: [POSClient]) async throws {
        let started = ContinuousClock.now
        let total = members.ids.count
        FileHandle.standardError.write(Data("[\(scenario.name)] pre-warming: looking up all \(total) members once\n".utf8))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while self.prewarmNext.load(ordering: .relaxed) < total {
                    try await Task.sleep(for: .seconds(2))
                    let done = min(self.prewarmNext.load(ordering: .relaxed), total)
                    FileHandle.standardError.write(Data("[\(self.scenario.name)] pre-warming: \(done)/\(total)\n".utf8))
                }
            }
            for client in clients {
                for _ in 0..<settings.pipeline {
                    group.addTask {
                        while true {
                            let index = self.prewarmNext.add(1, ordering: .relaxed).oldValue
                            guard index < total else { return }
                            var request = Loyalty_Pos_V1_LookupRequest()
                            request.cardNumber = self.members.cards[index]
                            _ = try await client.call(.lookup, request)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        FileHandle.standardError.write(Data("[\(scenario.name)] pre-warmed in \(Int((ContinuousClock.now - started).seconds)) s\n".utf8))
    }

    // MARK: Loops

    private func closedLoop(client: POSClient?, worker: String, measureFrom: ContinuousClock.Instant, end: ContinuousClock.Instant) async -> WorkerTally {
        var tally = WorkerTally()
        var state = WorkerState(prefix: "\(runID)-\(worker)")
        while ContinuousClock.now < end {
            let operation = pickOperation()
            let began = ContinuousClock.now
            let result = await perform(operation, client: client, state: &state)
            let finished = ContinuousClock.now
            guard began >= measureFrom, finished <= end else { continue }
            count(result, operation: operation, elapsed: finished - began, into: &tally)
        }
        return tally
    }

    /// Sends at a fixed rate whatever the answers do; a request's latency runs from when it was due, so a server
    /// that falls behind shows it (no coordinated omission). At most 1,000 outstanding per connection.
    private func openLoop(
        client: POSClient?, connection: Int, ratePerS: Double, start: ContinuousClock.Instant,
        measureFrom: ContinuousClock.Instant, end: ContinuousClock.Instant
    ) async throws -> WorkerTally {
        let interval = Duration.seconds(1 / max(ratePerS, 0.001))
        var tally = WorkerTally()
        try await withThrowingTaskGroup(of: (String, Result<Int, RequestFailed>, Duration, Bool).self) { group in
            var outstanding = 0
            var sequence = 0
            var due = start
            while due < end {
                if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
                while outstanding >= 1_000, let (operation, result, elapsed, counted) = try await group.next() {
                    outstanding -= 1
                    if counted { count(result, operation: operation, elapsed: elapsed, into: &tally) }
                }
                let intended = due
                let worker = "\(connection)-\(sequence)"
                group.addTask {
                    var state = WorkerState(prefix: "\(self.runID)-\(worker)")
                    let operation = self.pickOperation()
                    let result = await self.perform(operation, client: client, state: &state)
                    let finished = ContinuousClock.now
                    return (operation, result, finished - intended, intended >= measureFrom && finished <= end + .seconds(5))
                }
                outstanding += 1
                sequence += 1
                due = due + interval
            }
            for try await (operation, result, elapsed, counted) in group where counted {
                count(result, operation: operation, elapsed: elapsed, into: &tally)
            }
        }
        return tally
    }

    private func count(_ result: Result<Int, RequestFailed>, operation: String, elapsed: Duration, into tally: inout WorkerTally) {
        switch result {
        case .success(let requests):
            tally.requests += requests
            tally.record(operation, microseconds: UInt64(elapsed.seconds * 1_000_000))
            completed.add(1, ordering: .relaxed)
        case .failure(let failure):
            tally.errors[failure.key, default: 0] += 1
            failed.add(1, ordering: .relaxed)
        }
    }

    private func pickOperation() -> String {
        let total = weights.reduce(0) { $0 + $1.1 }
        var roll = Int.random(in: 0..<total)
        for (operation, weight) in weights {
            if roll < weight { return operation }
            roll -= weight
        }
        return weights.last!.0
    }

    // MARK: Operations

    struct WorkerState {
        let prefix: String
        var sequence = 0
        /// Recent commits of this worker (transaction id, lines), for refunds.
        var commits: [String] = []

        mutating func nextID(_ kind: String) -> String {
            sequence += 1
            return "\(prefix)-\(kind)\(sequence)"
        }
    }

    /// Performs one operation; returns how many protocol requests it took.
    private func perform(_ operation: String, client: POSClient?, state: inout WorkerState) async -> Result<Int, RequestFailed> {
        let index = members.pick(hot: settings.hotMembers)
        let memberID = members.ids[index]
        if let admin = settings.admin {
            return await admin.perform(operation, memberID: memberID, card: members.cards[index])
        }
        guard let client else { return .failure(RequestFailed(key: "no_connection")) }
        do {
            switch operation {
            case "lookup":
                var request = Loyalty_Pos_V1_LookupRequest()
                request.cardNumber = members.cards[index]
                try await call(client, .lookup, request)
                return .success(1)
            case "quote":
                var request = Loyalty_Pos_V1_QuoteRequest()
                request.memberID = memberID
                request.basket = Self.basket()
                try await call(client, .quote, request)
                return .success(1)
            case "commit":
                let txn = state.nextID("c")
                try await call(client, .commit, commitRequest(txn, memberID: memberID))
                state.commits.append(txn)
                if state.commits.count > 32 { state.commits.removeFirst() }
                return .success(1)
            case "hold_commit":
                let txn = state.nextID("h")
                var hold = Loyalty_Pos_V1_HoldRequest()
                hold.posTransactionID = txn
                hold.memberID = memberID
                hold.points = 500
                let held = try await call(client, .hold, hold)
                let holdID = try Loyalty_Pos_V1_HoldResponse(serializedBytes: Array(buffer: held)).holdID
                var commit = commitRequest(txn, memberID: memberID)
                // A basket the 500 points may pay for under the 50 % cap, as a customer redeeming would bring.
                commit.basket.lines.append(.with {
                    $0.lineID = "99"
                    $0.sku = "4311501445107"
                    $0.category = "household"
                    $0.quantity = 1
                    $0.unitPriceMinor = 1_500
                })
                commit.holdID = holdID
                commit.redeemPoints = 500
                try await call(client, .commit, commit)
                return .success(2)
            case "refund":
                guard let txn = state.commits.popLast() else {
                    let txn = state.nextID("c")
                    try await call(client, .commit, commitRequest(txn, memberID: memberID))
                    state.commits.append(txn)
                    return .success(1)
                }
                var refund = Loyalty_Pos_V1_RefundRequest()
                refund.refundID = state.nextID("r")
                refund.originalPosTransactionID = txn
                refund.lines = [.with { $0.lineID = "1"; $0.quantity = 1 }]
                try await call(client, .refund, refund)
                return .success(1)
            case "cancel":
                let txn = state.nextID("x")
                var hold = Loyalty_Pos_V1_HoldRequest()
                hold.posTransactionID = txn
                hold.memberID = memberID
                hold.points = 500
                try await call(client, .hold, hold)
                var cancel = Loyalty_Pos_V1_CancelRequest()
                cancel.posTransactionID = txn
                try await call(client, .cancel, cancel)
                return .success(2)
            default:
                return .failure(RequestFailed(key: "unknown operation \(operation)"))
            }
        } catch let failure as RequestFailed {
            return .failure(failure)
        } catch {
            return .failure(RequestFailed(key: "transport: \(error)"))
        }
    }

    @discardableResult
    private func call(_ client: POSClient, _ method: Loyalty_Pos_V1_Method, _ request: some SwiftProtobuf.Message) async throws -> ByteBuffer {
        let response = try await client.call(method, request)
        guard response.status == .ok else {
            let detail = try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: response.payload))
            throw RequestFailed(key: "\(response.status)/\(detail?.code ?? "")")
        }
        return response.payload
    }

    private func commitRequest(_ txn: String, memberID: Int64) -> Loyalty_Pos_V1_CommitRequest {
        var request = Loyalty_Pos_V1_CommitRequest()
        request.posTransactionID = txn
        request.memberID = memberID
        request.basket = Self.basket()
        return request
    }

    /// A small store basket: 1-4 lines from a catalogue of groceries, own brand and tobacco.
    static func basket() -> Loyalty_Pos_V1_Basket {
        let catalogue: [(String, String, Int64)] = [
            ("4006381333931", "grocery", 199), ("4000417025005", "grocery", 349), ("2000000000015", "own_brand", 899),
            ("2000000000022", "own_brand", 259), ("4008400401621", "dairy", 129), ("5000112576009", "beverages", 1_499),
            ("4001686301265", "tobacco", 800), ("4311501445107", "household", 2_495),
        ]
        var basket = Loyalty_Pos_V1_Basket()
        basket.currency = "EUR"
        for line in 1...Int.random(in: 1...4) {
            let item = catalogue.randomElement()!
            basket.lines.append(.with {
                $0.lineID = "\(line)"
                $0.sku = item.0
                $0.category = item.1
                $0.quantity = Int64.random(in: 1...3)
                $0.unitPriceMinor = item.2
            })
        }
        return basket
    }

    // MARK: Progress

    private func reportProgress(start: ContinuousClock.Instant, measureFrom: ContinuousClock.Instant, end: ContinuousClock.Instant) async {
        var last = 0
        while ContinuousClock.now < end {
            try? await Task.sleep(for: .seconds(1))
            let done = completed.load(ordering: .relaxed)
            let errors = failed.load(ordering: .relaxed)
            let rss = serverRSSKiB()
            if let rss { _ = peakRSSKiB.max(rss, ordering: .relaxed) }
            let phase = ContinuousClock.now < measureFrom ? "warm-up" : "measuring"
            let elapsed = Int((ContinuousClock.now - start).seconds)
            let total = Int((end - start).seconds)
            FileHandle.standardError.write(Data(
                "[\(scenario.name)] \(phase) \(elapsed)/\(total) s: \(done - last) ops/s, \(errors) errors\(rss.map { ", server RSS \($0 / 1_024) MiB" } ?? "")\n".utf8))
            last = done
        }
    }

    private func serverRSSKiB() -> Int? {
        guard let pid = settings.serverPID, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}

