import Foundation
import Logging
import NIOCore
import LoyaltyStore
import POSProtocol

/// One terminal connection: authentication state, in-flight accounting, dispatch of requests to the service and
/// responses back, possibly out of order. Framing is below (FrameDecoder), business logic is in `POSService`.
final class POSConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private enum AuthState {
        case awaitingHello
        case helloInProgress
        case challenged(TerminalRecord, authMessage: [UInt8])
        case authenticated(POSSession)
    }

    private let service: POSService
    private let limits: POSConnectionLimits
    private let registry: POSConnectionRegistry
    private let logger: Logger
    private var state = AuthState.awaitingHello
    private var inFlight = 0
    private var draining = false
    /// A goaway for abuse or a framing error is on its way: everything still arriving is dropped.
    private var closing = false
    private var consecutiveRejections = 0
    /// A flush is scheduled for the end of this event-loop turn: responses finished in the same turn go out in one
    /// write system call instead of one each (most of the server's time under load was in per-response writes).
    private var flushScheduled = false
    private var handshakeTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    /// Runs while the till leaves our responses unread (the channel is above its write-buffer high watermark).
    private var writeStallTimer: Scheduled<Void>?
    /// While draining: completes when the last response written so far has reached the socket. The connection
    /// closes only then, so an answer queued for the end-of-turn flush is never discarded by the close.
    private var lastDrainWrite: EventLoopFuture<Void>?
    /// The service calls of this connection's requests in flight: cancelled when the till disconnects, so a
    /// request nobody can receive is not sent to the database if it has not been yet.
    private var running: [UInt64: Task<Void, Never>] = [:]
    private var nextRunning: UInt64 = 0
    /// This connection's event loop as the preferred executor of its request tasks (made on first use).
    private var taskExecutor: EventLoopTaskExecutor?

    /// A goaway that may never be written (the till reads nothing) does not keep the connection open longer.
    static let goawayGraceMs: Int64 = 1_000

    init(service: POSService, limits: POSConnectionLimits, registry: POSConnectionRegistry, logger: Logger) {
        self.service = service
        self.limits = limits
        self.registry = registry
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        handshakeTimer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(limits.handshakeTimeoutMs))) {
            POSConnectionCloses.count(.handshakeTimeout)
            channel.close(promise: nil)
        }
        resetIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for task in running.values { task.cancel() }
        handshakeTimer?.cancel()
        idleTimer?.cancel()
        writeStallTimer?.cancel()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeStallTimer?.cancel()
            writeStallTimer = nil
        } else if writeStallTimer == nil {
            // Reading has stopped (BackPressureHandler); a till that never reads would otherwise sit here forever.
            let channel = context.channel
            let logger = self.logger
            writeStallTimer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(limits.writeStallTimeoutMs))) {
                logger.notice("pos connection closed: responses left unread", metadata: ["remote": "\(channel.remoteAddress?.description ?? "?")"])
                POSConnectionCloses.count(.writeStall)
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is POSGoawayEvent {
            draining = true
            lastDrainWrite = context.writeAndFlush(wrapOutboundOut(Frame(
                kind: .goaway, method: 0, requestID: 0, deadlineOrStatus: POSStatus.unavailable.rawValue, payload: ByteBuffer())))
            if inFlight == 0 { closeWhenWritten(context: context) }
        } else if event is POSTerminalRevokedEvent {
            goawayAndClose(.unauthenticated, code: "terminal_revoked", message: """
                this terminal was disabled or given a new secret; authenticate again with its current secret, or ask an admin
                """, context: context)
        } else if event is POSFrameReadTimeoutEvent {
            POSConnectionCloses.count(.frameReadTimeout)
            goawayAndClose(.deadlineExceeded, code: "frame_timeout",
                           message: "a frame was not complete \(limits.frameReadTimeoutMs) ms after its first byte", context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        resetIdleTimer(context: context)
        switch frame.kind {
        case .ping:
            write(Frame(kind: .pong, method: 0, requestID: frame.requestID, deadlineOrStatus: 0, payload: ByteBuffer()), context: context)
        case .request:
            handleRequest(frame, context: context)
        case .goaway:
            draining = true
            if inFlight == 0 { closeWhenWritten(context: context) }
        case .pong, .response:
            break  // a till answering our pings, or noise: harmless
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Framing errors leave the byte stream unusable: say why once, then close.
        guard !closing else { return }
        let message = (error as? FrameError)?.description ?? "\(error)"
        logger.notice("pos connection closed on error", metadata: ["error": "\(message)", "remote": "\(context.remoteAddress?.description ?? "?")"])
        POSConnectionCloses.count(.malformedFrame)
        goawayAndClose(.invalidArgument, code: "malformed_frame", message: message, context: context)
    }

    /// One goaway saying why, then close: once it is written, or after a short grace if the till is not reading.
    private func goawayAndClose(_ status: POSStatus, code: String, message: String, context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        let detail = POSService.errorPayload(code: code, message: message)
        let goaway = Frame(kind: .goaway, method: 0, requestID: 0, deadlineOrStatus: status.rawValue, payload: detail)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(goaway)).whenComplete { _ in channel.close(promise: nil) }
        context.eventLoop.scheduleTask(in: .milliseconds(Self.goawayGraceMs)) { channel.close(promise: nil) }
    }

    private func handleRequest(_ frame: Frame, context: ChannelHandlerContext) {
        guard !draining else {
            respond(frame, .unavailable, POSService.errorPayload(code: "draining", message: "server is shutting down; reconnect"), context: context, counted: false)
            return
        }
        guard inFlight < limits.maximumInFlight else {
            consecutiveRejections += 1
            guard consecutiveRejections <= limits.maximumConsecutiveRejections else {
                logger.notice("pos connection closed: flood past the in-flight limit", metadata: ["remote": "\(context.remoteAddress?.description ?? "?")"])
                POSConnectionCloses.count(.tooManyRejections)
                goawayAndClose(.resourceExhausted, code: "too_many_rejections", message: """
                    more than \(limits.maximumConsecutiveRejections) requests in a row over the in-flight limit of \(limits.maximumInFlight)
                    """, context: context)
                return
            }
            respond(frame, .resourceExhausted, POSService.errorPayload(
                code: "too_many_in_flight", message: "more than \(limits.maximumInFlight) requests in flight on this connection"),
                context: context, counted: false)
            return
        }
        guard registry.admitRequest(limit: limits.maximumServerInFlight) else {
            respond(frame, .resourceExhausted, POSService.errorPayload(
                code: "server_busy", message: "the server has \(limits.maximumServerInFlight) requests in flight; retry after a short backoff"),
                context: context, counted: false)
            return
        }
        consecutiveRejections = 0
        let method = Loyalty_Pos_V1_Method(rawValue: Int(frame.method))
        let deadlineMs = frame.deadlineOrStatus == 0 ? limits.defaultDeadlineMs : min(frame.deadlineOrStatus, limits.maximumDeadlineMs)
        let deadline = ContinuousClock.now + .milliseconds(Int64(deadlineMs))
        inFlight += 1

        switch (method, state) {
        case (.hello?, .awaitingHello):
            state = .helloInProgress
            run(frame, context: context) { service in
                await service.hello(frame.payload)
            } then: { handler, outcome in
                if case .challenge(let terminal, let authMessage) = outcome.auth {
                    handler.state = .challenged(terminal, authMessage: authMessage)
                } else {
                    handler.state = .awaitingHello
                }
            }
        case (.helloProof?, .challenged(let terminal, let authMessage)):
            state = .helloInProgress
            run(frame, context: context) { service in
                await service.helloProof(frame.payload, terminal: terminal, authMessage: authMessage)
            } then: { handler, outcome in
                if case .authenticated(let session) = outcome.auth {
                    handler.state = .authenticated(session)
                    handler.handshakeTimer?.cancel()
                    handler.registry.authenticated(context.channel, session: session)
                } else {
                    handler.state = .awaitingHello
                }
            }
        case (.ping?, _):
            respond(frame, .ok, ByteBuffer(), context: context, counted: true)
        case (.hello?, _), (.helloProof?, _):
            respond(frame, .failedPrecondition, POSService.errorPayload(
                code: "hello_out_of_order", message: "Hello then HelloProof, once per connection"), context: context, counted: true)
        case (.lookup?, .authenticated(let session)):
            // A cache hit is answered on this event loop; anything else goes on in a task.
            if let found = service.lookupOnLoop(frame.payload, eventLoop: context.eventLoop) {
                answerOnLoop(frame, found, session: session, deadline: deadline, context: context)
            } else {
                run(frame, context: context) { service in
                    await service.handle(method: method, payload: frame.payload, session: session, deadline: deadline)
                } then: { _, _ in }
            }
        case (_, .authenticated(let session)):
            run(frame, context: context) { service in
                await service.handle(method: method, payload: frame.payload, session: session, deadline: deadline)
            } then: { _, _ in }
        default:
            respond(frame, .unauthenticated, POSService.errorPayload(
                code: "hello_required", message: "authenticate with Hello before any other method"), context: context, counted: true)
        }
    }

    /// Writes a lookup's cache hit from the event loop, with no task; a miss or an unavailable cache continues to
    /// PostgreSQL in a task (`run`), with what the cache said.
    private func answerOnLoop(
        _ frame: Frame, _ found: EventLoopFuture<POSService.LoopLookup>, session: POSSession, deadline: ContinuousClock.Instant,
        context: ChannelHandlerContext
    ) {
        let started = ContinuousClock.now
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        found.hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(.answered(let outcome)):
                POSMetrics.record(method: frame.method, status: outcome.status, elapsed: ContinuousClock.now - started)
                handler.write(requestID: frame.requestID, method: frame.method, outcome.status, outcome.payload, context: context)
                handler.finishOne(context: context)
            case .success(.fallBack(let identifier, let cached)):
                handler.run(frame, context: context) { service in
                    await service.lookup(identifier, cached: cached, deadline: deadline)
                } then: { _, _ in }
            case .failure:
                // The cache answers failures as `unavailable`, so this does not happen; the whole lookup again if it does.
                handler.run(frame, context: context) { service in
                    await service.handle(method: .lookup, payload: frame.payload, session: session, deadline: deadline)
                } then: { _, _ in }
            }
        }
    }

    /// Runs the service call off the event loop and writes its answer back on it.
    private func run(
        _ frame: Frame, context: ChannelHandlerContext,
        _ work: @escaping @Sendable (POSService) async -> POSOutcome,
        then update: @escaping (POSConnectionHandler, POSOutcome) -> Void
    ) {
        let service = self.service
        let loopBound = NIOLoopBound((handler: self, context: context, update: update), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let requestID = frame.requestID
        let method = frame.method
        let key = nextRunning
        nextRunning &+= 1
        let executor = taskExecutor ?? EventLoopTaskExecutor(eventLoop)
        taskExecutor = executor
        running[key] = Task(executorPreference: executor) {
            let started = ContinuousClock.now
            let outcome = await work(service)
            POSMetrics.record(method: method, status: outcome.status, elapsed: ContinuousClock.now - started)
            @Sendable func answer() {
                let (handler, context, update) = loopBound.value
                handler.running[key] = nil
                update(handler, outcome)
                handler.write(requestID: requestID, method: method, outcome.status, outcome.payload, context: context)
                handler.finishOne(context: context)
            }
            // Normally still on the loop (the executor preference); a job the runtime ran elsewhere hops back.
            if eventLoop.inEventLoop { answer() } else { eventLoop.execute(answer) }
        }
    }

    private func respond(_ frame: Frame, _ status: POSStatus, _ payload: ByteBuffer, context: ChannelHandlerContext, counted: Bool) {
        write(requestID: frame.requestID, method: frame.method, status, payload, context: context)
        if counted { finishOne(context: context) }
    }

    private func write(requestID: UInt32, method: UInt16, _ status: POSStatus, _ payload: ByteBuffer, context: ChannelHandlerContext) {
        write(Frame(kind: .response, method: method, requestID: requestID, deadlineOrStatus: status.rawValue, payload: payload), context: context)
    }

    private func write(_ frame: Frame, context: ChannelHandlerContext) {
        guard context.channel.isActive, !closing else { return }
        if draining {
            // Few writes are left; each is tracked so the close waits for the last one.
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.write(wrapOutboundOut(frame), promise: promise)
            lastDrainWrite = promise.futureResult
        } else {
            context.write(wrapOutboundOut(frame), promise: nil)
        }
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            context.flush()
        }
    }

    private func finishOne(context: ChannelHandlerContext) {
        registry.finishRequest()
        inFlight -= 1
        assert(inFlight >= 0, "in-flight count went negative")
        if draining && inFlight == 0 { closeWhenWritten(context: context) }
    }

    /// The drain's end: every admitted request has its answer written; flush them, close once the last has left
    /// (or after a short grace, if the till stopped reading). A plain close here would fail the writes still
    /// waiting for the end-of-turn flush: that dropped answers to applied commits at shutdown.
    private func closeWhenWritten(context: ChannelHandlerContext) {
        let channel = context.channel
        context.flush()
        if let lastDrainWrite {
            lastDrainWrite.whenComplete { _ in channel.close(promise: nil) }
            context.eventLoop.scheduleTask(in: .milliseconds(Self.goawayGraceMs)) { channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private func resetIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let channel = context.channel
        idleTimer = context.eventLoop.scheduleTask(in: .milliseconds(Int64(limits.idleTimeoutMs))) {
            POSConnectionCloses.count(.idleTimeout)
            channel.close(promise: nil)
        }
    }
}

/// Sent down every connection's pipeline on graceful shutdown: answer what is in flight, refuse new work.
struct POSGoawayEvent: Sendable {}

/// Sent down a session's pipeline when its terminal was disabled or rotated: goaway `terminal_revoked`, close.
struct POSTerminalRevokedEvent: Sendable {}
