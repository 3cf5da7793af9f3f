import Crypto
import Foundation

/// The rule files of `rules/` and their version: a content hash over file names and bytes, recorded on every
/// ledger entry the rules produce.
public struct RulesDirectory: Sendable {
    public var directory: URL
    public var files: [String]
    public var version: String

    public static func load(_ directory: URL) throws(StartupError) -> RulesDirectory {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw .rules("cannot read the rules folder \(directory.path): \(error.localizedDescription); set LOYALTY_RULES_DIR")
        }
        guard !names.isEmpty else { throw .rules("the rules folder \(directory.path) holds no .yaml file") }
        var hasher = SHA256()
        for name in names {
            guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else {
                throw .rules("cannot read rules file \(name)")
            }
            hasher.update(data: Data(name.utf8))
            hasher.update(data: Data([0]))
            hasher.update(data: data)
        }
        let version = hasher.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
        return RulesDirectory(directory: directory, files: names, version: version)
    }
}
