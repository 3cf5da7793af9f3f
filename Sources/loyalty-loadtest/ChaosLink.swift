import Foundation
import NIOCore
import POSProtocol
import SwiftProtobuf

/// How a till talks to the server under faults: one connection, re-opened (Hello again) whenever it is lost, and
/// a request resent byte for byte until it gets a final answer — as docs/pos-protocol.md §5 asks of a till.
struct ChaosLinkSettings: Sendable {
    var host: String
    var port: Int
    var secret: [UInt8]
    /// Deadline carried in each request (the server's default).
    var requestDeadlineMs: UInt32 = 5_000
    /// The till's own timeout: the deadline plus a network margin. On expiry the connection is dropped.
    var clientTimeoutMs = 8_000
    /// Exponential backoff with full jitter between resends; capped lower than the protocol's 5 s so a short run
    /// sees many recoveries.
    var backoffFirstMs = 100
    var backoffMaxMs = 2_000
    /// After this instant an unanswered request is given up and journaled as unresolved.
    var hardStop: ContinuousClock.Instant
}

enum ChaosAnswer {
    case ok(ByteBuffer)
    /// A final status: "STATUS/code".
    case refused(String)
    /// No final answer before the hard stop.
    case unresolved
}

struct ChaosTimeout: Error, CustomStringConvertible {
    var description: String { "no answer within the till's timeout" }
}

final class ChaosLink {
    let terminalID: String
    let settings: ChaosLinkSettings
    let counters: ChaosCounters
    private var client: POSClient?
    private var hasConnected = false
    /// The last transport error, for the till's log when a run ends unresolved.
    private(set) var lastError = ""

    init(terminalID: String, settings: ChaosLinkSettings, counters: ChaosCounters) {
        self.terminalID = terminalID
        self.settings = settings
        self.counters = counters
    }

    /// Sends `request` until OK or a non-retryable status; returns the answer and how many requests it took.
    func send(_ method: Loyalty_Pos_V1_Method, _ request: some SwiftProtobuf.Message) async -> (ChaosAnswer, attempts: Int) {
        guard let bytes: [UInt8] = try? request.serializedBytes() else { return (.refused("CLIENT/unencodable"), 0) }
        let deadlineMs = settings.requestDeadlineMs
        var tries = 0, sent = 0
        defer { if tries > 1 { counters.tillsRetrying.bump(-1) } }
        while ContinuousClock.now < settings.hardStop {
            tries += 1
            if tries > 1 {
                if tries == 2 { counters.tillsRetrying.bump() }
                try? await Task.sleep(for: .milliseconds(backoffMs(attempt: tries - 1)))
            }
            guard let client = await connection() else { continue }
            if sent > 0 { counters.resends.bump() }
            sent += 1
            do {
                let response = try await withTimeout(client) {
                    try await client.call(method: UInt16(method.rawValue), payload: ByteBuffer(bytes: bytes),
                                          deadlineMs: deadlineMs)
                }
                if response.status == .ok { return (.ok(response.payload), sent) }
                let code = (try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: response.payload)))?.code ?? ""
                guard response.status.isRetryable else { return (.refused("\(response.status)/\(code)"), sent) }
                lastError = "\(response.status)/\(code)"
                if code == "draining" { await drop() }  // the server is going away: reconnect for the resend
            } catch {
                if error is ChaosTimeout { counters.timeouts.bump() }
                lastError = "\(error)"
                await drop()
            }
        }
        return (.unresolved, sent)
    }

    func close() async { await drop() }

    private func backoffMs(attempt: Int) -> Int {
        let ceiling = min(settings.backoffMaxMs, settings.backoffFirstMs << min(attempt - 1, 16))
        return Int.random(in: 0...max(1, ceiling))
    }

    private func connection() async -> POSClient? {
        if let client { return client }
        do {
            let fresh = try await POSClient.connect(host: settings.host, port: settings.port)
            do {
                let terminalID = self.terminalID, secret = settings.secret
                _ = try await withTimeout(fresh) { try await fresh.hello(terminalID: terminalID, secret: secret) }
            } catch {
                await fresh.close()
                throw error
            }
            client = fresh
            if hasConnected { counters.reconnects.bump() }
            hasConnected = true
            return fresh
        } catch {
            lastError = "connect: \(error)"
            return nil
        }
    }

    private func drop() async {
        guard let old = client else { return }
        client = nil
        await old.close()
    }

    /// Runs `body` on `client`; on the till's timeout closes the connection, which fails the waiting call.
    private func withTimeout<T: Sendable>(_ client: POSClient, _ body: @Sendable @escaping () async throws -> T) async throws -> T {
        let timeoutMs = settings.clientTimeoutMs
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(timeoutMs))
                await client.close()
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw ChaosTimeout() }
            return value
        }
    }
}
