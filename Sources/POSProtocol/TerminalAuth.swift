import Crypto
import _CryptoExtras
import Foundation

/// Terminal authentication in the manner of SCRAM-SHA-256 (RFC 7677): the terminal proves it knows its secret
/// without sending it, the server stores only `StoredKey` and `ServerKey` (neither lets anyone log in), and the
/// server proves itself back with a signature.
///
///     SaltedSecret    = PBKDF2-HMAC-SHA256(secret, salt, iterations)
///     ClientKey       = HMAC(SaltedSecret, "Client Key");  StoredKey = SHA256(ClientKey)
///     ServerKey       = HMAC(SaltedSecret, "Server Key")
///     AuthMessage     = terminal id · 0x00 · client nonce · server nonce · salt
///     ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
///     ServerSignature = HMAC(ServerKey, AuthMessage)
public enum TerminalAuth {
    /// Terminal secrets are 32 random bytes, not human passwords, so PBKDF2's stretching guards little; 4,096 is
    /// SCRAM's customary count and keeps a terminal's log-in fast.
    public static let defaultIterations = 4_096
    public static let nonceBytesRange = 16...64
    public static let keyBytes = 32

    public struct Credentials: Sendable, Equatable {
        public var salt: [UInt8]
        public var iterations: Int
        public var storedKey: [UInt8]
        public var serverKey: [UInt8]
    }

    public static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// What the server stores for a new or rotated secret.
    public static func credentials(secret: [UInt8], salt: [UInt8] = randomBytes(16), iterations: Int = defaultIterations) -> Credentials {
        let (clientKey, serverKey) = keys(secret: secret, salt: salt, iterations: iterations)
        return Credentials(salt: salt, iterations: iterations, storedKey: Array(SHA256.hash(data: clientKey)), serverKey: serverKey)
    }

    public static func authMessage(terminalID: String, clientNonce: [UInt8], serverNonce: [UInt8], salt: [UInt8]) -> [UInt8] {
        Array(terminalID.utf8) + [0] + clientNonce + serverNonce + salt
    }

    /// Terminal side: the proof to send and the server signature to expect back.
    public static func clientProof(secret: [UInt8], salt: [UInt8], iterations: Int, authMessage: [UInt8])
        -> (proof: [UInt8], expectedServerSignature: [UInt8])
    {
        let (clientKey, serverKey) = keys(secret: secret, salt: salt, iterations: iterations)
        let storedKey = Array(SHA256.hash(data: clientKey))
        let signature = hmac(key: storedKey, authMessage)
        return (zip(clientKey, signature).map { $0 ^ $1 }, hmac(key: serverKey, authMessage))
    }

    /// Server side: whether the proof shows knowledge of the secret behind `storedKey`. Constant time.
    public static func verify(proof: [UInt8], storedKey: [UInt8], authMessage: [UInt8]) -> Bool {
        guard proof.count == keyBytes, storedKey.count == keyBytes else { return false }
        let signature = hmac(key: storedKey, authMessage)
        let clientKey = zip(proof, signature).map { $0 ^ $1 }
        let candidate = Array(SHA256.hash(data: clientKey))
        return zip(candidate, storedKey).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    public static func serverSignature(serverKey: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        hmac(key: serverKey, authMessage)
    }

    static func keys(secret: [UInt8], salt: [UInt8], iterations: Int) -> (clientKey: [UInt8], serverKey: [UInt8]) {
        precondition(iterations >= 1 && iterations <= 1_000_000)
        let salted = try! KDF.Insecure.PBKDF2.deriveKey(
            from: secret, salt: salt, using: .sha256, outputByteCount: keyBytes, unsafeUncheckedRounds: iterations)
        let saltedBytes = salted.withUnsafeBytes { Array($0) }
        return (hmac(key: saltedBytes, Array("Client Key".utf8)), hmac(key: saltedBytes, Array("Server Key".utf8)))
    }

    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }
}
