import NIOCore
import NIOEmbedded
import POSProtocol
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    func encoded(_ frame: Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        FrameEncoder.write(frame, into: &buffer)
        return buffer
    }

    @Test("a frame round-trips, also when it arrives one byte at a time")
    func roundTrip() throws {
        let frame = Frame(kind: .request, method: 3, requestID: 0xDEAD_BEEF, deadlineOrStatus: 250, payload: ByteBuffer(bytes: [1, 2, 3]))
        var bytes = encoded(frame)
        #expect(bytes.readableBytes == 4 + 12 + 3)
        #expect(bytes.getInteger(at: 0, as: UInt32.self) == 15)

        var decoder = FrameDecoder()
        #expect(try decoder.decode(buffer: &bytes) == frame)

        var partial = ByteBuffer()
        var whole = encoded(frame)
        var decoded: Frame?
        while let byte = whole.readSlice(length: 1) {
            var byte = byte
            partial.writeBuffer(&byte)
            if let frame = try decoder.decode(buffer: &partial) { decoded = frame }
        }
        #expect(decoded == frame)
    }

    @Test("an oversized length is refused from the prefix alone, before the body arrives")
    func oversizedRefusedEarly() {
        var decoder = FrameDecoder(maximumLength: 1_024)
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1_025))
        #expect(throws: FrameError.lengthTooLarge(1_025, maximum: 1_024)) { try decoder.decode(buffer: &buffer) }
        var huge = ByteBuffer()
        huge.writeInteger(UInt32.max)
        #expect(throws: FrameError.self) { try decoder.decode(buffer: &huge) }
    }

    @Test("a length shorter than the header, a wrong version and an unknown kind are refused")
    func malformedHeaders() {
        var decoder = FrameDecoder()
        var short = ByteBuffer()
        short.writeInteger(UInt32(11))
        #expect(throws: FrameError.lengthTooSmall(11)) { try decoder.decode(buffer: &short) }

        var version = encoded(Frame(kind: .ping, method: 0, requestID: 1, deadlineOrStatus: 0, payload: ByteBuffer()))
        version.setInteger(UInt8(2), at: 4)
        #expect(throws: FrameError.unsupportedVersion(2)) { try decoder.decode(buffer: &version) }

        var kind = encoded(Frame(kind: .ping, method: 0, requestID: 1, deadlineOrStatus: 0, payload: ByteBuffer()))
        kind.setInteger(UInt8(99), at: 5)
        #expect(throws: FrameError.unknownKind(99)) { try decoder.decode(buffer: &kind) }
    }

    @Test("several frames in one read decode in order through a channel")
    func pipelineOfFrames() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var bytes = ByteBuffer()
        for id in 1...3 {
            FrameEncoder.write(Frame(kind: .request, method: 1, requestID: UInt32(id), deadlineOrStatus: 0, payload: ByteBuffer(string: "x")), into: &bytes)
        }
        try channel.writeInbound(bytes)
        let ids = try (1...3).map { _ in try channel.readInbound(as: Frame.self)?.requestID }
        #expect(ids == [1, 2, 3])
        #expect(try channel.finish().isClean)
    }
}
