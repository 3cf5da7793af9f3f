import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import POSProtocol
import ServiceLifecycle

/// The POS TCP listener. Binds at start (so a taken port fails start-up). On graceful shutdown it stops
/// accepting, sends `goaway` on every connection, lets in-flight requests finish (bounded by `drainTimeoutMs`),
/// then closes what is left.
public final class POSListener: Service {
    let host: String
    let port: Int
    let logger: Logger
    let drainTimeoutMs: Int
    private let serverChannel: any Channel
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>

    /// Upper bound on open connections; more are closed at once (a till reconnects; a flood does not grow memory).
    public static let defaultMaximumConnections = 10_000

    init(
        host: String, port: Int, service: POSService, limits: POSConnectionLimits, logger: Logger,
        maximumConnections: Int = POSListener.defaultMaximumConnections, drainTimeoutMs: Int = 10_000
    ) async throws {
        self.host = host
        self.port = port
        self.logger = logger
        self.drainTimeoutMs = drainTimeoutMs
        let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        self.connections = connections
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                let admitted = connections.withLockedValue { open -> Bool in
                    guard open.count < maximumConnections else { return false }
                    open[id] = channel
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: id) } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maximumLength: limits.maximumFrameBytes)),
                        MessageToByteHandler(FrameEncoder()),
                        POSConnectionHandler(service: service, limits: limits, logger: logger),
                    ])
                }
            }
        do {
            serverChannel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw StartupError.portUnavailable(what: "POS terminals", host: host, port: port, reason: "\(error)")
        }
    }

    public var boundPort: Int { serverChannel.localAddress?.port ?? port }
    public var openConnections: Int { connections.withLockedValue { $0.count } }

    public func run() async throws {
        logger.info("pos listener started", metadata: ["address": "\(host):\(boundPort)"])
        let channel = serverChannel
        // Cancellation (tests, a failing sibling service) stops it the same way as a graceful shutdown.
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
        await drain()
        logger.info("pos listener stopped")
    }

    /// Goaway to every connection; each closes itself once its in-flight requests are answered.
    func drain() async {
        let open = connections.withLockedValue { Array($0.values) }
        for connection in open { connection.pipeline.fireUserInboundEventTriggered(POSGoawayEvent()) }
        let deadline = ContinuousClock.now + .milliseconds(drainTimeoutMs)
        while openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let stragglers = connections.withLockedValue { Array($0.values) }
        if !stragglers.isEmpty {
            logger.warning("closing pos connections that did not drain in time", metadata: ["connections": "\(stragglers.count)"])
            for connection in stragglers { try? await connection.close() }
        }
    }
}
