/// One parameter value of a statement. `nil` in a parameter list is SQL NULL.
public enum PipelineParameter: Sendable, Hashable {
    /// Text format; the server infers the type from the statement (or an explicit cast such as `$1::int`).
    case text(String)
    /// Binary format in PostgreSQL's send/receive representation of the type with OID `type` (e.g. 17 for bytea).
    case binary([UInt8], type: UInt32)
}

extension PipelineParameter: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self = .text(value)
    }
}

/// One SQL statement for a `PipelineConnection`. Each execution is its own implicit transaction: the statement is
/// followed by its own Sync, and the call returns only once that Sync was answered, i.e. after the commit.
public struct PipelineStatement: Sendable {
    /// The SQL text: one statement, parameters as `$1`, `$2`, ...
    public var sql: String
    /// When set, the statement is prepared under this name once per physical connection (`PQsendPrepare`) and then
    /// executed with `PQsendQueryPrepared`. One name must always stand for the same SQL text.
    public var preparedName: String?
    public var parameters: [PipelineParameter?]
    /// If this instant passes before the statement is handed to libpq, it is not sent and the call fails with
    /// `PipelineError.deadlineExceeded`. Once sent, the answer is awaited regardless of the deadline.
    public var deadline: ContinuousClock.Instant?

    /// A statement with parameters in text format (`nil` is NULL), sent with `PQsendQueryParams`.
    public init(_ sql: String, _ parameters: [String?] = [], deadline: ContinuousClock.Instant? = nil) {
        self.sql = sql
        self.preparedName = nil
        self.parameters = parameters.map { $0.map(PipelineParameter.text) }
        self.deadline = deadline
    }

    public init(sql: String, parameters: [PipelineParameter?], preparedName: String? = nil, deadline: ContinuousClock.Instant? = nil) {
        self.sql = sql
        self.preparedName = preparedName
        self.parameters = parameters
        self.deadline = deadline
    }

    /// A named prepared statement with parameters in text format.
    public static func prepared(
        _ name: String, _ sql: String, _ parameters: [String?] = [], deadline: ContinuousClock.Instant? = nil
    ) -> PipelineStatement {
        PipelineStatement(sql: sql, parameters: parameters.map { $0.map(PipelineParameter.text) }, preparedName: name, deadline: deadline)
    }
}
