import Foundation
import NIOCore
import NIOSSL

/// TLS for a POS client: which CAs it trusts for the server's certificate, the certificate it shows when the
/// server requires one (`--pos-tls-client-ca` on the server), and the name the server's certificate must carry.
public struct POSClientTLS: Sendable {
    /// CAs the server's certificate must chain to; empty trusts the system's store.
    public var trustRoots: [NIOSSLCertificate]
    /// This terminal's certificate (leaf first); empty when the server does not ask for one.
    public var certificateChain: [NIOSSLCertificate]
    public var privateKey: NIOSSLPrivateKey?
    /// Sent as SNI and checked against the server certificate's DNS names. Nil takes the host connected to,
    /// unless that is an IP address: then the certificate must list that address (an IP subject alternative name).
    public var serverHostname: String?

    public init(
        trustRoots: [NIOSSLCertificate] = [], certificateChain: [NIOSSLCertificate] = [], privateKey: NIOSSLPrivateKey? = nil,
        serverHostname: String? = nil
    ) {
        self.trustRoots = trustRoots
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.serverHostname = serverHostname
    }

    /// From PEM files, as the `loyalty pos` options name them. A certificate needs its key and the reverse.
    public init(
        trustRootsFile: String?, certificateFile: String?, privateKeyFile: String?, serverHostname: String? = nil
    ) throws(TLSFileError) {
        switch (certificateFile, privateKeyFile) {
        case (nil, nil), (.some, .some): break
        case (.some, nil): throw TLSFileError("a client certificate was given without its private key; give both (--tls-cert and --tls-key)")
        case (nil, .some): throw TLSFileError("a client private key was given without its certificate; give both (--tls-cert and --tls-key)")
        }
        self.init(
            trustRoots: try trustRootsFile.map { path throws(TLSFileError) in try PEMFile.certificates(at: path, role: "CA file") } ?? [],
            certificateChain: try certificateFile.map { path throws(TLSFileError) in
                try PEMFile.certificates(at: path, role: "client certificate")
            } ?? [],
            privateKey: try privateKeyFile.map { path throws(TLSFileError) in try PEMFile.privateKey(at: path, role: "client private key") },
            serverHostname: serverHostname)
    }

    /// TLS 1.2 or later with full verification of the server: a till never talks to a server it cannot identify.
    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if !trustRoots.isEmpty { configuration.trustRoots = .certificates(trustRoots) }
        configuration.certificateChain = certificateChain.map { .certificate($0) }
        configuration.privateKey = privateKey.map { .privateKey($0) }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The name for SNI and the certificate check when connecting to `host`.
    func hostname(connectingTo host: String) -> String? {
        if let serverHostname { return serverHostname }
        return (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }
}
