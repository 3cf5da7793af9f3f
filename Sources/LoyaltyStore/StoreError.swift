import Foundation

/// Errors of the storage layer. Each message says what went wrong and, where it can, what to do.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    case invalidDatabaseURL(String)
    case unreachable(target: String, reason: String)
    case migrationFileInvalid(file: String, reason: String)
    case migrationChecksumMismatch(version: Int, name: String, applied: String, onDisk: String)
    case migrationMissingFile(version: Int, name: String)
    case migrationFailed(file: String, statementIndex: Int, reason: String)
    case notFound(String)

    public var description: String {
        switch self {
        case .invalidDatabaseURL(let reason):
            "invalid database URL: \(reason)"
        case .unreachable(let target, let reason):
            "PostgreSQL at \(target) is unreachable: \(reason); check that it runs and that LOYALTY_DATABASE_URL is right"
        case .migrationFileInvalid(let file, let reason):
            "migration file \(file) is invalid: \(reason)"
        case .migrationChecksumMismatch(let version, let name, let applied, let onDisk):
            "migration \(String(format: "%04d", version))_\(name) was changed after it was applied "
                + "(applied checksum \(applied.prefix(12)), file now \(onDisk.prefix(12))); "
                + "restore the file and add a new migration instead"
        case .migrationMissingFile(let version, let name):
            "migration \(String(format: "%04d", version))_\(name) is applied in the database but its file is missing; "
                + "restore it from version control"
        case .notFound(let what):
            "\(what) not found"
        case .migrationFailed(let file, let statementIndex, let reason):
            "migration \(file) failed at statement \(statementIndex + 1) and was rolled back: \(reason)"
        }
    }
}
