import Foundation
import LoyaltyRules

/// Temporary rules folders for loader tests, built from the shipped rules/program.yaml.
enum RulesTestFiles {
    /// The repository's rules/ folder (found from this file's path, so it works from any working directory).
    static let shippedDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("rules")

    static func shippedText() throws -> String {
        try String(contentsOf: shippedDirectory.appendingPathComponent("program.yaml"), encoding: .utf8)
    }

    /// A fresh folder holding `files` (name → text); removed by `remove`.
    static func folder(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("rules-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files {
            try Data(text.utf8).write(to: url.appendingPathComponent(name))
        }
        return url
    }

    static func remove(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    /// The shipped program.yaml with `replacements` applied (each must match), as program.yaml.
    static func shippedWith(_ replacements: [(String, String)]) throws -> String {
        var text = try shippedText()
        for (old, new) in replacements {
            precondition(text.contains(old), "the shipped rules no longer contain \(old)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }

    /// 1-based number of the first line of `text` that contains `needle`.
    static func line(of needle: String, in text: String) -> Int? {
        text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(needle) }.map { $0 + 1 }
    }

    /// The problems of loading `files`; empty when they load.
    static func issues(_ files: [String: String]) throws -> [RulesIssue] {
        let url = try folder(files)
        defer { remove(url) }
        do {
            _ = try RulesLoader.load(directory: url)
            return []
        } catch {
            return error.issues
        }
    }
}
