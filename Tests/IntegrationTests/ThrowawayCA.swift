import Crypto
import Foundation
import X509

/// A certificate authority made for one test, and the certificates it issues, as PEM files in a directory of its
/// own. Valid from an hour ago for a day, P-256 keys: nothing here is meant to outlive the test.
struct ThrowawayCA: Sendable {
    let name: String
    /// The CA's P-256 key as X509 holds it (Crypto's own key type is not Sendable on Linux).
    private let key: Certificate.PrivateKey
    private let certificate: Certificate
    let directory: URL

    /// The CA's certificate as a PEM file, what a server or a till is told to trust.
    var certificateFile: String { directory.appendingPathComponent("\(name)-ca.pem").path }

    init(name: String, directory: URL) throws {
        self.name = name
        self.directory = directory
        let p256 = P256.Signing.PrivateKey()
        key = Certificate.PrivateKey(p256)
        let subject = try DistinguishedName { CommonName("\(name) test CA") }
        certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(p256.publicKey),
            notValidBefore: Date() - 3_600, notValidAfter: Date() + 86_400,
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: key)
        try certificate.serializeAsPEM().pemString.write(toFile: certificateFile, atomically: true, encoding: .utf8)
    }

    /// A leaf certificate and its key, written as `<file>.pem` and `<file>-key.pem`. With `dnsName` it is a server's
    /// (the name a client checks), without one a client's (a till's).
    func issue(file: String, commonName: String, dnsName: String? = nil) throws -> (certificate: String, key: String) {
        let leafKey = P256.Signing.PrivateKey()
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey),
            notValidBefore: Date() - 3_600, notValidAfter: Date() + 86_400,
            issuer: certificate.subject, subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([dnsName == nil ? .clientAuth : .serverAuth])
                if let dnsName { SubjectAlternativeNames([.dnsName(dnsName)]) }
            },
            issuerPrivateKey: key)
        let certificatePath = directory.appendingPathComponent("\(file).pem").path
        let keyPath = directory.appendingPathComponent("\(file)-key.pem").path
        try leaf.serializeAsPEM().pemString.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try leafKey.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return (certificatePath, keyPath)
    }

    /// A temporary directory for `body`'s files, removed afterwards.
    static func withDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loyalty-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }
}
