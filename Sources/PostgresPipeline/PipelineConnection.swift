import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of one `PipelineConnection` (and of each connection of a `PipelinePool`).
public struct PipelineConfiguration: Sendable {
    /// A libpq connection string or URL, e.g. `postgres://user:pass@127.0.0.1:5432/db?sslmode=disable`.
    public var conninfo: String
    /// How many statements may be sent and awaiting their Sync at once. Further statements wait, in order, in the
    /// connection's queue (and can still be cancelled or time out there: they are not sent yet).
    public var maxInFlight: Int = 128
    /// How many statements may wait in the queue to be sent. One more fails at once with
    /// `PipelineError.queueFull` (fail fast, no waiting for room): back-pressure the caller can see and route around.
    public var maxQueued: Int = 4096
    /// The longest a connection attempt may take.
    public var connectTimeout: Duration = .seconds(5)
    /// After a failed connection attempt the connection is down and calls fail at once with
    /// `PipelineError.unavailable` until the next attempt; the wait doubles from `initialBackoff` up to `maxBackoff`.
    /// A lost connection is re-established at once (the first attempt has no wait).
    public var initialBackoff: Duration = .milliseconds(50)
    public var maxBackoff: Duration = .seconds(2)
    public var logger: Logger

    public init(conninfo: String, logger: Logger = Logger(label: "postgres-pipeline")) {
        self.conninfo = conninfo
        self.logger = logger
    }
}

/// One PostgreSQL connection in libpq's pipeline mode, driven by a thread of its own.
///
/// Every `execute` is sent as the statement followed by its own Sync, so it runs in its own implicit transaction,
/// and it returns only when that Sync was answered (`PGRES_PIPELINE_SYNC`, i.e. ReadyForQuery): a successful return
/// means the statement committed. Many calls may be outstanding at once; they are sent and answered in the order they
/// were queued.
///
/// Threading: the `PGconn` is used only by the connection's own thread, which runs a `poll()` loop on the libpq
/// socket and a wakeup pipe. Callers only touch the queue (under a lock) and wait on a continuation, so no libpq
/// call ever runs on a NIO event loop or the Swift concurrency pool.
///
/// Call `close()` when done: the thread runs until then.
public final class PipelineConnection: Sendable {
    let shared: PipelineShared

    private init(shared: PipelineShared) {
        self.shared = shared
    }

    /// Opens the connection; throws `PipelineError.unavailable` if the first attempt fails.
    public static func connect(_ configuration: PipelineConfiguration) async throws -> PipelineConnection {
        let shared = try PipelineShared(configuration)
        let connection = PipelineConnection(shared: shared)
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                shared.state.withLock { $0.startWaiter = continuation }
                let driver = PipelineDriver(shared: shared)
                let thread = Thread { driver.run() }
                thread.name = "pg-pipeline"
                thread.start()
            }
        } catch {
            await connection.close(drain: false)
            throw error
        }
        return connection
    }

    /// Runs one statement in its own implicit transaction and returns its rows once the transaction committed.
    ///
    /// Throws `PipelineError` (see `isRetryable`, `mayHaveCommitted`) or `CancellationError`. A cancelled call that
    /// was not sent yet is removed from the queue and never sent; once sent, it waits for the answer, so the caller
    /// still learns whether it committed.
    public func execute(_ statement: PipelineStatement) async throws -> PipelineResult {
        let shared = self.shared
        let id = shared.state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PipelineResult, any Error>) in
                let refusal: (any Error)? = shared.state.withLock { state in
                    // Checked under the lock: a cancellation either finds the waiter queued below or is seen here.
                    if Task.isCancelled { return CancellationError() }
                    switch state.phase {
                    case .closing, .closed: return PipelineError.closed
                    case .down(let reason): return PipelineError.unavailable(reason: reason)
                    case .connecting, .up: break
                    }
                    if let deadline = statement.deadline, deadline <= .now { return PipelineError.deadlineExceeded }
                    if state.pending.count >= shared.configuration.maxQueued {
                        return PipelineError.queueFull(limit: shared.configuration.maxQueued)
                    }
                    state.pending.append(Waiter(id: id, statement: statement, reply: .call(continuation)))
                    if statement.deadline != nil { state.pendingWithDeadline += 1 }
                    shared.wakeLocked(&state)
                    return nil
                }
                if let refusal { continuation.resume(throwing: refusal) }
            }
        } onCancel: {
            let waiter: Waiter? = shared.state.withLock { state in
                guard let index = state.pending.firstIndex(where: { $0.id == id }) else { return nil }
                let waiter = state.pending.remove(at: index)
                if waiter.statement.deadline != nil { state.pendingWithDeadline -= 1 }
                return waiter
            }
            waiter?.reply.resume(with: .failure(CancellationError()))
        }
    }

    /// Queues several statements at once, in this order and with nothing of other callers between them; each is
    /// still its own implicit transaction with its own Sync, so one failing does not affect the others. Returns one
    /// answer per statement, in order, when all are in. Cancelling the task fails the ones not sent yet with
    /// `CancellationError`; a batch that does not fit into the queue fails entirely with `queueFull`.
    public func execute(batch statements: [PipelineStatement]) async -> [Result<PipelineResult, any Error>] {
        guard !statements.isEmpty else { return [] }
        let shared = self.shared
        let firstID = shared.state.withLock { state in
            let first = state.nextID &+ 1
            state.nextID &+= UInt64(statements.count)
            return first
        }
        let ids = firstID..<(firstID &+ UInt64(statements.count))
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[Result<PipelineResult, any Error>], Never>) in
                let batch = BatchReply(count: statements.count, continuation: continuation)
                let refusal: (any Error)? = shared.state.withLock { state in
                    if Task.isCancelled { return CancellationError() }
                    switch state.phase {
                    case .closing, .closed: return PipelineError.closed
                    case .down(let reason): return PipelineError.unavailable(reason: reason)
                    case .connecting, .up: break
                    }
                    if state.pending.count + statements.count > shared.configuration.maxQueued {
                        return PipelineError.queueFull(limit: shared.configuration.maxQueued)
                    }
                    let now = ContinuousClock.now
                    for (index, statement) in statements.enumerated() {
                        if let deadline = statement.deadline, deadline <= now {
                            batch.deliver(.failure(PipelineError.deadlineExceeded), at: index)
                            continue
                        }
                        state.pending.append(Waiter(id: firstID &+ UInt64(index), statement: statement, reply: .batch(batch, index: index)))
                        if statement.deadline != nil { state.pendingWithDeadline += 1 }
                    }
                    shared.wakeLocked(&state)
                    return nil
                }
                if let refusal {
                    for index in statements.indices { batch.deliver(.failure(refusal), at: index) }
                }
            }
        } onCancel: {
            let waiters: [Waiter] = shared.state.withLock { state in
                var removed: [Waiter] = []
                state.pending.removeAll { waiter in
                    guard ids.contains(waiter.id) else { return false }
                    removed.append(waiter)
                    return true
                }
                state.pendingWithDeadline -= removed.count(where: { $0.statement.deadline != nil })
                return removed
            }
            for waiter in waiters { waiter.reply.resume(with: .failure(CancellationError())) }
        }
    }

    /// `execute(PipelineStatement(sql, parameters))`.
    public func execute(_ sql: String, _ parameters: [String?] = []) async throws -> PipelineResult {
        try await execute(PipelineStatement(sql, parameters))
    }

    /// Closes the connection. With `drain`, statements already queued are still sent and answered first; new calls
    /// fail with `PipelineError.closed` at once. Without it, queued statements fail with `.closed` and statements in
    /// flight with `.outcomeUnknown`. Returns when the thread has ended and the `PGconn` is finished.
    public func close(drain: Bool = true) async {
        await shared.close(drain: drain)
    }

    /// The process id of the current backend, nil while not connected.
    public var backendPID: Int32? {
        shared.state.withLock { state in
            if case .up = state.phase { return state.backendPID }
            return nil
        }
    }

    /// Whether the connection is established (not connecting, down or closed).
    public var isConnected: Bool {
        shared.state.withLock { state in
            if case .up = state.phase { return true }
            return false
        }
    }

    /// How many times a connection was established (1 after `connect`; each reconnect adds one).
    public var connectCount: Int {
        shared.state.withLock { $0.connectCount }
    }

    /// Statements queued or in flight.
    public var outstanding: Int {
        shared.state.withLock { $0.pending.count + $0.inFlight }
    }

    /// Statements waiting to be sent.
    public var queued: Int {
        shared.state.withLock { $0.pending.count }
    }

    /// Statements sent and awaiting their Sync.
    public var inFlight: Int {
        shared.state.withLock { $0.inFlight }
    }

    /// Whether a call now would be queued (connected or connecting), and how many are outstanding.
    var load: (accepting: Bool, outstanding: Int) {
        shared.state.withLock { state in
            let accepting: Bool
            switch state.phase {
            case .up, .connecting: accepting = true
            case .down, .closing, .closed: accepting = false
            }
            return (accepting, state.pending.count + state.inFlight)
        }
    }

    /// Dropping the last reference closes the connection after what is queued was answered.
    deinit {
        shared.requestClose(drain: true)
    }
}

struct Waiter: Sendable {
    let id: UInt64
    let statement: PipelineStatement
    let reply: Reply
}

/// Where an answer goes: the continuation of one call, or one slot of a batch.
enum Reply: Sendable {
    case call(CheckedContinuation<PipelineResult, any Error>)
    case batch(BatchReply, index: Int)

    func resume(with result: Result<PipelineResult, any Error>) {
        switch self {
        case .call(let continuation): continuation.resume(with: result)
        case .batch(let batch, let index): batch.deliver(result, at: index)
        }
    }
}

/// Collects the answers of a batch; resumes its caller when the last one is in.
final class BatchReply: Sendable {
    private struct State {
        var results: [Result<PipelineResult, any Error>?]
        var remaining: Int
        var continuation: CheckedContinuation<[Result<PipelineResult, any Error>], Never>?
    }

    private let state: Mutex<State>

    init(count: Int, continuation: CheckedContinuation<[Result<PipelineResult, any Error>], Never>) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count, continuation: continuation))
    }

    func deliver(_ result: Result<PipelineResult, any Error>, at index: Int) {
        let done = state.withLock { state -> (CheckedContinuation<[Result<PipelineResult, any Error>], Never>, [Result<PipelineResult, any Error>])? in
            guard state.results[index] == nil else { return nil }
            state.results[index] = result
            state.remaining -= 1
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            return (continuation, state.results.map { $0! })
        }
        if let (continuation, results) = done { continuation.resume(returning: results) }
    }
}

struct SharedState: ~Copyable {
    enum Phase {
        case connecting
        case up
        case down(reason: String)
        case closing(drain: Bool)
        case closed
    }

    var phase: Phase = .connecting
    /// Queued, not yet sent, in order.
    var pending: [Waiter] = []
    var pendingWithDeadline = 0
    /// Sent and awaiting their Sync (the list itself is the thread's).
    var inFlight = 0
    var wakeupPending = false
    var backendPID: Int32 = 0
    var connectCount = 0
    var nextID: UInt64 = 0
    var startWaiter: CheckedContinuation<Void, any Error>?
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
}

/// What callers and the connection's thread share: the queue under a lock, and the wakeup pipe.
final class PipelineShared: Sendable {
    let configuration: PipelineConfiguration
    let state = Mutex(SharedState())
    let wakeRead: Int32
    let wakeWrite: Int32

    init(_ configuration: PipelineConfiguration) throws {
        self.configuration = configuration
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw PipelineError.client("pipe() failed: errno \(errno)") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    /// Wakes the thread. Called with the lock held, so the pipe is never written after the thread closed it.
    func wakeLocked(_ state: inout SharedState) {
        guard !state.wakeupPending else { return }
        if case .closed = state.phase { return }
        state.wakeupPending = true
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func requestClose(drain: Bool) {
        state.withLock { state in
            switch state.phase {
            case .closed: return
            case .closing(let draining): state.phase = .closing(drain: draining && drain)
            case .connecting, .up, .down: state.phase = .closing(drain: drain)
            }
            wakeLocked(&state)
        }
    }

    func close(drain: Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let closed = state.withLock { state in
                if case .closed = state.phase { return true }
                state.closeWaiters.append(continuation)
                return false
            }
            if closed {
                continuation.resume()
            } else {
                requestClose(drain: drain)
            }
        }
    }
}
