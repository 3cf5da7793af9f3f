import Yams

/// Where a field was written.
struct SourceLocation: Hashable {
    let fileIndex: Int
    let file: String
    let line: Int
    let column: Int
}

/// The keys of one YAML mapping in document order, with their key nodes' positions.
struct Fields {
    let path: String
    let pairs: [(key: String, keyNode: Node, value: Node)]

    subscript(_ key: String) -> Node? { pairs.first { $0.key == key }?.value }

    func child(_ key: String) -> String { YAMLReader.join(path, key) }
}

/// Walks Yams `Node`s and records, instead of stopping at the first, every problem with file, line and field path;
/// also remembers where each field was written so later checks (in `RuleSet`) can be pointed at a line.
/// Refuses non-string keys, duplicate keys, unknown keys (with the nearest known key), missing required keys and
/// wrongly typed values. A field that failed is remembered in `failed` so later checks do not report it again.
final class YAMLReader {
    /// The file being walked, set by the loader before each section.
    var file = ""
    var fileIndex = 0
    private(set) var issues: [(location: SourceLocation?, order: Int, issue: RulesIssue)] = []
    private(set) var locations: [String: SourceLocation] = [:]
    private(set) var failed: Set<String> = []
    /// Paths offered as "did you mean" for an unknown key.
    private(set) var suggested: Set<String> = []

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func location(_ mark: Mark?) -> SourceLocation? {
        mark.map { SourceLocation(fileIndex: fileIndex, file: file, line: $0.line, column: $0.column) }
    }

    func report(_ path: String, at location: SourceLocation?, _ message: String, fallbackFile: String? = nil) {
        failed.insert(path)
        let issue = RulesIssue(file: location?.file ?? fallbackFile ?? file, line: location?.line,
                               column: location?.column, field: path, message: message)
        issues.append((location, issues.count, issue))
    }

    /// Treats `path` as already explained without a problem of its own.
    func markFailed(_ path: String) { failed.insert(path) }

    func report(_ path: String, _ node: Node?, _ message: String) {
        report(path, at: location(node?.mark) ?? locations[path], message)
    }

    func remember(_ path: String, _ mark: Mark?) {
        if let location = location(mark), locations[path] == nil { locations[path] = location }
    }

    /// The mapping at `path`. `known` nil accepts any key (maps of codes); otherwise unknown keys are reported.
    func mapping(_ node: Node, path: String, known: [String]?, required: [String] = []) -> Fields? {
        guard case .mapping(let mapping) = node else {
            report(path, node, "must be a mapping of keys to values, got \(Self.kind(node))")
            return nil
        }
        var pairs: [(String, Node, Node)] = []
        var firstLine: [String: Int] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode, keyNode.tagName != .null else {
                report(path, keyNode, "keys must be plain names, got \(Self.kind(keyNode))")
                continue
            }
            let key = scalar.string
            let keyPath = Self.join(path, key)
            if let line = firstLine[key] {
                report(keyPath, keyNode, "duplicate key \(key) (first at line \(line))")
                continue
            }
            firstLine[key] = keyNode.mark?.line ?? 0
            if let known, !known.contains(key) {
                let nearest = Self.nearest(key, in: known)
                if let nearest { suggested.insert(Self.join(path, nearest)) }
                let hint = nearest.map { "; did you mean \($0)?" } ?? " (known keys: \(known.joined(separator: ", ")))"
                report(keyPath, keyNode, "unknown key \(key)\(hint)")
                continue
            }
            remember(keyPath, keyNode.mark)
            pairs.append((key, keyNode, value))
        }
        for key in required where firstLine[key] == nil {
            let keyPath = Self.join(path, key)
            // A misspelt key already reported with this one as its suggestion: one problem, not two.
            if suggested.contains(keyPath) {
                failed.insert(keyPath)
                continue
            }
            report(keyPath, at: locations[path] ?? location(node.mark), "missing required field")
        }
        return Fields(path: path, pairs: pairs)
    }

    /// A whole number; quoted numbers, decimals and values beyond 64 bits are refused.
    func int(_ fields: Fields, _ key: String) -> Int64? {
        guard let node = fields[key] else { return nil }
        let path = fields.child(key)
        guard case .scalar(let scalar) = node, node.tagName == .int else {
            let hint = node.tagName == .str && Int64(node.string ?? "") != nil ? " (remove the quotes)" : ""
            report(path, node, "must be a whole number, got \(Self.kind(node))\(hint)")
            return nil
        }
        guard let value = Int64.construct(from: scalar) else {
            report(path, node, "\(scalar.string) does not fit in a 64-bit integer")
            return nil
        }
        return value
    }

    /// As `int`, for day counts and ranks.
    func smallInt(_ fields: Fields, _ key: String) -> Int? {
        guard let value = int(fields, key) else { return nil }
        guard let small = Int(exactly: value), abs(value) <= 1_000_000_000 else {
            report(fields.child(key), fields[key], "\(value) is out of range")
            return nil
        }
        return small
    }

    /// Any non-null scalar, as written.
    func string(_ fields: Fields, _ key: String) -> String? {
        guard let node = fields[key] else { return nil }
        return string(node, path: fields.child(key))
    }

    func string(_ node: Node, path: String) -> String? {
        guard case .scalar(let scalar) = node, node.tagName != .null else {
            report(path, node, "must be a text value, got \(Self.kind(node))")
            return nil
        }
        return scalar.string
    }

    /// One of `allowed`, with the nearest suggested when it is not.
    func choice(_ fields: Fields, _ key: String, _ allowed: [String]) -> String? {
        guard let value = string(fields, key) else { return nil }
        guard allowed.contains(value) else {
            let hint = Self.nearest(value, in: allowed).map { "; did you mean \($0)?" } ?? ""
            report(fields.child(key), fields[key],
                   "must be one of \(allowed.joined(separator: ", ")), got \(value)\(hint)")
            return nil
        }
        return value
    }

    /// A list of codes, each remembered at `path.code`; a code listed twice is refused.
    func codeList(_ fields: Fields, _ key: String) -> [String]? {
        guard let node = fields[key] else { return nil }
        let path = fields.child(key)
        guard case .sequence(let sequence) = node else {
            report(path, node, "must be a list (e.g. [a, b]), got \(Self.kind(node))")
            return nil
        }
        var codes: [String] = []
        for item in sequence {
            guard let code = string(item, path: path) else { continue }
            let itemPath = Self.join(path, code)
            if codes.contains(code) {
                report(itemPath, item, "\(code) is listed twice")
                continue
            }
            remember(itemPath, item.mark)
            codes.append(code)
        }
        return codes
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar):
            switch node.tagName {
            case .null: return "nothing (null)"
            case .bool: return "true/false \(scalar.string)"
            case .int: return "number \(scalar.string)"
            case .float: return "number \(scalar.string)"
            default: return "text \"\(scalar.string)\""
            }
        @unknown default: return "an unsupported node"
        }
    }

    /// The known name closest to `word` by edit distance, if close enough to be a likely typo.
    static func nearest(_ word: String, in known: [String]) -> String? {
        let lowered = word.lowercased()
        let scored = known.map { ($0, editDistance(lowered, $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(2, word.count / 3) ? best.0 : nil
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension Node {
    /// The resolved tag (`Tag.name` is not public in Yams 5).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.description) }
}
