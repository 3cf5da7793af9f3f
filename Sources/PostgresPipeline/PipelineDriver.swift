import CLibpq
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The connection's thread: owns the `PGconn` and everything in flight. Used only from that thread (hence
/// `@unchecked Sendable`: it is handed to the thread once and never touched elsewhere).
final class PipelineDriver: @unchecked Sendable {
    private enum Link {
        case none
        case connecting(OpaquePointer, PostgresPollingStatusType, deadline: ContinuousClock.Instant)
        case ready(OpaquePointer)
    }

    /// A statement sent and awaiting its Sync, with what came back so far.
    private struct InFlight {
        let waiter: Waiter
        /// The statement was prepared in the same segment: the first result is the prepare's.
        var awaitsPrepareResult = false
        var result = PipelineResult()
        var error: PipelineError?
    }

    private typealias Completion = (reply: Reply, result: Result<PipelineResult, any Error>)

    private let shared: PipelineShared
    private let configuration: PipelineConfiguration
    private var logger: Logger
    private var link = Link.none
    private var inFlight: [InFlight] = []
    private var inFlightHead = 0
    /// Statements prepared on the current physical connection: name → SQL text.
    private var prepared: [String: String] = [:]
    private var backoff: Duration
    private var retryAt: ContinuousClock.Instant?
    private var wantsWrite = false
    /// Answers to hand out once the current loop step is done (resumed outside the lock).
    private var completions: [Completion] = []

    init(shared: PipelineShared) {
        self.shared = shared
        self.configuration = shared.configuration
        self.logger = shared.configuration.logger
        self.backoff = shared.configuration.initialBackoff
    }

    private var inFlightCount: Int { inFlight.count - inFlightHead }

    // MARK: - The loop

    func run() {
        startConnect()
        while true {
            let now = ContinuousClock.now
            let (closing, drain) = shared.state.withLock { state -> (Bool, Bool) in
                if case .closing(let drain) = state.phase { return (true, drain) }
                return (false, false)
            }
            if closing {
                guard drain, case .ready = link else { return finish() }
                let queued = shared.state.withLock { $0.pending.count }
                if queued == 0 && inFlightCount == 0 { return finish() }
            }

            // Timers: a connection attempt that takes too long, the end of a backoff.
            if case .connecting(let conn, _, let deadline) = link, now >= deadline {
                PQfinish(conn)
                link = .none
                connectFailed("connection attempt timed out after \(configuration.connectTimeout)")
            }
            if case .none = link, let retryAt, now >= retryAt, !closing {
                startConnect()
            }

            let earliestDeadline = sweepAndSend(now: now)
            flushCompletions()

            // Wait for the socket, the wakeup pipe or the next timer.
            var fds = [pollfd(fd: shared.wakeRead, events: Int16(POLLIN), revents: 0)]
            var timeout: ContinuousClock.Instant? = earliestDeadline
            switch link {
            case .none:
                if let retryAt { timeout = min(timeout ?? retryAt, retryAt) }
            case .connecting(let conn, let status, let deadline):
                let events = status == PGRES_POLLING_READING ? POLLIN : POLLOUT
                fds.append(pollfd(fd: PQsocket(conn), events: Int16(events), revents: 0))
                timeout = min(timeout ?? deadline, deadline)
            case .ready(let conn):
                fds.append(pollfd(fd: PQsocket(conn), events: Int16(POLLIN | (wantsWrite ? POLLOUT : 0)), revents: 0))
            }
            let milliseconds: Int32
            if let timeout {
                let left = (timeout - .now) / .milliseconds(1)
                milliseconds = Int32(max(0, min(60_000, left.rounded(.up))))
            } else {
                milliseconds = -1
            }
            let ready = poll(&fds, nfds_t(fds.count), milliseconds)
            if ready < 0 && errno != EINTR {
                logger.error("poll failed", metadata: ["errno": "\(errno)"])
            }
            if fds[0].revents != 0 {
                // Drained and cleared under the lock: a wakeup written after this stays in the pipe, and none is
                // drained while the flag says one is pending (which would leave the next caller without a wakeup).
                shared.state.withLock { state in
                    var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
                    while withUnsafeMutableBytes(of: &buffer, { read(shared.wakeRead, $0.baseAddress, $0.count) }) > 0 {}
                    state.wakeupPending = false
                }
            }
            if fds.count > 1 && fds[1].revents != 0 {
                switch link {
                case .none: break
                case .connecting: advanceConnect()
                case .ready(let conn): service(conn, revents: fds[1].revents)
                }
            }
            flushCompletions()
        }
    }

    /// Fails queued statements whose deadline passed, sends as many as `maxInFlight` allows, and returns the
    /// earliest deadline still queued.
    private func sweepAndSend(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        var room = 0
        if case .ready = link { room = max(0, configuration.maxInFlight - inFlightCount) }
        let (expired, batch, earliest) = shared.state.withLock { state -> ([Waiter], [Waiter], ContinuousClock.Instant?) in
            var expired: [Waiter] = []
            var earliest: ContinuousClock.Instant?
            if state.pendingWithDeadline > 0 {
                var kept: [Waiter] = []
                kept.reserveCapacity(state.pending.count)
                for waiter in state.pending {
                    if let deadline = waiter.statement.deadline {
                        if deadline <= now {
                            expired.append(waiter)
                            continue
                        }
                        earliest = min(earliest ?? deadline, deadline)
                    }
                    kept.append(waiter)
                }
                state.pending = kept
                state.pendingWithDeadline -= expired.count
            }
            let count = min(room, state.pending.count)
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            state.pendingWithDeadline -= batch.count(where: { $0.statement.deadline != nil })
            return (expired, batch, earliest)
        }
        for waiter in expired {
            completions.append((waiter.reply, .failure(PipelineError.deadlineExceeded)))
        }
        guard !batch.isEmpty, case .ready(let conn) = link else { return earliest }
        for (index, waiter) in batch.enumerated() {
            if !send(waiter, on: conn) {
                // The connection broke while sending: what was not handed to libpq was not sent.
                let unsent = batch[(index + 1)...]
                for waiter in unsent {
                    completions.append((waiter.reply, .failure(PipelineError.unavailable(reason: "connection lost"))))
                }
                connectionLost(errorMessage(conn))
                return earliest
            }
        }
        publishInFlight()
        flush(conn)
        return earliest
    }

    /// Callers see as in flight only what was handed to libpq with its Sync (`PipelineConnection.inFlight`).
    private func publishInFlight() {
        let count = inFlightCount
        shared.state.withLock { $0.inFlight = count }
    }

    // MARK: - Sending

    /// Hands one statement and its Sync to libpq. False when the connection is broken (the waiter is answered).
    private func send(_ waiter: Waiter, on conn: OpaquePointer) -> Bool {
        let statement = waiter.statement
        var entry = InFlight(waiter: waiter)
        var queued = false
        var refusal: PipelineError?
        do throws(PipelineError) {
            try withParameters(statement.parameters) { count, types, values, lengths, formats in
                if let name = statement.preparedName {
                    if let sql = prepared[name] {
                        guard sql == statement.sql else {
                            refusal = .client("prepared statement \(name) already stands for other SQL text")
                            return
                        }
                    } else {
                        guard PQsendPrepare(conn, name, statement.sql, count, types) == 1 else {
                            refusal = .client(errorMessage(conn))
                            return
                        }
                        prepared[name] = statement.sql
                        entry.awaitsPrepareResult = true
                        queued = true
                    }
                    guard PQsendQueryPrepared(conn, name, count, values, lengths, formats, 0) == 1 else {
                        refusal = .client(errorMessage(conn))
                        return
                    }
                } else {
                    guard PQsendQueryParams(conn, statement.sql, count, types, values, lengths, formats, 0) == 1 else {
                        refusal = .client(errorMessage(conn))
                        return
                    }
                }
                queued = true
            }
        } catch {
            refusal = error
        }
        if PQstatus(conn) == CONNECTION_BAD {
            let error: PipelineError = queued ? .outcomeUnknown(reason: errorMessage(conn)) : .unavailable(reason: errorMessage(conn))
            completions.append((waiter.reply, .failure(error)))
            return false
        }
        if let refusal {
            if !queued {
                // Nothing of it reached libpq: answer now, no Sync needed.
                completions.append((waiter.reply, .failure(refusal)))
                return true
            }
            entry.error = refusal
        }
        // Its own Sync: the statement is its own implicit transaction, committed when the Sync is answered.
        let synced = PQpipelineSync(conn) == 1
        inFlight.append(entry)
        return synced || PQstatus(conn) != CONNECTION_BAD
    }

    private func withParameters<R>(
        _ parameters: [PipelineParameter?],
        _ body: (Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) throws(PipelineError) -> R {
        var values: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var types: [Oid] = []
        defer { for value in values { value?.deallocate() } }
        for parameter in parameters {
            switch parameter {
            case nil:
                values.append(nil)
                lengths.append(0)
                formats.append(0)
                types.append(0)
            case .text(let text):
                guard !text.utf8.contains(0) else { throw PipelineError.client("a text parameter contains NUL") }
                let bytes = text.utf8CString
                let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
                bytes.withUnsafeBufferPointer { copy.initialize(from: $0.baseAddress!, count: bytes.count) }
                values.append(copy)
                lengths.append(0)
                formats.append(0)
                types.append(0)
            case .binary(let bytes, let type):
                let copy = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
                bytes.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(copy).copyMemory(from: raw.baseAddress ?? UnsafeRawPointer(copy), byteCount: bytes.count)
                }
                values.append(copy)
                lengths.append(Int32(bytes.count))
                formats.append(1)
                types.append(type)
            }
        }
        guard parameters.count <= 65_535 else { throw PipelineError.client("more than 65535 parameters") }
        let constValues = values.map { $0.map { UnsafePointer($0) } }
        return types.withUnsafeBufferPointer { types in
            constValues.withUnsafeBufferPointer { values in
                lengths.withUnsafeBufferPointer { lengths in
                    formats.withUnsafeBufferPointer { formats in
                        body(Int32(parameters.count), types.baseAddress, values.baseAddress, lengths.baseAddress, formats.baseAddress)
                    }
                }
            }
        }
    }

    private func flush(_ conn: OpaquePointer) {
        switch PQflush(conn) {
        case 0: wantsWrite = false
        case 1: wantsWrite = true
        default: connectionLost(errorMessage(conn))
        }
    }

    // MARK: - Receiving

    private func service(_ conn: OpaquePointer, revents: Int16) {
        if revents & Int16(POLLOUT) != 0 {
            flush(conn)
            guard case .ready = link else { return }
        }
        if revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
            let consumed = PQconsumeInput(conn) == 1
            // Answers that arrived before a failure are still handed out (those statements did commit).
            readResults(conn)
            if !consumed || PQstatus(conn) == CONNECTION_BAD {
                connectionLost(errorMessage(conn))
                return
            }
            // libpq may have more to send once it has read (it flushes only part in nonblocking mode).
            if wantsWrite { flush(conn) }
        }
    }

    private func readResults(_ conn: OpaquePointer) {
        defer { publishInFlight() }
        var nulls = 0
        while inFlightCount > 0, PQisBusy(conn) == 0 {
            guard let res = PQgetResult(conn) else {
                // The end of one statement's results; two in a row: nothing more for now.
                nulls += 1
                if nulls >= 2 || PQstatus(conn) == CONNECTION_BAD { return }
                continue
            }
            nulls = 0
            defer { PQclear(res) }
            let status = PQresultStatus(res)
            if status == PGRES_PIPELINE_SYNC {
                let entry = inFlight[inFlightHead]
                inFlightHead += 1
                if inFlightHead > 1024 && inFlightHead * 2 > inFlight.count {
                    inFlight.removeFirst(inFlightHead)
                    inFlightHead = 0
                }
                let result: Result<PipelineResult, any Error> = entry.error.map { .failure($0) } ?? .success(entry.result)
                completions.append((entry.waiter.reply, result))
                continue
            }
            absorb(res, status: status, into: &inFlight[inFlightHead])
        }
    }

    private func absorb(_ res: OpaquePointer, status: ExecStatusType, into entry: inout InFlight) {
        let isPrepare = entry.awaitsPrepareResult
        entry.awaitsPrepareResult = false
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            guard !isPrepare else { return }
            entry.result = Self.result(res)
        case PGRES_FATAL_ERROR:
            if isPrepare, let name = entry.waiter.statement.preparedName { prepared[name] = nil }
            if entry.error == nil { entry.error = .server(Self.serverError(res)) }
        case PGRES_PIPELINE_ABORTED:
            if isPrepare, let name = entry.waiter.statement.preparedName { prepared[name] = nil }
            if entry.error == nil { entry.error = .client("statement skipped: the pipeline was aborted") }
        default:
            if entry.error == nil {
                entry.error = .client("unsupported result \(String(cString: PQresStatus(status))): \(String(cString: PQresultErrorMessage(res)))")
            }
        }
    }

    private static func result(_ res: OpaquePointer) -> PipelineResult {
        let fields = PQnfields(res)
        let tuples = PQntuples(res)
        let columns = (0..<fields).map { String(cString: PQfname(res, $0)) }
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(tuples))
        for row in 0..<tuples {
            rows.append((0..<fields).map { column in
                PQgetisnull(res, row, column) != 0 ? nil : String(cString: PQgetvalue(res, row, column))
            })
        }
        return PipelineResult(columns: columns, rows: rows, commandTag: String(cString: PQcmdStatus(res)))
    }

    private static func serverError(_ res: OpaquePointer) -> PostgresServerError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(res, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        return PostgresServerError(
            sqlState: field("C") ?? "XX000",
            severity: field("V") ?? field("S") ?? "ERROR",
            message: field("M") ?? String(cString: PQresultErrorMessage(res)).trimmingTrailingNewlines,
            detail: field("D"),
            hint: field("H"),
            constraintName: field("n"))
    }

    // MARK: - Connecting

    private func startConnect() {
        retryAt = nil
        guard let conn = PQconnectStart(configuration.conninfo) else {
            return connectFailed("out of memory")
        }
        guard PQstatus(conn) != CONNECTION_BAD else {
            let message = errorMessage(conn)
            PQfinish(conn)
            return connectFailed(message)
        }
        shared.state.withLock { state in
            if case .down = state.phase { state.phase = .connecting }
        }
        link = .connecting(conn, PGRES_POLLING_WRITING, deadline: .now + configuration.connectTimeout)
    }

    private func advanceConnect() {
        guard case .connecting(let conn, _, let deadline) = link else { return }
        let status = PQconnectPoll(conn)
        switch status {
        case PGRES_POLLING_OK:
            guard PQsetnonblocking(conn, 1) == 0, PQenterPipelineMode(conn) == 1 else {
                let message = errorMessage(conn)
                PQfinish(conn)
                link = .none
                return connectFailed(message)
            }
            PQsetNoticeReceiver(conn, { _, _ in }, nil)
            link = .ready(conn)
            wantsWrite = false
            backoff = configuration.initialBackoff
            let pid = PQbackendPID(conn)
            let waiter = shared.state.withLock { state -> CheckedContinuation<Void, any Error>? in
                if case .closing = state.phase {} else { state.phase = .up }
                state.backendPID = pid
                state.connectCount += 1
                defer { state.startWaiter = nil }
                return state.startWaiter
            }
            logger.debug("connected", metadata: ["backend-pid": "\(pid)"])
            waiter?.resume()
        case PGRES_POLLING_FAILED:
            let message = errorMessage(conn)
            PQfinish(conn)
            link = .none
            connectFailed(message)
        default:
            link = .connecting(conn, status, deadline: deadline)
        }
    }

    /// The attempt failed: down until the backoff ends; queued statements fail, new ones fail fast meanwhile.
    private func connectFailed(_ message: String) {
        link = .none
        retryAt = .now + backoff
        logger.warning("connection attempt failed", metadata: ["error": "\(message)", "retry-in": "\(backoff)"])
        backoff = min(backoff * 2, configuration.maxBackoff)
        let (pending, starter) = shared.state.withLock { state -> ([Waiter], CheckedContinuation<Void, any Error>?) in
            if case .closing = state.phase {} else { state.phase = .down(reason: message) }
            let pending = state.pending
            state.pending = []
            state.pendingWithDeadline = 0
            defer { state.startWaiter = nil }
            return (pending, state.startWaiter)
        }
        for waiter in pending {
            completions.append((waiter.reply, .failure(PipelineError.unavailable(reason: message))))
        }
        starter?.resume(throwing: PipelineError.unavailable(reason: message))
    }

    /// The connection broke: every statement in flight may or may not have committed; queued ones were not sent.
    /// A new connection is attempted at once.
    private func connectionLost(_ message: String) {
        guard case .ready(let conn) = link else { return }
        PQfinish(conn)
        link = .none
        prepared = [:]
        wantsWrite = false
        let lost = inFlight[inFlightHead...]
        inFlight = []
        inFlightHead = 0
        logger.warning("connection lost", metadata: ["error": "\(message)", "in-flight": "\(lost.count)"])
        let (pending, closing) = shared.state.withLock { state -> ([Waiter], Bool) in
            var closing = false
            if case .closing = state.phase { closing = true } else { state.phase = .connecting }
            state.inFlight = 0
            state.backendPID = 0
            let pending = state.pending
            state.pending = []
            state.pendingWithDeadline = 0
            return (pending, closing)
        }
        for entry in lost {
            completions.append((entry.waiter.reply, .failure(PipelineError.outcomeUnknown(reason: message))))
        }
        for waiter in pending {
            completions.append((waiter.reply, .failure(PipelineError.unavailable(reason: message))))
        }
        if !closing { startConnect() }
    }

    // MARK: - Shutdown

    private func finish() {
        switch link {
        case .none: break
        case .connecting(let conn, _, _), .ready(let conn): PQfinish(conn)
        }
        link = .none
        for entry in inFlight[inFlightHead...] {
            completions.append((entry.waiter.reply, .failure(PipelineError.outcomeUnknown(reason: "connection closed"))))
        }
        inFlight = []
        inFlightHead = 0
        let (pending, starter, closeWaiters) = shared.state.withLock {
            state -> ([Waiter], CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
            state.phase = .closed
            state.inFlight = 0
            let result = (state.pending, state.startWaiter, state.closeWaiters)
            state.pending = []
            state.startWaiter = nil
            state.closeWaiters = []
            // Under the lock: nobody writes to the pipe after this (see `wakeLocked`).
            closeDescriptor(shared.wakeRead)
            closeDescriptor(shared.wakeWrite)
            return result
        }
        for waiter in pending {
            completions.append((waiter.reply, .failure(PipelineError.closed)))
        }
        flushCompletions()
        starter?.resume(throwing: PipelineError.closed)
        for waiter in closeWaiters { waiter.resume() }
        logger.debug("closed")
    }

    private func flushCompletions() {
        guard !completions.isEmpty else { return }
        let done = completions
        completions = []
        for (reply, result) in done {
            reply.resume(with: result)
        }
    }

    private func errorMessage(_ conn: OpaquePointer) -> String {
        String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while let last = text.last, last.isNewline || last == " " { text = text.dropLast() }
        return String(text)
    }
}

private func closeDescriptor(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #elseif canImport(Darwin)
    _ = Darwin.close(fd)
    #endif
}
