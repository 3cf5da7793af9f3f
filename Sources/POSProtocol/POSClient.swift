import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SwiftProtobuf

/// A POS protocol client: one TCP connection, many requests in flight, responses matched by request id (they may
/// arrive out of order). Used by the CLI, the load generator and the tests; a till vendor would write the same in
/// their own language from docs/pos-protocol.md.
public final class POSClient: Sendable {
    public struct Response: Sendable {
        public var status: POSStatus
        public var payload: ByteBuffer

        /// Decodes the payload as `Message` when the status is OK; otherwise throws `POSClientError.status`.
        public func decode<Message: SwiftProtobuf.Message>(_ type: Message.Type) throws -> Message {
            guard status == .ok else {
                let detail = try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: payload))
                throw POSClientError.status(status, code: detail?.code ?? "", message: detail?.message ?? "")
            }
            return try Message(serializedBytes: Array(buffer: payload))
        }
    }

    let channel: any Channel
    private let handler: POSClientHandler
    private let nextRequestID = NIOLockedValueBox<UInt32>(1)

    private init(channel: any Channel, handler: POSClientHandler) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects over plain TCP, or over TLS when `tls` is given (a server started with `--pos-tls-cert`); frames
    /// are the same either way.
    public static func connect(
        host: String, port: Int, maximumFrameBytes: Int = Frame.defaultMaximumLength, tls: POSClientTLS? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> POSClient {
        let tlsContext = try tls?.makeContext()
        let serverHostname = tls?.hostname(connectingTo: host)
        let handlerBox = NIOLockedValueBox<POSClientHandler?>(nil)
        let handshakeBox = NIOLockedValueBox<EventLoopFuture<Void>?>(nil)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = POSClientHandler()
                    handlerBox.withLockedValue { $0 = handler }
                    if let tlsContext {
                        let waiter = TLSHandshakeWaiter(done: channel.eventLoop.makePromise())
                        handshakeBox.withLockedValue { $0 = waiter.done.futureResult }
                        try channel.pipeline.syncOperations.addHandlers([
                            NIOSSLClientHandler(context: tlsContext, serverHostname: serverHostname), waiter,
                        ])
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maximumLength: maximumFrameBytes)),
                        MessageToByteHandler(FrameEncoder()),
                        handler,
                    ])
                }
            }
            .connect(host: host, port: port).get()
        if let handshake = handshakeBox.withLockedValue({ $0 }) {
            do { try await handshake.get() } catch {
                try? await channel.close()
                throw error
            }
        }
        let handler = handlerBox.withLockedValue { $0 }!
        return POSClient(channel: channel, handler: handler)
    }

    /// Sends one request and waits for its response.
    /// The goaway the server sent on this connection, if any: its status and payload (an ErrorDetail when the
    /// server said why).
    public var goaway: Response? { handler.goaway.withLockedValue { $0 } }

    public func call(
        _ method: Loyalty_Pos_V1_Method, _ message: some SwiftProtobuf.Message, deadlineMs: UInt32 = 5_000
    ) async throws -> Response {
        let bytes: [UInt8] = try message.serializedBytes()
        return try await call(method: UInt16(method.rawValue), payload: ByteBuffer(bytes: bytes), deadlineMs: deadlineMs)
    }

    public func call(method: UInt16, payload: ByteBuffer, deadlineMs: UInt32 = 5_000) async throws -> Response {
        let requestID = nextRequestID.withLockedValue { id -> UInt32 in
            defer { id = id &+ 1 == 0 ? 1 : id &+ 1 }
            return id
        }
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let frame = Frame(kind: .request, method: method, requestID: requestID, deadlineOrStatus: deadlineMs, payload: payload)
        let handler = self.handler
        channel.eventLoop.execute {
            handler.register(requestID, promise)
        }
        // If the connection is gone the write fails and never reaches the handler: fail the call at once.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in promise.fail(POSClientError.connectionClosed) }
        channel.writeAndFlush(frame, promise: written)
        return try await promise.futureResult.get()
    }

    /// Authenticates as `terminalID` with `secret` (two round trips; the secret never leaves this process).
    @discardableResult
    public func hello(terminalID: String, secret: [UInt8]) async throws -> Loyalty_Pos_V1_HelloAccepted {
        var request = Loyalty_Pos_V1_HelloRequest()
        request.protocolVersion = UInt32(Frame.version)
        request.terminalID = terminalID
        request.clientNonce = Data(TerminalAuth.randomBytes(24))
        let challenge = try await call(.hello, request).decode(Loyalty_Pos_V1_HelloChallenge.self)
        let authMessage = TerminalAuth.authMessage(
            terminalID: terminalID, clientNonce: Array(request.clientNonce), serverNonce: Array(challenge.serverNonce),
            salt: Array(challenge.salt))
        let (proof, expectedSignature) = TerminalAuth.clientProof(
            secret: secret, salt: Array(challenge.salt), iterations: Int(challenge.iterations), authMessage: authMessage)
        var proofMessage = Loyalty_Pos_V1_HelloProof()
        proofMessage.clientProof = Data(proof)
        let accepted = try await call(.helloProof, proofMessage).decode(Loyalty_Pos_V1_HelloAccepted.self)
        guard Array(accepted.serverSignature) == expectedSignature else { throw POSClientError.serverNotAuthentic }
        return accepted
    }

    /// Sends a ping frame and waits for the pong.
    public func ping() async throws {
        _ = try await call(.ping, Loyalty_Pos_V1_Empty())
    }

    public func close() async {
        try? await channel.close()
    }
}

public enum POSClientError: Error, Equatable, CustomStringConvertible {
    case status(POSStatus, code: String, message: String)
    case connectionClosed
    case goaway
    case serverNotAuthentic
    case tls(String)

    public var description: String {
        switch self {
        case .status(let status, let code, let message): "\(status) \(code): \(message)"
        case .connectionClosed: "the server closed the connection"
        case .goaway: "the server is shutting down (goaway); reconnect and retry with the same transaction id"
        case .serverNotAuthentic: "the server's signature did not match: not the real server"
        case .tls(let reason):
            "the TLS handshake failed (\(reason)); check that the server speaks TLS on this port, that its certificate chains to the CA given and names the host connected to"
        }
    }
}

/// Matches response frames to waiting requests by request id. Unchecked Sendable: its state is touched only on
/// its channel's event loop (pipeline callbacks, and `register` submitted with `eventLoop.execute`).
final class POSClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    private var waiting: [UInt32: EventLoopPromise<POSClient.Response>] = [:]
    let goaway = NIOLockedValueBox<POSClient.Response?>(nil)

    func register(_ requestID: UInt32, _ promise: EventLoopPromise<POSClient.Response>) {
        waiting[requestID] = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .response:
            let status = POSStatus(rawValue: frame.deadlineOrStatus) ?? .unknown
            waiting.removeValue(forKey: frame.requestID)?.succeed(.init(status: status, payload: frame.payload))
        case .goaway:
            // In-flight requests still get their answers; new ones should go to a new connection.
            let status = POSStatus(rawValue: frame.deadlineOrStatus) ?? .unknown
            goaway.withLockedValue { $0 = .init(status: status, payload: frame.payload) }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(Frame(kind: .pong, method: 0, requestID: frame.requestID, deadlineOrStatus: 0, payload: ByteBuffer())), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let pending = waiting
        waiting = [:]
        for promise in pending.values { promise.fail(POSClientError.connectionClosed) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    typealias OutboundOut = Frame
}
