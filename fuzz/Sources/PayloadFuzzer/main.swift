import FuzzHarness

/// libFuzzer entry point: byte 0 selects the method, the rest is its request payload.
@_cdecl("LLVMFuzzerTestOneInput")
public func payloadFuzz(_ data: UnsafePointer<UInt8>, _ sizeBytes: Int) -> CInt {
    PayloadHarness.run(Array(UnsafeBufferPointer(start: data, count: sizeBytes)))
    return 0
}
