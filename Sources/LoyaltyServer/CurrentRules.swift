import Foundation
import Logging
import LoyaltyRules
import Synchronization

/// The rules in force, swapped whole on reload. A reload that fails keeps the rules in force and says why, so a
/// typo in a file never takes the tills down. Each loaded set carries its version (content hash), which every
/// ledger entry it produces records.
public final class CurrentRules: Sendable {
    private let loaded: Mutex<LoadedRules>
    public let directory: URL
    private let logger: Logger

    /// Loads the rules once; a bad folder at start is an error (there is nothing to fall back to).
    public init(directory: URL, logger: Logger) throws(StartupError) {
        do {
            loaded = Mutex(try RulesLoader.load(directory: directory))
        } catch {
            throw .rules("rules in \(directory.path) are invalid:\n\(error)")
        }
        self.directory = directory
        self.logger = logger
    }

    public var current: LoadedRules { loaded.withLock { $0 } }

    public enum ReloadOutcome: Sendable, Equatable {
        case unchanged(version: String)
        case reloaded(from: String, to: String)
        case rejected(keptVersion: String, reason: String)
    }

    @discardableResult
    public func reload() -> ReloadOutcome {
        let old = current.version
        do {
            let fresh = try RulesLoader.load(directory: directory)
            guard fresh.version != old else { return .unchanged(version: old) }
            loaded.withLock { $0 = fresh }
            logger.notice("rules reloaded", metadata: ["from": "\(old)", "to": "\(fresh.version)"])
            return .reloaded(from: old, to: fresh.version)
        } catch {
            logger.error("rules reload rejected; keeping the rules in force", metadata: ["version": "\(old)", "error": "\(error)"])
            return .rejected(keptVersion: old, reason: "\(error)")
        }
    }
}
