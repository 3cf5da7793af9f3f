/// One problem in a rules file: where (file, 1-based line and column when known), which field (dotted path as in
/// docs/rules.md, e.g. `earn.categories.tobacco.multiplier_bp`) and what is wrong.
public struct RulesIssue: Sendable, Hashable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let column: Int?
    public let field: String
    public let message: String

    public init(file: String, line: Int?, column: Int?, field: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    /// `program.yaml:14: earn.categories.tobacco.multiplier_bp: must be between 0 and 100000, got -5`
    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return field.isEmpty ? "\(place): \(message)" : "\(place): \(field): \(message)"
    }
}

/// Why the rules could not be loaded. `.invalid` holds every problem found in all files (at most
/// `RulesLoader.maxReportedIssues`, the rest counted in `omitted`), sorted by file and line.
public enum RulesError: Error, Sendable, Hashable, CustomStringConvertible {
    case directoryUnreadable(path: String, reason: String)
    case noRulesFiles(path: String)
    case fileUnreadable(file: String, reason: String)
    case invalid(issues: [RulesIssue], omitted: Int)

    /// The problems of `.invalid`; empty for the other cases.
    public var issues: [RulesIssue] {
        if case .invalid(let issues, _) = self { issues } else { [] }
    }

    public var description: String {
        switch self {
        case .directoryUnreadable(let path, let reason): "cannot read the rules folder \(path): \(reason)"
        case .noRulesFiles(let path): "the rules folder \(path) holds no .yaml or .yml file"
        case .fileUnreadable(let file, let reason): "\(file): cannot read: \(reason)"
        case .invalid(let issues, let omitted):
            (issues.map(\.description) + (omitted > 0 ? ["… and \(omitted) more problems"] : []))
                .joined(separator: "\n")
        }
    }
}
