import ArgumentParser
import LoyaltyServer
import POSProtocol

/// TLS of the POS and admin listeners, each a flag with a LOYALTY_* fallback. Plain TCP stays the default; files are
/// read here, before any dependency is contacted, so a wrong path fails at once.
struct ServeTLSOptions: ParsableArguments {
    @Option(name: .customLong("pos-tls-cert"), help: "PEM certificate chain for the POS port, leaf first (env LOYALTY_POS_TLS_CERT). Turns TLS on.")
    var posCertificate: String?

    @Option(name: .customLong("pos-tls-key"), help: "PEM private key of that certificate, unencrypted (env LOYALTY_POS_TLS_KEY).")
    var posPrivateKey: String?

    @Option(name: .customLong("pos-tls-client-ca"),
            help: "PEM CA certificates; when given, every till must present a certificate issued by one of them (env LOYALTY_POS_TLS_CLIENT_CA).")
    var posClientCA: String?

    @Flag(name: .customLong("pos-insecure"),
          help: "Allow plain TCP on the POS port at an address other than loopback: a TLS proxy or a network of its own protects it (env LOYALTY_POS_INSECURE=1).")
    var posInsecure = false

    @Option(name: .customLong("admin-tls-cert"), help: "PEM certificate chain for the admin port, leaf first (env LOYALTY_ADMIN_TLS_CERT). Turns HTTPS on.")
    var adminCertificate: String?

    @Option(name: .customLong("admin-tls-key"), help: "PEM private key of that certificate, unencrypted (env LOYALTY_ADMIN_TLS_KEY).")
    var adminPrivateKey: String?

    @Flag(name: .customLong("admin-insecure"),
          help: "Allow plain HTTP on the admin port at an address other than loopback: an HTTPS proxy or a network of its own protects it (env LOYALTY_ADMIN_INSECURE=1).")
    var adminInsecure = false

    /// Fills the TLS fields of `configuration`.
    func apply(to configuration: inout ServerConfiguration) throws {
        configuration.posTLS = try listener(
            "POS", certificate: (posCertificate, "pos-tls-cert", "LOYALTY_POS_TLS_CERT"),
            key: (posPrivateKey, "pos-tls-key", "LOYALTY_POS_TLS_KEY"),
            clientCA: (posClientCA, "pos-tls-client-ca", "LOYALTY_POS_TLS_CLIENT_CA"))
        configuration.adminTLS = try listener(
            "admin", certificate: (adminCertificate, "admin-tls-cert", "LOYALTY_ADMIN_TLS_CERT"),
            key: (adminPrivateKey, "admin-tls-key", "LOYALTY_ADMIN_TLS_KEY"), clientCA: nil)
        configuration.posPlaintextAllowed = try posInsecure || Self.isSet("LOYALTY_POS_INSECURE")
        configuration.adminPlaintextAllowed = try adminInsecure || Self.isSet("LOYALTY_ADMIN_INSECURE")
    }

    /// A flag's value, its name and its environment variable.
    typealias Setting = (value: String?, flag: String, env: String)

    private func listener(_ name: String, certificate: Setting, key: Setting, clientCA: Setting?) throws -> ListenerTLS? {
        let certificatePath = certificate.value ?? environment(certificate.env)
        let keyPath = key.value ?? environment(key.env)
        let clientCAPath = clientCA.flatMap { $0.value ?? environment($0.env) }
        switch (certificatePath, keyPath) {
        case (nil, nil):
            if let clientCA, clientCAPath != nil {
                throw CommandFailure("--\(clientCA.flag) needs --\(certificate.flag) and --\(key.flag): client certificates are checked only over TLS")
            }
            return nil
        case (let certificatePath?, let keyPath?):
            return try ListenerTLS(certificatePath: certificatePath, privateKeyPath: keyPath, clientCAPath: clientCAPath, listener: name)
        case (.some, nil):
            throw CommandFailure("--\(certificate.flag) was given without --\(key.flag) (or \(key.env)): give both, the certificate and its private key")
        case (nil, .some):
            throw CommandFailure("--\(key.flag) was given without --\(certificate.flag) (or \(certificate.env)): give both, the certificate and its private key")
        }
    }

    private static func isSet(_ env: String) throws -> Bool {
        guard let text = environment(env) else { return false }
        switch text.lowercased() {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw CommandFailure("\(env)='\(text)' must be 1 or 0")
        }
    }
}
