import Logging
import NIOCore
import Synchronization

/// One Redis connection in client-side-caching mode: `CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX
/// <prefix>`, then `SUBSCRIBE __redis__:invalidate` (RESP2). In BCAST mode Redis sends it the names of every key
/// under the prefix that any client changes (a script's keys in one message, after the script), whoever read
/// them, so one connection per process is enough and the data connections need no tracking of their own. A
/// FLUSHALL or FLUSHDB arrives as a null message.
///
/// Guarantees:
/// - `live` is reported only once tracking is on and the subscription confirmed; `lost` as soon as the connection
///   closes (a `CLIENT KILL`, a Redis restart, an output buffer over Redis's pub/sub limit) or misses a heartbeat
///   (a PING every `heartbeatMs`, answered within `heartbeatMs`), so a silent half-open connection is noticed
///   within two heartbeats.
/// - Events of one connection are reported in the order Redis sent them; nothing of an older connection is
///   reported after a newer one went live. Handlers run on the connection's event loop and must not block.
/// - After a loss it connects again after `reconnectDelayMs`, until `stop`.
final class RedisInvalidationListener: Sendable {
    enum Event: Sendable {
        /// Tracking is on and subscribed: from now on every change under the prefix is reported.
        case live(connectionID: Int64)
        /// These keys changed (or expired, or were evicted).
        case invalidated([String])
        /// The database was flushed: every key changed.
        case flushed
        /// The stream has a gap from here until the next `live`.
        case lost(reason: String)
    }

    struct Configuration: Sendable {
        var url: RedisURL
        var prefix: String
        var connectTimeoutMs = 250
        var heartbeatMs = 1_000
        var reconnectDelayMs = 100
    }

    static let channel = "__redis__:invalidate"

    private struct State {
        var task: Task<Void, Never>?
        var connection: RedisConnection?
        /// Numbers the connections, so a late close of an old one is not reported as a loss of the current one.
        var generation: UInt64 = 0
        var stopped = false
    }

    let configuration: Configuration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())

    init(configuration: Configuration, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// Starts connecting; `onEvent` receives everything from then on.
    func start(onEvent: @escaping @Sendable (Event) -> Void) {
        state.withLock { state in
            guard state.task == nil, !state.stopped else { return }
            state.task = Task { await self.run(onEvent: onEvent) }
        }
    }

    /// Closes the connection and stops reconnecting; returns once the loop ended.
    func stop() async {
        let (task, connection) = state.withLock { state in
            state.stopped = true
            state.generation += 1
            return (state.task, state.connection)
        }
        task?.cancel()
        await connection?.close()
        await task?.value
    }

    private func run(onEvent: @escaping @Sendable (Event) -> Void) async {
        var delayMs = configuration.reconnectDelayMs
        while !Task.isCancelled {
            let reason: String
            var wasLive = false
            do {
                reason = try await session(onEvent: onEvent, wentLive: &wasLive)
            } catch {
                reason = error.description
            }
            if state.withLock({ $0.stopped }) { return }
            // Also reported by the close callback, at once; reported here again because this follows the session's
            // `live` in order, whatever moment the connection closed at.
            onEvent(.lost(reason: reason))
            // One warning per loss, not one per failed attempt while Redis stays away.
            logger.log(
                level: wasLive ? .warning : .debug,
                wasLive
                    ? "member cache invalidation connection lost; local cache emptied until it is back"
                    : "member cache invalidation connection could not be opened; local cache stays off",
                metadata: ["redis": "\(configuration.url.host):\(configuration.url.port)", "reason": "\(reason)"])
            // Quick after a working connection broke; backing off up to 2 s while Redis refuses (down, or a version or
            // ACL without client tracking).
            delayMs = wasLive ? configuration.reconnectDelayMs : min(delayMs * 2, Self.maximumReconnectDelayMs)
            try? await Task.sleep(for: .milliseconds(delayMs))
        }
    }

    static let maximumReconnectDelayMs = 2_000

    /// One connection from connect to close; returns (or throws) why it ended.
    private func session(onEvent: @escaping @Sendable (Event) -> Void, wentLive: inout Bool) async throws(CacheError) -> String {
        let generation = state.withLock { state -> UInt64 in
            state.generation += 1
            return state.generation
        }
        let isCurrent: @Sendable () -> Bool = { self.state.withLock { !$0.stopped && $0.generation == generation } }
        let connection = try await RedisConnection.connect(
            to: configuration.url, on: eventLoopGroup, connectTimeoutMs: configuration.connectTimeoutMs, maximumPending: 16,
            onPush: { message in
                guard isCurrent(), let event = Self.event(of: message) else { return }
                onEvent(event)
            })
        let registered = state.withLock { state -> Bool in
            guard !state.stopped, state.generation == generation else { return false }
            state.connection = connection
            return true
        }
        guard registered else {
            await connection.close()
            return "stopped"
        }
        // Registered before anything is sent: a close at any later point is reported.
        connection.channel.closeFuture.whenComplete { _ in
            if isCurrent() { onEvent(.lost(reason: "the connection closed")) }
        }
        let timeoutMs = configuration.connectTimeoutMs
        do {
            guard let id = try await connection.send([Array("CLIENT".utf8), Array("ID".utf8)], timeoutMs: timeoutMs).integer else {
                throw CacheError.protocolError("CLIENT ID answered no integer")
            }
            let tracking = try await connection.send(
                ["CLIENT", "TRACKING", "on", "REDIRECT", String(id), "BCAST", "PREFIX", configuration.prefix].map { Array($0.utf8) },
                timeoutMs: timeoutMs)
            guard tracking == .simpleString("OK") else { throw CacheError.protocolError("CLIENT TRACKING answered \(tracking)") }
            let subscribed = try await connection.send([Array("SUBSCRIBE".utf8), Array(Self.channel.utf8)], timeoutMs: timeoutMs)
            guard subscribed.elements?.first == .bulkString(Array("subscribe".utf8)) else {
                throw CacheError.protocolError("SUBSCRIBE answered \(subscribed)")
            }
            guard isCurrent(), connection.isActive else { throw CacheError.connectionClosed(target: connection.target) }
            onEvent(.live(connectionID: id))
            wentLive = true
            startHeartbeat(on: connection)
            try? await connection.channel.closeFuture.get()
        } catch {
            await connection.close()
            throw error as? CacheError ?? .protocolError("\(error)")
        }
        return "the connection closed"
    }

    /// A PING every `heartbeatMs`; a late or failed answer closes the connection (`sendFuture` closes it on
    /// timeout), which reports the loss.
    private func startHeartbeat(on connection: RedisConnection) {
        let intervalMs = Int64(configuration.heartbeatMs)
        let timeoutMs = configuration.heartbeatMs
        let channel = connection.channel
        let heartbeat = channel.eventLoop.scheduleRepeatedTask(
            initialDelay: .milliseconds(intervalMs), delay: .milliseconds(intervalMs)
        ) { _ in
            connection.sendFuture([Array("PING".utf8)], timeoutMs: timeoutMs).whenFailure { _ in channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { _ in heartbeat.cancel() }
    }

    /// An invalidation message as an event; nil for anything else.
    static func event(of message: RedisValue) -> Event? {
        guard case .array(let parts) = message, parts.count == 3, parts[1] == .bulkString(Array(channel.utf8)) else {
            return nil
        }
        switch parts[2] {
        case .null: return .flushed
        case .array(let keys): return .invalidated(keys.compactMap(\.string))
        default: return nil
        }
    }
}
