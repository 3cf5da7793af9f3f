import Foundation
import NIOSSL
import POSProtocol

/// TLS for one listener (POS or admin), read from PEM files and checked once at start: a missing file, a key that
/// does not belong to the certificate or an unreadable CA stops `serve` with one line, instead of failing every
/// handshake later.
public struct ListenerTLS: Sendable {
    public let certificatePath: String
    public let privateKeyPath: String
    /// When set, clients must present a certificate that chains to one of these CAs (terminals, for the POS port).
    public let clientCAPath: String?
    /// TLS 1.2 or later; for Hummingbird, which makes its own context from it.
    public let configuration: TLSConfiguration
    /// One context for every connection of the POS listener (making one per connection would reparse the files).
    let context: NIOSSLContext
    /// Seconds since the Unix epoch when the server certificate (the chain's first) expires, for the start log.
    public let certificateNotValidAfter: Int

    public var requiresClientCertificate: Bool { clientCAPath != nil }

    /// - Parameter listener: "POS" or "admin", to say in errors whose files are wrong.
    public init(certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil, listener: String) throws(TLSFileError) {
        let chain = try PEMFile.certificates(at: certificatePath, role: "\(listener) TLS certificate")
        let key = try PEMFile.privateKey(at: privateKeyPath, role: "\(listener) TLS private key")
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAPath {
            let authorities = try PEMFile.certificates(at: clientCAPath, role: "\(listener) client CA file")
            configuration.trustRoots = .certificates(authorities)
            // A server has no name to expect of a client: the chain to the CA is what is checked.
            configuration.certificateVerification = .noHostnameVerification
            // Tells a till holding several certificates which one to present.
            configuration.sendCANameList = true
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError("""
                the \(listener) TLS private key \(privateKeyPath) does not fit the certificate \(certificatePath) (\(error)); \
                give the key the certificate was issued for
                """)
        }
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
        self.configuration = configuration
        certificateNotValidAfter = Int(chain[0].notValidAfter)
    }

    /// A line for the start log when the server certificate has expired or expires within `warningDays`: clients
    /// refuse an expired certificate, so every till would stop at once.
    public func expiryWarning(now: Date, warningDays: Int = 30) -> String? {
        let secondsLeft = certificateNotValidAfter - Int(now.timeIntervalSince1970)
        let expiry = Date(timeIntervalSince1970: TimeInterval(certificateNotValidAfter)).formatted(.iso8601)
        if secondsLeft <= 0 { return "the TLS certificate expired at \(expiry); clients refuse it until it is replaced" }
        guard secondsLeft < warningDays * 86_400 else { return nil }
        return "the TLS certificate expires at \(expiry), within \(warningDays) days; replace it and restart before then"
    }

    /// For the start log, one token a log query can match: "off", "on", or "mutual" (client certificates required).
    static func describe(_ tls: ListenerTLS?) -> String {
        guard let tls else { return "off" }
        return tls.requiresClientCertificate ? "mutual" : "on"
    }
}
