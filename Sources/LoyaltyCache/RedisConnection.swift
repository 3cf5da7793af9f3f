import NIOCore
import NIOPosix

/// A command travelling down the pipeline with the promise its reply completes.
struct RedisRequest {
    var arguments: [[UInt8]]
    var promise: EventLoopPromise<RedisValue>
}

/// Matches replies to commands in order (Redis answers each connection's commands in the order sent), so many
/// commands can be in flight on one connection. Bounded: past `maximumPending` a command fails at once.
final class RedisRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = RedisValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = [[UInt8]]

    private var pending = CircularBuffer<EventLoopPromise<RedisValue>>(initialCapacity: 64)
    /// Commands written in one event-loop turn leave in one flush (one write system call) instead of one each.
    private var flushScheduled = false
    private let maximumPending: Int
    private let target: String
    /// For a subscribed connection: receives the pub/sub messages (`message` arrays), which answer no command.
    private let onPush: (@Sendable (RedisValue) -> Void)?

    init(maximumPending: Int, target: String, onPush: (@Sendable (RedisValue) -> Void)? = nil) {
        precondition(maximumPending > 0)
        self.maximumPending = maximumPending
        self.target = target
        self.onPush = onPush
    }

    /// A RESP2 pub/sub message: `["message", channel, payload]`. Replies to commands sent while subscribed
    /// (SUBSCRIBE's confirmation, PING's `["pong", ""]`) have other first elements.
    static func isPush(_ reply: RedisValue) -> Bool {
        guard case .array(let parts) = reply, parts.count == 3, parts[0] == .bulkString(Array("message".utf8)) else {
            return false
        }
        return true
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        guard pending.count < maximumPending else {
            request.promise.fail(CacheError.tooManyPendingCommands(limit: maximumPending))
            promise?.fail(CacheError.tooManyPendingCommands(limit: maximumPending))
            return
        }
        pending.append(request.promise)
        context.write(wrapOutboundOut(request.arguments), promise: promise)
        guard !flushScheduled else { return }
        flushScheduled = true
        // Runs after every write already queued on this loop, so none of them is left unflushed.
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        if let onPush, Self.isPush(reply) { return onPush(reply) }
        guard let promise = pending.popFirst() else {
            // A reply nobody asked for: the stream is out of step, so nothing on it can be trusted.
            context.fireErrorCaught(CacheError.protocolError("unexpected reply from \(target)"))
            context.close(promise: nil)
            return
        }
        promise.succeed(reply)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error as? CacheError ?? .protocolError(String(describing: error)))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed(target: target))
        context.fireChannelInactive()
    }

    private func failAll(_ error: CacheError) {
        while let promise = pending.popFirst() { promise.fail(error) }
    }
}

/// One TCP connection to Redis with the hiredis codec in its pipeline.
struct RedisConnection: Sendable {
    let channel: any Channel
    let target: String

    /// - Parameter onPush: for a connection that will subscribe: where its pub/sub messages go (on its event loop).
    static func connect(
        to url: RedisURL, on eventLoopGroup: any EventLoopGroup, connectTimeoutMs: Int, maximumPending: Int,
        onPush: (@Sendable (RedisValue) -> Void)? = nil
    ) async throws(CacheError) -> RedisConnection {
        let target = "\(url.host):\(url.port)"
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(.milliseconds(Int64(connectTimeoutMs)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        MessageToByteHandler(RedisCommandEncoder()),
                        ByteToMessageHandler(RedisReplyDecoder()),
                        RedisRequestHandler(maximumPending: maximumPending, target: target, onPush: onPush),
                    ])
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: url.host, port: url.port).get()
        } catch {
            throw .unreachable(target: target, reason: String(describing: error))
        }
        let connection = RedisConnection(channel: channel, target: target)
        do {
            if let password = url.password {
                try await connection.expectOK(["AUTH", password], timeoutMs: connectTimeoutMs)
            }
            if url.database != 0 {
                try await connection.expectOK(["SELECT", String(url.database)], timeoutMs: connectTimeoutMs)
            }
        } catch {
            try? await channel.close()
            throw error
        }
        return connection
    }

    var isActive: Bool { channel.isActive }

    /// Sends one command. On timeout the connection is closed: the late reply would otherwise be matched to the
    /// next command.
    func send(_ arguments: [[UInt8]], timeoutMs: Int) async throws(CacheError) -> RedisValue {
        do {
            return try await sendFuture(arguments, timeoutMs: timeoutMs).get()
        } catch let error as CacheError {
            throw error
        } catch {
            throw .protocolError(String(describing: error))
        }
    }

    /// `send` without Swift concurrency: the reply (an error reply as `CacheError.server`) completes the future on
    /// this connection's event loop.
    func sendFuture(_ arguments: [[UInt8]], timeoutMs: Int) -> EventLoopFuture<RedisValue> {
        let promise = channel.eventLoop.makePromise(of: RedisValue.self)
        let channel = self.channel
        let target = self.target
        let timeout = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeoutMs))) {
            promise.fail(CacheError.timeout(target: target, timeoutMs: timeoutMs))
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        // A write that fails (the channel closed under us) never reaches the handler: fail the reply at once
        // instead of letting it wait for the timeout. A second completion of the promise is ignored by NIO.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in promise.fail(CacheError.connectionClosed(target: target)) }
        // The request handler flushes once per event-loop turn.
        channel.write(RedisRequest(arguments: arguments, promise: promise), promise: written)
        return promise.futureResult.flatMapThrowing { reply in
            if case .error(let message) = reply { throw CacheError.server(message) }
            return reply
        }
    }

    private func expectOK(_ arguments: [String], timeoutMs: Int) async throws(CacheError) {
        let reply = try await send(arguments.map { Array($0.utf8) }, timeoutMs: timeoutMs)
        guard reply == .simpleString("OK") else { throw .protocolError("expected OK to \(arguments[0]), got \(reply)") }
    }

    func close() async {
        try? await channel.close()
    }
}
