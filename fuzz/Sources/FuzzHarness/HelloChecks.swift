import POSProtocol

/// The handshake checks that need no database: nonce length, auth message layout, proof verification.
enum HelloChecks {
    static let saltBytes: [UInt8] = Array(repeating: 0x5A, count: 16)
    static let serverNonceBytes: [UInt8] = Array(repeating: 0xA5, count: 24)
    /// One PBKDF2 iteration: the fuzzer verifies proofs, it does not need a slow key.
    static let credentials = TerminalAuth.credentials(secret: FuzzFixtures.terminalSecret, salt: saltBytes, iterations: 1)

    static func hello(_ request: Loyalty_Pos_V1_HelloRequest) {
        guard request.protocolVersion == UInt32(Frame.version),
              TerminalAuth.nonceBytesRange.contains(request.clientNonce.count) else { return }
        let message = TerminalAuth.authMessage(
            terminalID: request.terminalID, clientNonce: Array(request.clientNonce), serverNonce: serverNonceBytes,
            salt: saltBytes)
        let expectedBytes = request.terminalID.utf8.count + 1 + request.clientNonce.count + serverNonceBytes.count
            + saltBytes.count
        fuzzCheck(message.count == expectedBytes, "auth message is \(message.count) bytes, expected \(expectedBytes)")
    }

    /// Only the genuine proof for the fixture terminal may verify.
    static func proof(_ proof: Loyalty_Pos_V1_HelloProof) {
        let message = FuzzFixtures.authMessage(serverNonce: serverNonceBytes, salt: saltBytes)
        let verified = TerminalAuth.verify(proof: Array(proof.clientProof), storedKey: credentials.storedKey,
                                           authMessage: message)
        let genuine = TerminalAuth.clientProof(
            secret: FuzzFixtures.terminalSecret, salt: saltBytes, iterations: 1, authMessage: message).proof
        fuzzCheck(!verified || Array(proof.clientProof) == genuine, "a proof other than the genuine one verified")
    }
}
