import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A small fixed set of pipelined Redis connections with a circuit breaker.
///
/// Guarantees: never blocks an event loop (hiredis parses replies inside NIO handlers); a command waits at most
/// `commandTimeoutMs`; after `breakerFailureThreshold` failures in a row the client fails fast for
/// `breakerCooldownMs` instead of hammering a dead server; `onRecovery` runs once each time Redis answers again
/// after the breaker opened, so callers can discard what was cached before the outage.
public final class RedisClient: Sendable {
    public struct Configuration: Sendable {
        public var url: RedisURL
        public var connectionCount = 2
        public var connectTimeoutMs = 250
        public var commandTimeoutMs = 250
        public var maximumPendingPerConnection = 4_096
        public var breakerFailureThreshold = 3
        public var breakerCooldownMs = 1_000

        public init(url: RedisURL) { self.url = url }
    }

    private enum Slot {
        case empty
        case connecting(EventLoopFuture<RedisConnection>)
        case ready(RedisConnection)
    }

    private struct State {
        var slots: [Slot]
        var nextSlot = 0
        var consecutiveFailures = 0
        var openUntil: ContinuousClock.Instant?
        var breakerTripped = false
        var isShutdown = false
    }

    public let configuration: Configuration
    let eventLoopGroup: any EventLoopGroup
    private let state: Mutex<State>
    private let logger: Logger
    private let onRecovery: @Sendable () -> Void
    private let commandsSent = Atomic<Int>(0)

    public init(
        configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger,
        onRecovery: @escaping @Sendable () -> Void = {}
    ) {
        precondition(configuration.connectionCount > 0 && configuration.connectionCount <= 64)
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.state = Mutex(State(slots: Array(repeating: .empty, count: configuration.connectionCount)))
        self.logger = logger
        self.onRecovery = onRecovery
    }

    public var target: String { "\(configuration.url.host):\(configuration.url.port)" }

    /// True while the breaker is open (Redis is considered down).
    public var isCircuitOpen: Bool {
        state.withLock { state in
            guard let until = state.openUntil else { return false }
            return ContinuousClock.now < until
        }
    }

    /// Commands handed to a connection since the client was made, each one request and one reply: tests count
    /// round trips with it.
    public var commandCount: Int { commandsSent.load(ordering: .relaxed) }

    public func send(_ arguments: [String]) async throws(CacheError) -> RedisValue {
        try await send(bytes: arguments.map { Array($0.utf8) })
    }

    public func send(bytes arguments: [[UInt8]]) async throws(CacheError) -> RedisValue {
        let now = ContinuousClock.now
        let slotIndex: Int = try state.withLock { state throws(CacheError) -> Int in
            if state.isShutdown { throw CacheError.connectionClosed(target: target) }
            if let until = state.openUntil, now < until {
                throw CacheError.circuitOpen(target: target, retryInMs: Int((until - now).components.attoseconds / 1_000_000_000_000_000 + (until - now).components.seconds * 1000))
            }
            let index = state.nextSlot
            state.nextSlot = (state.nextSlot + 1) % state.slots.count
            return index
        }
        do {
            let connection = try await connection(at: slotIndex)
            commandsSent.add(1, ordering: .relaxed)
            let reply = try await connection.send(arguments, timeoutMs: configuration.commandTimeoutMs)
            recordSuccess()
            return reply
        } catch {
            // A server error reply (e.g. WRONGTYPE) says Redis is alive; only transport failures count.
            if case .server = error { recordSuccess() } else { recordFailure(error, slot: slotIndex) }
            throw error
        }
    }

    /// `send` without Swift concurrency, for a caller on an event loop that answers a cache hit without a task hop.
    /// Nil when that cannot be done at once (no live connection yet, or shut down): use `send`. A connection on
    /// `eventLoop` is preferred, so the reply arrives on the caller's loop; the future completes on the
    /// connection's loop either way. Breaker, counters and timeout as in `send`.
    public func sendOnLoop(bytes arguments: [[UInt8]], preferring eventLoop: any EventLoop) -> EventLoopFuture<RedisValue>? {
        let now = ContinuousClock.now
        enum Pick { case refuse, open(Int), use(RedisConnection, Int) }
        let pick: Pick = state.withLock { state in
            if state.isShutdown { return .refuse }
            if let until = state.openUntil, now < until {
                let left = until - now
                return .open(Int(left.components.seconds * 1_000 + left.components.attoseconds / 1_000_000_000_000_000))
            }
            var fallback: (RedisConnection, Int)?
            for offset in 0..<state.slots.count {
                let index = (state.nextSlot + offset) % state.slots.count
                guard case .ready(let connection) = state.slots[index], connection.isActive else { continue }
                if connection.channel.eventLoop === eventLoop { return .use(connection, index) }
                if fallback == nil { fallback = (connection, index) }
            }
            guard let chosen = fallback else { return .refuse }
            state.nextSlot = (chosen.1 + 1) % state.slots.count
            return .use(chosen.0, chosen.1)
        }
        switch pick {
        case .refuse:
            return nil
        case .open(let retryInMs):
            return eventLoop.makeFailedFuture(CacheError.circuitOpen(target: target, retryInMs: retryInMs))
        case .use(let connection, let slot):
            commandsSent.add(1, ordering: .relaxed)
            let future = connection.sendFuture(arguments, timeoutMs: configuration.commandTimeoutMs)
            future.whenComplete { result in
                // A server error reply says Redis is alive; only transport failures count, as in `send`.
                guard case .failure(let error) = result else { return self.recordSuccess() }
                let cacheError = error as? CacheError ?? .protocolError("\(error)")
                if case .server = cacheError { self.recordSuccess() } else { self.recordFailure(cacheError, slot: slot) }
            }
            return future
        }
    }

    /// PING with the normal timeout; throws when Redis does not answer PONG.
    public func ping() async throws(CacheError) {
        let reply = try await send(["PING"])
        guard reply == .simpleString("PONG") else { throw .protocolError("PING answered \(reply)") }
    }

    public func shutdown() async {
        let slots = state.withLock { state in
            state.isShutdown = true
            defer { state.slots = state.slots.map { _ in .empty } }
            return state.slots
        }
        for slot in slots {
            switch slot {
            case .ready(let connection): await connection.close()
            case .connecting(let future): if let connection = try? await future.get() { await connection.close() }
            case .empty: break
            }
        }
    }

    private func connection(at index: Int) async throws(CacheError) -> RedisConnection {
        let eventLoop = eventLoopGroup.next()
        let future: EventLoopFuture<RedisConnection> = state.withLock { state in
            switch state.slots[index] {
            case .ready(let connection) where connection.isActive:
                return eventLoop.makeSucceededFuture(connection)
            case .connecting(let future):
                return future
            case .ready, .empty:
                let promise = eventLoop.makePromise(of: RedisConnection.self)
                let configuration = self.configuration
                let group = self.eventLoopGroup
                promise.completeWithTask {
                    try await RedisConnection.connect(
                        to: configuration.url, on: group, connectTimeoutMs: configuration.connectTimeoutMs,
                        maximumPending: configuration.maximumPendingPerConnection)
                }
                state.slots[index] = .connecting(promise.futureResult)
                return promise.futureResult
            }
        }
        do {
            let connection = try await future.get()
            state.withLock { state in
                if case .connecting = state.slots[index] { state.slots[index] = .ready(connection) }
            }
            return connection
        } catch {
            state.withLock { state in
                if case .connecting = state.slots[index] { state.slots[index] = .empty }
            }
            throw error as? CacheError ?? .unreachable(target: target, reason: String(describing: error))
        }
    }

    private func recordSuccess() {
        let recovered = state.withLock { state in
            state.consecutiveFailures = 0
            state.openUntil = nil
            defer { state.breakerTripped = false }
            return state.breakerTripped
        }
        if recovered {
            logger.notice("redis recovered", metadata: ["redis": "\(target)"])
            onRecovery()
        }
    }

    private func recordFailure(_ error: CacheError, slot: Int) {
        let opened = state.withLock { state -> Bool in
            if case .ready(let connection) = state.slots[slot], !connection.isActive { state.slots[slot] = .empty }
            state.consecutiveFailures += 1
            guard state.consecutiveFailures >= configuration.breakerFailureThreshold else { return false }
            state.openUntil = ContinuousClock.now + .milliseconds(configuration.breakerCooldownMs)
            let first = !state.breakerTripped
            state.breakerTripped = true
            return first
        }
        if opened {
            logger.warning(
                "redis circuit opened; serving from PostgreSQL",
                metadata: ["redis": "\(target)", "error": "\(error)", "cooldown_ms": "\(configuration.breakerCooldownMs)"])
        }
    }
}
