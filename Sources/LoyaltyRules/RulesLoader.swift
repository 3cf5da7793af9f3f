import Crypto
import Foundation
import LoyaltyCore
import Yams

/// A validated program loaded from a rules folder, with the version to record on every ledger entry it produces.
public struct LoadedRules: Sendable {
    public let ruleSet: RuleSet
    /// First 16 hex characters of SHA-256 over (file name, a 0 byte, file bytes) of every file, in name order.
    /// Any changed byte, renamed, added or removed file changes it.
    public let version: String
    /// The files read, in the order they were read and hashed.
    public let files: [String]
    /// The files' contents, in the same order, so the exact version can be stored and loaded again later (a
    /// till replaying offline sales is priced by the rules of the purchase time).
    public let contents: [Data]

    /// An evaluator that stamps its quotes with `version`.
    public var evaluator: RulesEvaluator { RulesEvaluator(ruleSet: ruleSet, rulesVersion: version) }
}

/// Loads the program's rules from YAML. All `*.yaml` and `*.yml` files of the folder, sorted by name, together
/// form one program: each top-level section (`program`, `earn`, `redemption`, `pending`, `expiry`, `tiers`) is
/// written in exactly one of them. Every problem of every file is reported (up to `maxReportedIssues`) with file,
/// line and field; nothing is loaded unless there are none. See docs/rules.md for the format.
public enum RulesLoader {
    /// The most problems listed in one `RulesError.invalid`; the rest are counted.
    public static let maxReportedIssues = 50

    /// Reads and validates every rules file of `directory`.
    public static func load(directory: URL) throws(RulesError) -> LoadedRules {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
                .sorted()
        } catch {
            throw .directoryUnreadable(path: directory.path, reason: error.localizedDescription)
        }
        var sources: [(name: String, contents: Data)] = []
        for name in names {
            let url = directory.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw .fileUnreadable(file: name, reason: "permission denied or not a regular file")
            }
            sources.append((name, data))
        }
        guard !sources.isEmpty else { throw .noRulesFiles(path: directory.path) }
        return try load(sources: sources)
    }

    /// Validates rules given as (file name, contents), in the given order (the folder loader sorts by name).
    public static func load(sources: [(name: String, contents: Data)]) throws(RulesError) -> LoadedRules {
        guard let first = sources.first?.name else { throw .noRulesFiles(path: "(no files given)") }
        let reader = YAMLReader()
        var sections: [String: Section] = [:]
        var sectionLines: [String: String] = [:]
        var allRead = true  // a file that did not parse may hold the sections that look missing
        for (index, source) in sources.enumerated() {
            reader.file = source.name
            reader.fileIndex = index
            guard let root = compose(source, reader: reader),
                  let fields = reader.mapping(root, path: "", known: RulesSchema.sections)
            else {
                allRead = false
                continue
            }
            for pair in fields.pairs {
                let here = "\(source.name):\(pair.keyNode.mark?.line ?? 1)"
                if let earlier = sectionLines[pair.key] {
                    reader.report(pair.key, pair.keyNode, "section \(pair.key) is already defined at \(earlier)")
                    continue
                }
                sectionLines[pair.key] = here
                sections[pair.key] = Section(fileIndex: index, file: source.name, value: pair.value)
            }
        }
        let firstLocation = SourceLocation(fileIndex: 0, file: first, line: 1, column: 1)
        for name in RulesSchema.sections where sections[name] == nil {
            if allRead && !reader.failed.contains(name) && !reader.suggested.contains(name) {
                reader.report(name, at: firstLocation, "missing required section (write it in any of the rules files)")
            } else {
                reader.markFailed(name)  // explained by another problem: no follow-up errors about its fields
            }
        }
        let schema = RulesSchema(reader: reader)
        let ruleSet = schema.build(sections, firstFile: first)
        guard let ruleSet, reader.issues.isEmpty else { throw invalid(reader) }
        return LoadedRules(ruleSet: ruleSet, version: version(of: sources), files: sources.map(\.name),
                           contents: sources.map(\.contents))
    }

    /// First 16 hex characters of SHA-256 over (name, 0, bytes) of each source in order.
    public static func version(of sources: [(name: String, contents: Data)]) -> String {
        var hasher = SHA256()
        for source in sources {
            hasher.update(data: Data(source.name.utf8))
            hasher.update(data: Data([0]))
            hasher.update(data: source.contents)
        }
        return hasher.finalize().prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// The file's root node, or nil after reporting why there is none.
    private static func compose(_ source: (name: String, contents: Data), reader: YAMLReader) -> Node? {
        guard let text = String(data: source.contents, encoding: .utf8) else {
            reader.report("", at: nil, "is not valid UTF-8 text")
            return nil
        }
        do {
            guard let root = try Yams.compose(yaml: text) else {
                let start = SourceLocation(fileIndex: reader.fileIndex, file: source.name, line: 1, column: 1)
                reader.report("", at: start, "holds no rules (the file is empty)")
                return nil
            }
            return root
        } catch let error as YamlError {
            let (mark, problem) = describe(error)
            reader.report("", at: reader.location(mark), "YAML syntax: \(problem)")
            return nil
        } catch {
            reader.report("", at: nil, "YAML syntax: \(error)")
            return nil
        }
    }

    private static func describe(_ error: YamlError) -> (Mark?, String) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return (mark, [context?.text, problem].compactMap { $0 }.joined(separator: ", "))
        case .reader(let problem, _, _, _):
            return (nil, problem)
        default:
            return (nil, "\(error)")
        }
    }

    private static func invalid(_ reader: YAMLReader) -> RulesError {
        let sorted = reader.issues.sorted { left, right in
            let l = (left.location?.fileIndex ?? 0, left.location?.line ?? 0, left.location?.column ?? 0, left.order)
            let r = (right.location?.fileIndex ?? 0, right.location?.line ?? 0, right.location?.column ?? 0,
                     right.order)
            return l < r
        }
        let shown = sorted.prefix(maxReportedIssues).map(\.issue)
        return .invalid(issues: Array(shown), omitted: sorted.count - shown.count)
    }
}
