import Crypto
import LoyaltyCore
import Foundation

/// One `migrations/NNNN_name.sql` file: its version, name, text and SHA-256 checksum.
public struct MigrationFile: Sendable, Equatable {
    /// Upper bound on one file, so a stray large file is refused rather than sent to the server.
    public static let maximumSizeBytes = 4 * 1024 * 1024

    public var version: Int
    public var name: String
    public var sql: String
    public var checksumHex: String
    public var fileName: String { String(format: "%04d_%@.sql", version, name) }

    public init(version: Int, name: String, sql: String) {
        precondition(version > 0, "migration versions start at 1")
        self.version = version
        self.name = name
        self.sql = sql
        self.checksumHex = HexDigits.lowercase(SHA256.hash(data: Data(sql.utf8)))
    }

    /// Reads every `*.sql` file of `directory`, ordered by version. Names must be `NNNN_lower_snake.sql` and
    /// versions unique, so the order never depends on how the file system lists them.
    public static func load(from directory: URL) throws(StoreError) -> [MigrationFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw .migrationFileInvalid(file: directory.path, reason: "cannot list the migrations folder (\(error.localizedDescription))")
        }
        var files: [MigrationFile] = []
        var seen: [Int: String] = [:]
        for fileName in names.sorted() where fileName.hasSuffix(".sql") {
            let stem = fileName.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"),
                let version = Int(stem[..<underscore]), version > 0,
                stem[..<underscore].count == 4
            else {
                throw .migrationFileInvalid(file: fileName, reason: "name must be NNNN_name.sql with a four-digit version from 0001")
            }
            let name = String(stem[stem.index(after: underscore)...])
            guard !name.isEmpty, name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }) else {
                throw .migrationFileInvalid(file: fileName, reason: "the name after the version must be lower_snake_case")
            }
            if let other = seen[version] {
                throw .migrationFileInvalid(file: fileName, reason: "version \(version) is also used by \(other)")
            }
            seen[version] = fileName
            let url = directory.appendingPathComponent(fileName)
            let data: Data
            do { data = try Data(contentsOf: url) } catch {
                throw .migrationFileInvalid(file: fileName, reason: "cannot read it (\(error.localizedDescription))")
            }
            guard data.count <= maximumSizeBytes else {
                throw .migrationFileInvalid(file: fileName, reason: "larger than \(maximumSizeBytes) bytes")
            }
            guard let sql = String(data: data, encoding: .utf8) else {
                throw .migrationFileInvalid(file: fileName, reason: "not UTF-8 text")
            }
            files.append(MigrationFile(version: version, name: name, sql: sql))
        }
        return files.sorted { $0.version < $1.version }
    }
}
