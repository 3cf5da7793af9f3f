import Foundation
import NIOSSL

/// Reads the PEM files that TLS is configured with (server and client side alike), with errors that name the file,
/// its role and what to give instead, because a bad path should stop a start-up with one readable line.
public enum PEMFile {
    /// Every certificate in the file, in order (a chain: leaf first, then intermediates; or a CA bundle).
    public static func certificates(at path: String, role: String) throws(TLSFileError) -> [NIOSSLCertificate] {
        let bytes = try contents(of: path, role: role)
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw TLSFileError("the \(role) \(path) is not PEM certificates (\(error)); give the file that starts with -----BEGIN CERTIFICATE-----")
        }
        guard !certificates.isEmpty else {
            throw TLSFileError("the \(role) \(path) holds no certificate; give the file that starts with -----BEGIN CERTIFICATE-----")
        }
        return certificates
    }

    /// An unencrypted private key (PKCS#8, RSA or EC): a server started by a service manager has nobody to type a
    /// passphrase.
    public static func privateKey(at path: String, role: String) throws(TLSFileError) -> NIOSSLPrivateKey {
        let bytes = try contents(of: path, role: role)
        do { return try NIOSSLPrivateKey(bytes: bytes, format: .pem) } catch {
            throw TLSFileError(
                "the \(role) \(path) is not an unencrypted PEM private key (\(error)); give the key that belongs to the certificate, without a passphrase")
        }
    }

    private static func contents(of path: String, role: String) throws(TLSFileError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "not readable by this user" : "no such file"
            throw TLSFileError("cannot read the \(role) \(path): \(reason); give a PEM file this user can read")
        }
        return Array(data)
    }
}

/// A TLS certificate, key or CA file that cannot be used; the description says which and what to do.
public struct TLSFileError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
