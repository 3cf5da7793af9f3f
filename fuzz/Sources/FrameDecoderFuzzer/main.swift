import FuzzHarness

/// libFuzzer entry point: one input is one byte stream from a till.
@_cdecl("LLVMFuzzerTestOneInput")
public func frameDecoderFuzz(_ data: UnsafePointer<UInt8>, _ sizeBytes: Int) -> CInt {
    FrameDecoderHarness.run(Array(UnsafeBufferPointer(start: data, count: sizeBytes)))
    return 0
}
