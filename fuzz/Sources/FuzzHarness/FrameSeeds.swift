import NIOCore
import POSProtocol
import SwiftProtobuf

/// Seed inputs of the frame decoder fuzzer: valid frames of every kind and method, pipelines, and each framing
/// error at its boundary. Written to fuzz/corpus/FrameDecoderFuzzer by the corpus generator.
public enum FrameSeeds {
    public static func all() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (name, method, payload) in PayloadSeeds.requests() {
            seeds.append(("request-\(name)", frame(.request, method: UInt16(method.rawValue), requestID: 7,
                                                    deadlineOrStatus: 2_500, payload: payload)))
        }
        var detail = Loyalty_Pos_V1_ErrorDetail()
        detail.code = "invalid_basket"
        detail.message = "line 1: quantity must be between 1 and 10000, got 0"
        seeds += [
            ("response-ok-empty", frame(.response, method: 3, requestID: 7, deadlineOrStatus: 0, payload: [])),
            ("response-error-detail", frame(.response, method: 11, requestID: 8, deadlineOrStatus: 3,
                                            payload: try! detail.serializedBytes())),
            ("ping", frame(.ping, method: 0, requestID: 1, deadlineOrStatus: 0, payload: [])),
            ("pong", frame(.pong, method: 0, requestID: 1, deadlineOrStatus: 0, payload: [])),
            ("goaway-unavailable", frame(.goaway, method: 0, requestID: 0, deadlineOrStatus: 14, payload: [])),
            ("unknown-method", frame(.request, method: 999, requestID: 9, deadlineOrStatus: 0, payload: [1, 2, 3])),
            ("payload-at-small-limit", frame(.request, method: 10, requestID: 2, deadlineOrStatus: 0,
                                             payload: Array(repeating: 0x41, count: 64 - Frame.headerBytes))),
            ("payload-over-small-limit", frame(.request, method: 10, requestID: 2, deadlineOrStatus: 0,
                                               payload: Array(repeating: 0x41, count: 65 - Frame.headerBytes))),
        ]
        let ping = frame(.ping, method: 0, requestID: 1, deadlineOrStatus: 0, payload: [])
        let hello = frame(.request, method: 1, requestID: 2, deadlineOrStatus: 0, payload: PayloadSeeds.hello())
        seeds += [
            ("pipeline-three-frames", ping + hello + frame(.request, method: 3, requestID: 3, deadlineOrStatus: 0, payload: [])),
            ("pipeline-then-bad-version", ping + withByte(ping, at: 4, 2)),
            ("pipeline-then-truncated", ping + Array(hello.dropLast(5))),
            ("truncated-prefix", [0, 0, 0]),
            ("truncated-header", Array(ping.prefix(10))),
            ("truncated-payload", Array(hello.dropLast(1))),
            ("length-zero", lengthOnly(0)),
            ("length-11-too-small", lengthOnly(11)),
            ("length-12-header-only-prefix", lengthOnly(12)),
            ("length-at-default-limit-prefix", lengthOnly(UInt32(Frame.defaultMaximumLength))),
            ("length-over-default-limit", lengthOnly(UInt32(Frame.defaultMaximumLength) + 1)),
            ("length-uint32-max", lengthOnly(UInt32.max)),
            ("bad-version-0", withByte(ping, at: 4, 0)),
            ("bad-version-255", withByte(ping, at: 4, 255)),
            ("unknown-kind-0", withByte(ping, at: 5, 0)),
            ("unknown-kind-6", withByte(ping, at: 5, 6)),
        ]
        return seeds
    }

    public static func frame(_ kind: Frame.Kind, method: UInt16, requestID: UInt32, deadlineOrStatus: UInt32,
                             payload: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        FrameEncoder.write(Frame(kind: kind, method: method, requestID: requestID, deadlineOrStatus: deadlineOrStatus,
                                 payload: ByteBuffer(bytes: payload)), into: &buffer)
        return Array(buffer: buffer)
    }

    static func lengthOnly(_ lengthBytes: UInt32) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(lengthBytes)
        return Array(buffer: buffer)
    }

    static func withByte(_ bytes: [UInt8], at index: Int, _ value: UInt8) -> [UInt8] {
        var copy = bytes
        copy[index] = value
        return copy
    }
}
