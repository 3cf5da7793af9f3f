import Logging
import LoyaltyStore
import NIOCore
import NIOPosix
import NIOSSL
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
    /// Nil: plain TCP (loopback, tests, or behind a TLS proxy).
    let tls: ListenerTLS?
    private let serverChannel: any Channel
    private let connections: POSConnectionRegistry
    private let terminals: TerminalStore
    private let terminalRecheckInterval: Duration

    init(
        host: String, port: Int, service: POSService, limits: POSConnectionLimits, logger: Logger, drainTimeoutMs: Int = 10_000,
        tls: ListenerTLS? = nil
    ) async throws {
        precondition(limits.problems.isEmpty, "POS limits out of range: \(limits.problems.joined(separator: "; "))")
        self.host = host
        self.port = port
        self.logger = logger
        self.drainTimeoutMs = drainTimeoutMs
        self.tls = tls
        self.terminals = service.terminals
        self.terminalRecheckInterval = .milliseconds(limits.terminalRecheckIntervalMs)
        let connections = POSConnectionRegistry(
            maximumConnections: limits.maximumConnections, maximumUnauthenticated: limits.maximumUnauthenticatedConnections)
        self.connections = connections
        var bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Bounds what is queued for a till that does not read: above the high mark the channel turns unwritable,
            // BackPressureHandler stops reading its requests, and the write-stall timer starts.
            .childChannelOption(.writeBufferWaterMark, value: .init(
                low: limits.writeBufferLowWatermarkBytes, high: limits.writeBufferHighWatermarkBytes))
            .childChannelInitializer { channel in
                guard case .admitted = connections.admit(channel) else { return channel.close() }
                channel.closeFuture.whenComplete { _ in connections.remove(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    // TLS first: everything after it sees the same frames as over plain TCP. The handshake runs
                    // under the POS handshake timer, which starts when the TCP connection does.
                    if let tls {
                        try channel.pipeline.syncOperations.addHandlers([
                            NIOSSLServerHandler(context: tls.context), POSTLSFailureHandler(logger: logger),
                        ])
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        BackPressureHandler(),
                        FrameReadTimer(timeoutMs: limits.frameReadTimeoutMs),
                        ByteToMessageHandler(FrameDecoder(maximumLength: limits.maximumFrameBytes)),
                        MessageToByteHandler(FrameEncoder()),
                        POSConnectionHandler(service: service, limits: limits, registry: connections, logger: logger),
                    ])
                }
            }
        if limits.socketSendBufferBytes > 0 {
            bootstrap = bootstrap.childChannelOption(.socketOption(.so_sndbuf), value: .init(limits.socketSendBufferBytes))
        }
        do {
            serverChannel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw StartupError.portUnavailable(what: "POS terminals", host: host, port: port, reason: "\(error)")
        }
    }

    public var boundPort: Int { serverChannel.localAddress?.port ?? port }
    public var openConnections: Int { connections.openCount }
    public var unauthenticatedConnections: Int { connections.unauthenticatedCount }
    /// Requests admitted and not yet answered, over all connections.
    public var requestsInFlight: Int { connections.requestsInFlight }

    /// Bytes queued for writing over all open connections (what a till that does not read can make us hold).
    func bufferedOutboundBytes() async -> Int {
        var total = 0
        for channel in connections.channels {
            total += (try? await channel.getOption(.bufferedWritableBytes).get()) ?? 0
        }
        return total
    }

    public func run() async throws {
        logger.info("pos listener started", metadata: ["address": "\(host):\(boundPort)", "tls": "\(ListenerTLS.describe(tls))"])
        let channel = serverChannel
        // Cancellation (tests, a failing sibling service) stops it the same way as a graceful shutdown.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.recheckTerminalsUntilCancelled() }
            defer { group.cancelAll() }
            try await withTaskCancellationOrGracefulShutdownHandler {
                try await channel.closeFuture.get()
            } onCancelOrGracefulShutdown: {
                channel.close(promise: nil)
            }
        }
        await drain()
        logger.info("pos listener stopped")
    }

    private func recheckTerminalsUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: terminalRecheckInterval)
            if Task.isCancelled { return }
            await closeRevokedSessions()
        }
    }

    /// Closes every session whose terminal was disabled, deleted or given a new secret since it authenticated.
    /// When PostgreSQL cannot answer, sessions stay open (the tills keep working on what they proved) and the next
    /// round tries again. Returns how many sessions were closed.
    @discardableResult
    func closeRevokedSessions() async -> Int {
        let sessions = connections.authenticatedSessions
        guard !sessions.isEmpty else { return 0 }
        var records: [String: TerminalRecord] = [:]
        let terminalIDs = Array(Set(sessions.map(\.session.terminalID))).sorted()
        var start = 0
        while start < terminalIDs.count {
            let chunk = Array(terminalIDs[start..<min(start + 1_000, terminalIDs.count)])
            start += chunk.count
            do {
                records.merge(try await terminals.records(terminalIDs: chunk)) { _, new in new }
            } catch {
                logger.warning("could not recheck terminals; their sessions stay open", metadata: ["error": "\(PostgresErrorText.describe(error))"])
                return 0
            }
        }
        var closed = 0
        for (channel, session) in sessions {
            if let record = records[session.terminalID], record.isActive, record.storedKey == session.storedKey { continue }
            logger.notice("closing a session of a disabled or rotated terminal", metadata: ["terminal": "\(session.terminalID)"])
            POSConnectionCloses.count(.terminalRevoked)
            // A goaway that says why, then close (the handler bounds the wait for a till that does not read).
            channel.pipeline.fireUserInboundEventTriggered(POSTerminalRevokedEvent())
            closed += 1
        }
        return closed
    }

    /// Goaway to every connection; each closes itself once its in-flight requests are answered.
    func drain() async {
        let open = connections.channels
        for connection in open { connection.pipeline.fireUserInboundEventTriggered(POSGoawayEvent()) }
        let deadline = ContinuousClock.now + .milliseconds(drainTimeoutMs)
        while openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let stragglers = connections.channels
        if !stragglers.isEmpty {
            logger.warning("closing pos connections that did not drain in time", metadata: ["connections": "\(stragglers.count)"])
            for connection in stragglers { try? await connection.close() }
        }
    }
}
