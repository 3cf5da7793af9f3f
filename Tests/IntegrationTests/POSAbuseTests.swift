import Foundation
@testable import LoyaltyServer
import LoyaltyStore
import LoyaltyTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import POSProtocol
import Testing

/// Abusive POS clients against a real server, each next to a well-behaved terminal that must keep getting answers.
/// Time bounds are generous (the suite runs in parallel on small, busy machines): they say "answered" and
/// "closed eventually", not how fast.
@Suite("POS connection abuse")
struct POSAbuseTests {
    /// What a well-behaved terminal's request may take while the server is being abused (debug build, busy host).
    static let servedWithin = Duration.seconds(5)

    @Test("250 idle unauthenticated connections: a terminal is still served, and the idle ones close at the handshake timeout")
    func idleConnections() async throws {
        var limits = POSConnectionLimits()
        // Long enough for all of them to be open while the terminal is served, short enough for a quick test.
        limits.handshakeTimeoutMs = 15_000
        try await POSHarness.with(limits: limits) { harness in
            try await createMember(harness, card: "CARD-IDLE")
            let idle = try await RawPOSConnection.open(count: 250, port: harness.port)

            let pos = try await within(Self.servedWithin) { try await harness.authenticated() }
            try await servedLookups(pos, card: "CARD-IDLE", count: 10)
            #expect(idle.filter { !$0.isClosed }.count >= 200, "served while the idle crowd was there")

            try await eventually(within: .seconds(40)) { harness.listener.openConnections == 1 }
            try await eventually(within: .seconds(5)) { idle.allSatisfy(\.isClosed) }
            try await within(Self.servedWithin) { try await pos.ping() }
            await pos.close()
        }
    }

    @Test("past the unauthenticated cap the oldest unauthenticated connection makes room; authenticated ones are never evicted")
    func unauthenticatedCap() async throws {
        var limits = POSConnectionLimits()
        limits.maximumUnauthenticatedConnections = 50
        limits.handshakeTimeoutMs = 60_000
        try await POSHarness.with(limits: limits) { harness in
            try await createMember(harness, card: "CARD-CAP")
            var idle: [RawPOSConnection] = []
            for _ in 0..<200 { idle.append(try await RawPOSConnection.connect(port: harness.port)) }
            try await eventually(within: .seconds(10)) { idle.filter { !$0.isClosed }.count <= 50 }
            #expect(harness.listener.unauthenticatedConnections <= 50)
            // Oldest first (away from the boundary: two accepts on different event loops may swap places).
            #expect(idle.prefix(140).allSatisfy { $0.isClosed })
            #expect(idle.suffix(40).allSatisfy { !$0.isClosed })

            // A terminal connecting now is the newest: it has time to authenticate, and afterwards is not counted.
            let pos = try await within(Self.servedWithin) { try await harness.authenticated() }
            for _ in 0..<100 { idle.append(try await RawPOSConnection.connect(port: harness.port)) }
            try await eventually(within: .seconds(10)) { harness.listener.unauthenticatedConnections <= 50 }
            try await servedLookups(pos, card: "CARD-CAP", count: 5)
            for connection in idle { await connection.close() }
            await pos.close()
        }
    }

    @Test("at the open-connection cap a new connection is closed at once; the open ones keep working")
    func connectionCap() async throws {
        var limits = POSConnectionLimits()
        limits.maximumConnections = 3
        try await POSHarness.with(limits: limits) { harness in
            var tills: [POSClient] = []
            for _ in 0..<3 { tills.append(try await harness.authenticated()) }
            let extra = try await RawPOSConnection.connect(port: harness.port)
            try await eventually(within: .seconds(5)) { extra.isClosed }
            #expect(harness.listener.openConnections == 3)
            for till in tills {
                try await within(Self.servedWithin) { try await till.ping() }
                await till.close()
            }
        }
    }

    @Test("a sender trickling a frame is closed after the frame read timeout with a goaway; another terminal is served")
    func slowSender() async throws {
        var limits = POSConnectionLimits()
        // 2 s against a 300 ms pause: a loaded machine can stretch the pause several times over.
        limits.frameReadTimeoutMs = 2_000
        limits.idleTimeoutMs = 60_000
        try await POSHarness.with(limits: limits) { harness in
            try await createMember(harness, card: "CARD-SLOW")
            let pos = try await harness.authenticated()
            let slow = try await RawPOSConnection.connect(port: harness.port)
            try await slow.hello(terminalID: harness.terminalID, secret: harness.secret)

            // A frame split in two with a short pause is fine: the timeout is for the whole frame, not per read.
            let ping = RawPOSConnection.encode(Frame(kind: .request, method: 3, requestID: 90, deadlineOrStatus: 0, payload: ByteBuffer()))
            try await slow.send(ping.getSlice(at: 0, length: 6)!)
            try await Task.sleep(for: .milliseconds(300))
            try await slow.send(ping.getSlice(at: 6, length: ping.readableBytes - 6)!)
            #expect(try await slow.nextFrame(within: Self.servedWithin).requestID == 90)

            // One byte every 400 ms: each arrives well inside any idle timeout, the frame would take 6.4 s.
            let started = ContinuousClock.now
            let trickle = Task {
                for index in 0..<ping.readableBytes {
                    try await slow.send(ping.getSlice(at: index, length: 1)!)
                    try await Task.sleep(for: .milliseconds(400))
                }
            }
            try await servedLookups(pos, card: "CARD-SLOW", count: 5)
            try await eventually(within: .seconds(6)) { slow.isClosed }
            let elapsed = ContinuousClock.now - started
            trickle.cancel()
            #expect(elapsed >= .milliseconds(1_900))
            #expect(elapsed < .milliseconds(6_000), "closed by the frame read timeout, before the frame could complete")
            let goaway = slow.receivedFrames().last
            #expect(goaway?.kind == .goaway)
            #expect(goaway?.deadlineOrStatus == POSStatus.deadlineExceeded.rawValue)
            #expect(goaway.map { errorCode($0.payload) } == "frame_timeout")
            try await servedLookups(pos, card: "CARD-SLOW", count: 2)
            await pos.close()
        }
    }

    @Test("a flood past the in-flight limit gets RESOURCE_EXHAUSTED, then a goaway and close; another terminal is served")
    func inFlightFlood() async throws {
        var limits = POSConnectionLimits()
        limits.maximumInFlight = 4
        limits.maximumConsecutiveRejections = 100
        try await POSHarness.with(limits: limits) { harness in
            try await createMember(harness, card: "CARD-FLOOD")
            let pos = try await harness.authenticated()
            let flood = try await RawPOSConnection.connect(port: harness.port)
            try await flood.hello(terminalID: harness.terminalID, secret: harness.secret)

            let request = try lookup(card: "CARD-FLOOD").serializedBytes() as [UInt8]
            let lookupMethod = UInt16(Loyalty_Pos_V1_Method.lookup.rawValue)
            let floodTask = Task {
                var requestID: UInt32 = 1_000
                let deadline = ContinuousClock.now + .seconds(15)
                while !Task.isCancelled && !flood.isClosed && ContinuousClock.now < deadline {
                    var batch = ByteBuffer()
                    for _ in 0..<500 {
                        requestID += 1
                        FrameEncoder.write(
                            Frame(kind: .request, method: lookupMethod, requestID: requestID, deadlineOrStatus: 0, payload: ByteBuffer(bytes: request)),
                            into: &batch)
                    }
                    try? await flood.send(batch)
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            try await servedLookups(pos, card: "CARD-FLOOD", count: 10)
            try await eventually(within: .seconds(15)) { flood.isClosed }
            floodTask.cancel()

            let frames = flood.receivedFrames()
            let rejected = frames.filter { $0.kind == .response && $0.deadlineOrStatus == POSStatus.resourceExhausted.rawValue }
            #expect(rejected.count >= 100)
            #expect(rejected.allSatisfy { errorCode($0.payload) == "too_many_in_flight" })
            let goaway = frames.last
            #expect(goaway?.kind == .goaway)
            #expect(goaway?.deadlineOrStatus == POSStatus.resourceExhausted.rawValue)
            #expect(goaway.map { errorCode($0.payload) } == "too_many_rejections")
            try await servedLookups(pos, card: "CARD-FLOOD", count: 2)
            await pos.close()
        }
    }

    @Test("a client that floods pings and never reads is closed at the write-stall timeout; queued bytes stay bounded")
    func neverReads() async throws {
        var limits = POSConnectionLimits()
        limits.writeBufferHighWatermarkBytes = 16 * 1024
        limits.writeStallTimeoutMs = 1_500
        limits.handshakeTimeoutMs = 60_000
        limits.idleTimeoutMs = 60_000
        try await POSHarness.with(limits: limits) { harness in
            try await createMember(harness, card: "CARD-DEAF")
            let pos = try await harness.authenticated()
            let deaf = try await RawPOSConnection.connect(port: harness.port, reads: false)

            var pings = ByteBuffer()
            for id in 1...1_000 as ClosedRange<UInt32> {
                FrameEncoder.write(Frame(kind: .ping, method: 0, requestID: id, deadlineOrStatus: 0, payload: ByteBuffer()), into: &pings)
            }
            let floodTask = Task {
                let deadline = ContinuousClock.now + .seconds(20)
                while !Task.isCancelled && harness.listener.openConnections > 1 && ContinuousClock.now < deadline {
                    // Written without waiting for completion (which never comes once the server stops reading).
                    if deaf.channel.isWritable { deaf.channel.writeAndFlush(pings, promise: nil) }
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
            var mostQueued = 0
            let closeDeadline = ContinuousClock.now + .seconds(20)
            while harness.listener.openConnections > 1 && ContinuousClock.now < closeDeadline {
                mostQueued = max(mostQueued, await harness.listener.bufferedOutboundBytes())
                try await Task.sleep(for: .milliseconds(10))
            }
            floodTask.cancel()
            #expect(harness.listener.openConnections == 1, "the deaf client was closed; the terminal was not")
            // The watermark plus what one read turn (4 reads of at most 64 KiB of pings) can answer.
            #expect(mostQueued <= 1024 * 1024)
            try await servedLookups(pos, card: "CARD-DEAF", count: 3)
            await deaf.close()
            await pos.close()
        }
    }

    @Test("Hello without HelloProof is closed at the handshake timeout; an authenticated terminal is not")
    func halfOpenHandshake() async throws {
        var limits = POSConnectionLimits()
        // The terminal itself must authenticate within it too (client-side key derivation in a debug build).
        limits.handshakeTimeoutMs = 3_000
        try await POSHarness.with(limits: limits) { harness in
            let pos = try await harness.authenticated()
            let started = ContinuousClock.now
            let halfOpen = try await RawPOSConnection.connect(port: harness.port)
            var hello = Loyalty_Pos_V1_HelloRequest()
            hello.protocolVersion = 1
            hello.terminalID = harness.terminalID
            hello.clientNonce = Data(TerminalAuth.randomBytes(24))
            try await halfOpen.send(frame: Frame(kind: .request, method: 1, requestID: 1, deadlineOrStatus: 0,
                                                 payload: ByteBuffer(bytes: try hello.serializedBytes() as [UInt8])))
            let challenge = try await halfOpen.nextFrame(within: Self.servedWithin)
            #expect(challenge.deadlineOrStatus == POSStatus.ok.rawValue)
            try await eventually(within: .seconds(10)) { halfOpen.isClosed }
            #expect(ContinuousClock.now - started >= .milliseconds(2_900))
            try await within(Self.servedWithin) { try await pos.ping() }
            await pos.close()
        }
    }

    @Test("an authenticated terminal that sends nothing is closed at the idle timeout; one that pings stays")
    func idleTimeout() async throws {
        var limits = POSConnectionLimits()
        // Hello to HelloProof (client-side key derivation) must fit in it too.
        // Generous against stalls of a test task while the whole suite runs in parallel on two cores.
        limits.idleTimeoutMs = 6_000
        try await POSHarness.with(limits: limits) { harness in
            let quiet = try await harness.authenticated()
            let pinging = try await harness.authenticated()
            let started = ContinuousClock.now
            while ContinuousClock.now - started < .milliseconds(13_000) {
                try await within(Self.servedWithin) { try await pinging.ping() }
                try await Task.sleep(for: .milliseconds(200))
            }
            await #expect(throws: (any Error).self) { try await within(Self.servedWithin) { try await quiet.ping() } }
            try await within(Self.servedWithin) { try await pinging.ping() }
            await quiet.close()
            await pinging.close()
        }
    }

    @Test("handshake misuse gets its code and the connection stays; broken frames get a malformed_frame goaway and close; a truncated frame at EOF is dropped and the connection closed")
    func handshakeAndFramingMisuse() async throws {
        try await POSHarness.with { harness in
            func code(_ response: POSClient.Response) -> String {
                "\(response.status)/\(errorCode(response.payload) ?? "")"
            }
            func hello(version: UInt32 = 1, nonceBytes: Int = 24) -> Loyalty_Pos_V1_HelloRequest {
                var request = Loyalty_Pos_V1_HelloRequest()
                request.protocolVersion = version
                request.terminalID = harness.terminalID
                request.clientNonce = Data(TerminalAuth.randomBytes(nonceBytes))
                return request
            }
            let fresh = try await harness.connect()
            #expect(code(try await fresh.call(.helloProof, Loyalty_Pos_V1_HelloProof())) == "failedPrecondition/hello_out_of_order")
            #expect(code(try await fresh.call(.hello, hello(version: 2))) == "failedPrecondition/unsupported_version")
            #expect(code(try await fresh.call(.hello, hello(nonceBytes: 8))) == "invalidArgument/bad_nonce")
            try await fresh.hello(terminalID: harness.terminalID, secret: harness.secret)
            #expect(code(try await fresh.call(.hello, hello())) == "failedPrecondition/hello_out_of_order")
            #expect(code(try await fresh.call(.lookup, Loyalty_Pos_V1_LookupRequest())) == "invalidArgument/missing_identifier")
            #expect(code(try await fresh.call(.lookup, lookup(card: String(repeating: "9", count: 40)))) == "invalidArgument/bad_card")
            try await fresh.ping()

            // Header bytes after the length: version, kind, method (2), request id (4), deadline (4).
            let broken: [(String, [UInt8])] = [
                ("version 2", [0, 0, 0, 12, 2, 1, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0]),
                ("kind 9", [0, 0, 0, 12, 1, 9, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0]),
                ("length 4", [0, 0, 0, 4, 1, 1, 0, 3]),
            ]
            for (name, bytes) in broken {
                let raw = try await RawPOSConnection.connect(port: harness.port)
                try await raw.send(ByteBuffer(bytes: bytes))
                try await eventually(within: .seconds(5)) { raw.isClosed }
                let goaway = raw.receivedFrames().last
                #expect(goaway?.kind == .goaway, "\(name)")
                #expect(goaway?.deadlineOrStatus == POSStatus.invalidArgument.rawValue, "\(name)")
                #expect(goaway.map { errorCode($0.payload) } == "malformed_frame", "\(name)")
            }

            let truncated = try await RawPOSConnection.connect(port: harness.port)
            try await truncated.send(ByteBuffer(bytes: [0, 0, 0, 12, 1, 1, 0, 3, 0, 0]))
            try await truncated.channel.close(mode: .output)
            try await eventually(within: .seconds(5)) { truncated.isClosed }
            #expect(truncated.receivedFrames().allSatisfy { $0.kind == .goaway }, "no response to a frame that never ended")
            try await within(Self.servedWithin) { try await fresh.ping() }
            await fresh.close()
        }
    }
}

// MARK: Helpers

private func createMember(_ harness: POSHarness, card: String) async throws {
    _ = try await MemberStore(client: harness.client, logger: TestServices.logger).create(NewMember(cardNumber: card))
}

/// Lookups one after another, each answered OK within `POSAbuseTests.servedWithin`.
private func servedLookups(_ pos: POSClient, card: String, count: Int) async throws {
    for _ in 0..<count {
        let status = try await within(POSAbuseTests.servedWithin) { try await pos.call(.lookup, lookup(card: card)).status }
        #expect(status == .ok)
    }
}

private func errorCode(_ payload: ByteBuffer) -> String? {
    (try? Loyalty_Pos_V1_ErrorDetail(serializedBytes: Array(buffer: payload)))?.code
}

struct TimedOut: Error {}

/// `body`'s result, or `TimedOut` after `limit`.
private func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimedOut()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Polls `condition` until it holds; records an issue and throws if it still does not after `limit`.
func eventually(within limit: Duration, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    guard await condition() else {
        Issue.record("condition still false after \(limit)", sourceLocation: sourceLocation)
        throw TimedOut()
    }
}

/// A bare TCP connection to the POS port for clients that misbehave on purpose: bytes out as given, frames in
/// collected (or, with `reads: false`, nothing read at all).
final class RawPOSConnection: Sendable {
    let channel: any Channel
    private let inbox: Inbox

    private init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    static func connect(port: Int, reads: Bool = true) async throws -> RawPOSConnection {
        let inbox = Inbox()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox: inbox)) }
            }
        if !reads {
            // Nothing is read, and the kernel's receive buffer is small, so the server's answers back up quickly.
            bootstrap = bootstrap.channelOption(.autoRead, value: false).channelOption(.socketOption(.so_rcvbuf), value: 4_096)
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawPOSConnection(channel: channel, inbox: inbox)
    }

    /// `count` connections, opened a few at a time.
    static func open(count: Int, port: Int) async throws -> [RawPOSConnection] {
        var opened: [RawPOSConnection] = []
        for start in stride(from: 0, to: count, by: 25) {
            try await withThrowingTaskGroup(of: RawPOSConnection.self) { group in
                for _ in start..<min(count, start + 25) { group.addTask { try await connect(port: port) } }
                for try await connection in group { opened.append(connection) }
            }
        }
        return opened
    }

    static func encode(_ frame: Frame) -> ByteBuffer {
        var bytes = ByteBuffer()
        FrameEncoder.write(frame, into: &bytes)
        return bytes
    }

    var isClosed: Bool { !channel.isActive }

    func send(_ bytes: ByteBuffer) async throws { try await channel.writeAndFlush(bytes) }
    func send(frame: Frame) async throws { try await send(Self.encode(frame)) }

    /// Every frame received so far, oldest first (they stay for later calls).
    func receivedFrames() -> [Frame] { inbox.state.withLockedValue { $0.frames } }

    /// The next frame not yet returned by this method.
    func nextFrame(within limit: Duration) async throws -> Frame {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let next = inbox.state.withLockedValue { state -> Frame? in
                guard state.taken < state.frames.count else { return nil }
                state.taken += 1
                return state.frames[state.taken - 1]
            }
            if let next { return next }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TimedOut()
    }

    /// SCRAM Hello over raw frames, as `POSClient.hello` does.
    func hello(terminalID: String, secret: [UInt8]) async throws {
        var request = Loyalty_Pos_V1_HelloRequest()
        request.protocolVersion = 1
        request.terminalID = terminalID
        request.clientNonce = Data(TerminalAuth.randomBytes(24))
        try await send(frame: Frame(kind: .request, method: 1, requestID: 1, deadlineOrStatus: 0,
                                    payload: ByteBuffer(bytes: try request.serializedBytes() as [UInt8])))
        let challengeFrame = try await nextFrame(within: POSAbuseTests.servedWithin)
        let challenge = try Loyalty_Pos_V1_HelloChallenge(serializedBytes: Array(buffer: challengeFrame.payload))
        let authMessage = TerminalAuth.authMessage(
            terminalID: terminalID, clientNonce: Array(request.clientNonce), serverNonce: Array(challenge.serverNonce),
            salt: Array(challenge.salt))
        let (proof, _) = TerminalAuth.clientProof(
            secret: secret, salt: Array(challenge.salt), iterations: Int(challenge.iterations), authMessage: authMessage)
        var proofMessage = Loyalty_Pos_V1_HelloProof()
        proofMessage.clientProof = Data(proof)
        try await send(frame: Frame(kind: .request, method: 2, requestID: 2, deadlineOrStatus: 0,
                                    payload: ByteBuffer(bytes: try proofMessage.serializedBytes() as [UInt8])))
        let accepted = try await nextFrame(within: POSAbuseTests.servedWithin)
        guard accepted.deadlineOrStatus == POSStatus.ok.rawValue else { throw POSClientError.connectionClosed }
    }

    func close() async { try? await channel.close() }

    final class Inbox: Sendable {
        struct State {
            var bytes = ByteBuffer()
            var frames: [Frame] = []
            var taken = 0
        }
        let state = NIOLockedValueBox(State())
    }

    private final class InboxHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let inbox: Inbox

        init(inbox: Inbox) { self.inbox = inbox }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            inbox.state.withLockedValue { state in
                state.bytes.writeBuffer(&bytes)
                var decoder = FrameDecoder(maximumLength: 16 * 1024 * 1024)
                while let frame = try? decoder.decode(buffer: &state.bytes) { state.frames.append(frame) }
                state.bytes.discardReadBytes()
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
