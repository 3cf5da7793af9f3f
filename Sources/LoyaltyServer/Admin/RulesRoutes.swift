import Foundation
import Hummingbird
import LoyaltyRules
import LoyaltyStore

/// `/v1/rules`: the rules in force (version, activation time, files), a dry run of uploaded rules files (nothing
/// changes), and a reload of this server's rules folder. A reload only affects the server that answers it; other
/// servers reload on SIGHUP or their own request. An actual change is audited (`rules.reload`).
enum RulesRoutes {
    static let maximumFiles = 16

    @Sendable static func current(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let rules = try rulesInForce(services)
        let loaded = rules.current
        return try JSONResponse.make(RulesBody(
            version: loaded.version, activatedAt: RulesBody.timestamp(rules.currentActivatedAt), files: loaded.files,
            program: loaded.ruleSet.name, currency: loaded.ruleSet.currency))
    }

    /// Validates `{"files": {"program.yaml": "<YAML text>", ...}}` as the loader would a folder of those files
    /// (read in name order); answers the problems (file, line, field) and the version the set would have.
    @Sendable static func validate(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let rules = try rulesInForce(services)
        let sources = try files(from: try await JSONRequestBody.object(request))
        let result: RulesValidationBody
        do {
            let loaded = try RulesLoader.load(sources: sources)
            result = RulesValidationBody(
                valid: true, version: loaded.version, sameAsCurrent: loaded.version == rules.current.version,
                problems: [], omitted: 0)
        } catch {
            let (problems, omitted) = RulesProblem.list(error)
            result = RulesValidationBody(valid: false, version: nil, sameAsCurrent: false, problems: problems, omitted: omitted)
        }
        return try JSONResponse.make(result)
    }

    /// Re-reads the rules folder: `reloaded` (now in force, recorded in the shared history), `unchanged`, or
    /// `rejected` with the problems (the rules in force stay).
    @Sendable static func reload(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let rules = try rulesInForce(services)
        try await JSONRequestBody.object(request, required: false).allowOnly([])
        let audit = try context.auditContext()
        let (outcome, error) = rules.reloadReportingError()
        let body: RulesReloadBody
        switch outcome {
        case .unchanged(let version):
            body = RulesReloadBody(outcome: "unchanged", version: version, previousVersion: version, problems: [], omitted: 0)
        case .rejected(let kept, _):
            let (problems, omitted) = error.map(RulesProblem.list) ?? ([], 0)
            body = RulesReloadBody(outcome: "rejected", version: kept, previousVersion: kept, problems: problems, omitted: omitted)
        case .reloaded(let from, let to):
            body = RulesReloadBody(outcome: "reloaded", version: to, previousVersion: from, problems: [], omitted: 0)
            do { try await rules.synchronize(with: services.rulesHistory(context)) } catch {
                context.logger.error("could not record the reloaded rules in the history; offline replays on other servers may use the previous version",
                                     metadata: ["error": "\(error)"])
            }
            try await services.auditLog(context).record(
                AuditRecord(action: "rules.reload", resource: "rules", before: .object(["version": .string(from)]),
                            after: .object(["version": .string(to), "files": .array(rules.current.files.map { .string($0) })])),
                context: audit)
        }
        return try JSONResponse.make(body)
    }

    static func rulesInForce(_ services: AdminServices) throws(APIProblem) -> CurrentRules {
        guard let rules = services.rules else { throw APIProblem.notFound("this server serves no rules") }
        return rules
    }

    /// The uploaded files in name order; names like a rules folder's (`*.yaml`, `*.yml`), contents strings.
    static func files(from body: JSONFields) throws(APIProblem) -> [(name: String, contents: Data)] {
        try body.allowOnly(["files"])
        let files = try body.required("files", body.object)
        guard (1...maximumFiles).contains(files.fields.count) else {
            throw .invalidBody("field \"files\" must hold 1-\(maximumFiles) files")
        }
        var sources: [(name: String, contents: Data)] = []
        for name in files.fields.keys.sorted() {
            guard isFileName(name) else {
                throw .invalidBody("field \"files\": \"\(name.prefix(80))\" is not a rules file name (1-64 of A-Z a-z 0-9 _ . -, ending .yaml or .yml)")
            }
            guard case .string(let text)? = files.fields[name] else {
                throw .invalidBody("field \"files.\(name)\" must be a string (the file's YAML text)")
            }
            sources.append((name, Data(text.utf8)))
        }
        return sources
    }

    /// 1-64 of A-Z a-z 0-9 _ . -, not hidden, ending `.yaml` or `.yml`: a name the folder loader would read.
    static func isFileName(_ name: String) -> Bool {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        return allowed && (5...64).contains(name.utf8.count) && !name.hasPrefix(".")
            && (name.hasSuffix(".yaml") || name.hasSuffix(".yml"))
    }
}

/// One problem of a rules file as the API shows it.
struct RulesProblem: Encodable, Sendable {
    var file: String
    var line: Int?
    var column: Int?
    var field: String
    var message: String

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(file, forKey: .file)
        try container.encode(line, forKey: .line)
        try container.encode(column, forKey: .column)
        try container.encode(field, forKey: .field)
        try container.encode(message, forKey: .message)
    }

    enum CodingKeys: String, CodingKey { case file, line, column, field, message }

    /// Every issue of `.invalid`; the other errors (no files, an unreadable file or folder) as one problem.
    static func list(_ error: RulesError) -> ([RulesProblem], Int) {
        switch error {
        case .invalid(let issues, let omitted):
            (issues.map { RulesProblem(file: $0.file, line: $0.line, column: $0.column, field: $0.field, message: $0.message) }, omitted)
        case .fileUnreadable(let file, let reason):
            ([RulesProblem(file: file, line: nil, column: nil, field: "", message: "cannot read: \(reason)")], 0)
        case .noRulesFiles, .directoryUnreadable:
            ([RulesProblem(file: "", line: nil, column: nil, field: "", message: error.description)], 0)
        }
    }
}

struct RulesBody: Encodable, Sendable {
    var version: String
    var activatedAt: String
    var files: [String]
    var program: String
    var currency: String

    enum CodingKeys: String, CodingKey {
        case version, activatedAt = "activated_at", files, program, currency
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

struct RulesValidationBody: Encodable, Sendable {
    var valid: Bool
    var version: String?
    var sameAsCurrent: Bool
    var problems: [RulesProblem]
    var omitted: Int

    enum CodingKeys: String, CodingKey {
        case valid, version, sameAsCurrent = "same_as_current", problems, omitted
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(valid, forKey: .valid)
        try container.encode(version, forKey: .version)
        try container.encode(sameAsCurrent, forKey: .sameAsCurrent)
        try container.encode(problems, forKey: .problems)
        try container.encode(omitted, forKey: .omitted)
    }
}

struct RulesReloadBody: Encodable, Sendable {
    var outcome: String
    var version: String
    var previousVersion: String
    var problems: [RulesProblem]
    var omitted: Int

    enum CodingKeys: String, CodingKey {
        case outcome, version, previousVersion = "previous_version", problems, omitted
    }
}
