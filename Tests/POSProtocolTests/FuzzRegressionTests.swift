import Foundation
import NIOCore
import NIOEmbedded
import POSProtocol
import SwiftProtobuf
import Testing

/// Inputs the fuzzers (fuzz/, docs/fuzzing.md) found interesting, replayed as ordinary tests: the boundary cases
/// of the frame layout, and the whole committed seed corpus. A crash the fuzzer finds gets its input added here.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    /// What a decoder made of a stream: the frames, then the framing error that stopped it, if any.
    struct Outcome: Equatable {
        var frames: [Frame] = []
        var error: FrameError?
        /// Bytes left over that the decoder is waiting to complete.
        var waitingBytes = 0
    }

    static func decodeInOneRead(_ bytes: [UInt8], maximumLengthBytes: Int = Frame.defaultMaximumLength) -> Outcome {
        var decoder = FrameDecoder(maximumLength: maximumLengthBytes)
        var buffer = ByteBuffer(bytes: bytes)
        var outcome = Outcome()
        do {
            while let frame = try decoder.decode(buffer: &buffer) { outcome.frames.append(frame) }
        } catch {
            outcome.error = error as? FrameError
        }
        outcome.waitingBytes = outcome.error == nil ? buffer.readableBytes : 0
        return outcome
    }

    /// As the server reads: `ByteToMessageHandler(FrameDecoder)`, here one byte per read.
    static func decodeByteByByte(_ bytes: [UInt8], maximumLengthBytes: Int = Frame.defaultMaximumLength) -> Outcome {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumLength: maximumLengthBytes)))
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var outcome = Outcome()
        for (index, byte) in bytes.enumerated() {
            do {
                try channel.writeInbound(ByteBuffer(bytes: [byte]))
            } catch {
                outcome.error = error as? FrameError
                break
            }
            while let frame = try? channel.readInbound(as: Frame.self) { outcome.frames.append(frame) }
            if index == bytes.count - 1 {
                let consumedBytes = outcome.frames.reduce(0) { $0 + 16 + $1.payload.readableBytes }
                outcome.waitingBytes = bytes.count - consumedBytes
            }
        }
        while let frame = try? channel.readInbound(as: Frame.self) { outcome.frames.append(frame) }
        return outcome
    }

    static func encoded(_ frames: [Frame]) -> [UInt8] {
        var buffer = ByteBuffer()
        for frame in frames { FrameEncoder.write(frame, into: &buffer) }
        return Array(buffer: buffer)
    }

    static let ping: [UInt8] = [0, 0, 0, 12, 1, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]

    // MARK: Frame layout boundaries

    @Test("a length over the limit is refused from the 4-byte prefix, without waiting for the body", arguments: [
        (UInt32(65_537), FrameError.lengthTooLarge(65_537, maximum: 65_536)),
        (UInt32.max, FrameError.lengthTooLarge(UInt32.max, maximum: 65_536)),
        (UInt32(0x8000_0000), FrameError.lengthTooLarge(0x8000_0000, maximum: 65_536)),
        (UInt32(0), FrameError.lengthTooSmall(0)),
        (UInt32(11), FrameError.lengthTooSmall(11)),
    ])
    func lengthRefusedFromPrefix(lengthBytes: UInt32, expected: FrameError) {
        let prefix = withUnsafeBytes(of: lengthBytes.bigEndian) { Array($0) }
        #expect(Self.decodeInOneRead(prefix).error == expected)
        #expect(Self.decodeByteByByte(prefix).error == expected)
    }

    @Test("lengths 12 and 65,536 are accepted: the decoder waits for the body")
    func lengthLimitsInclusive() {
        for lengthBytes: UInt32 in [12, 65_536] {
            let prefix = withUnsafeBytes(of: lengthBytes.bigEndian) { Array($0) }
            #expect(Self.decodeInOneRead(prefix) == Outcome(waitingBytes: 4))
        }
    }

    @Test("a header-only frame is a frame with an empty payload")
    func headerOnlyFrame() {
        let outcome = Self.decodeInOneRead(Self.ping)
        #expect(outcome.frames == [Frame(kind: .ping, method: 0, requestID: 1, deadlineOrStatus: 0, payload: ByteBuffer())])
        #expect(outcome.error == nil && outcome.waitingBytes == 0)
    }

    @Test("version and kind are checked once the whole frame is there; a frame before the bad one is delivered")
    func versionAndKindAfterBody() {
        var badVersion = Self.ping
        badVersion[4] = 2
        #expect(Self.decodeInOneRead(badVersion.dropLast()) == Outcome(waitingBytes: 15))
        #expect(Self.decodeInOneRead(Self.ping + badVersion).error == .unsupportedVersion(2))
        #expect(Self.decodeInOneRead(Self.ping + badVersion).frames.count == 1)
        #expect(Self.decodeByteByByte(Self.ping + badVersion).frames.count == 1)
        for kind: UInt8 in [0, 6, 255] {
            var badKind = Self.ping
            badKind[5] = kind
            #expect(Self.decodeInOneRead(badKind).error == .unknownKind(kind))
        }
    }

    @Test("the limit is inclusive at a small maximum too: 64 accepted, 65 refused")
    func smallLimit() {
        let atLimit = Self.encoded([Frame(kind: .request, method: 10, requestID: 2, deadlineOrStatus: 0,
                                          payload: ByteBuffer(bytes: [UInt8](repeating: 0x41, count: 52)))])
        #expect(Self.decodeInOneRead(atLimit, maximumLengthBytes: 64).frames.count == 1)
        let overLimit = Self.encoded([Frame(kind: .request, method: 10, requestID: 2, deadlineOrStatus: 0,
                                            payload: ByteBuffer(bytes: [UInt8](repeating: 0x41, count: 53)))])
        #expect(Self.decodeInOneRead(overLimit, maximumLengthBytes: 64).error == .lengthTooLarge(65, maximum: 64))
    }

    // MARK: Seed corpus

    static let corpusDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/corpus")

    static func corpus(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        let directory = corpusDirectory.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        return try names.map { ($0, Array(try Data(contentsOf: directory.appendingPathComponent($0)))) }
    }

    @Test("every frame seed decodes the same in one read and byte by byte, and its frames re-encode to its bytes")
    func frameCorpus() throws {
        let seeds = try Self.corpus("FrameDecoderFuzzer")
        #expect(seeds.count >= 40)
        for (name, bytes) in seeds {
            for maximumLengthBytes in [Frame.defaultMaximumLength, 64] {
                let whole = Self.decodeInOneRead(bytes, maximumLengthBytes: maximumLengthBytes)
                #expect(Self.decodeByteByByte(bytes, maximumLengthBytes: maximumLengthBytes) == whole, "\(name)")
                let decodedBytes = Self.encoded(whole.frames)
                #expect(Array(bytes.prefix(decodedBytes.count)) == decodedBytes, "\(name)")
                #expect(whole.frames.allSatisfy { $0.payload.readableBytes <= maximumLengthBytes - 12 }, "\(name)")
            }
        }
        // Spot checks that the corpus still holds what its names say.
        let byName = Dictionary(uniqueKeysWithValues: seeds)
        #expect(Self.decodeInOneRead(byName["pipeline-three-frames.bin"] ?? []).frames.map(\.requestID) == [1, 2, 3])
        #expect(Self.decodeInOneRead(byName["length-uint32-max.bin"] ?? []).error == .lengthTooLarge(UInt32.max, maximum: 65_536))
        #expect(Self.decodeInOneRead(byName["truncated-payload.bin"] ?? []).waitingBytes > 0)
    }

    @Test("every payload seed decodes as its method's request and survives a serialize/decode round trip")
    func payloadCorpus() throws {
        let seeds = try Self.corpus("PayloadFuzzer")
        #expect(seeds.count >= 20)
        for (name, bytes) in seeds {
            let selector = try #require(bytes.first, "\(name)")
            let payload = Array(bytes.dropFirst())
            let method = try #require(Loyalty_Pos_V1_Method(rawValue: Int(selector)), "\(name)")
            let type: any SwiftProtobuf.Message.Type =
                switch method {
                case .hello: Loyalty_Pos_V1_HelloRequest.self
                case .helloProof: Loyalty_Pos_V1_HelloProof.self
                case .ping: Loyalty_Pos_V1_Empty.self
                case .lookup: Loyalty_Pos_V1_LookupRequest.self
                case .quote: Loyalty_Pos_V1_QuoteRequest.self
                case .hold: Loyalty_Pos_V1_HoldRequest.self
                case .commit: Loyalty_Pos_V1_CommitRequest.self
                case .cancel: Loyalty_Pos_V1_CancelRequest.self
                case .refund: Loyalty_Pos_V1_RefundRequest.self
                default: Loyalty_Pos_V1_Empty.self
                }
            let message = try type.init(serializedBytes: payload)
            let again = try type.init(serializedBytes: try message.serializedBytes() as [UInt8])
            #expect(message.isEqualTo(message: again), "\(name)")
        }
    }
}
