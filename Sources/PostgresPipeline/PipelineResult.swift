/// The answer to one statement: its rows in text format, its column names and its command tag.
public struct PipelineResult: Sendable, Hashable {
    public var columns: [String]
    /// Rows × columns; `nil` is SQL NULL.
    public var rows: [[String?]]
    /// The command tag, e.g. `SELECT 1` or `INSERT 0 1` (`PQcmdStatus`); empty for an empty query.
    public var commandTag: String

    public init(columns: [String] = [], rows: [[String?]] = [], commandTag: String = "") {
        self.columns = columns
        self.rows = rows
        self.commandTag = commandTag
    }

    /// The number of rows a command affected or returned (the last number of the command tag), if it has one.
    public var rowsAffected: Int? {
        guard let last = commandTag.split(separator: " ").last else { return nil }
        return Int(last)
    }

    /// The value of the first column of the first row, if there is such a row and the value is not NULL.
    public var scalar: String? {
        rows.first?.first ?? nil
    }

    /// The value in `row` under the column named `column`; `nil` when NULL or when there is no such column.
    public func value(row: Int, column: String) -> String? {
        guard let index = columns.firstIndex(of: column), rows.indices.contains(row) else { return nil }
        return rows[row][index]
    }
}

/// An error PostgreSQL reported for a statement. The statement's implicit transaction rolled back.
public struct PostgresServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Five-character SQLSTATE, e.g. `22012` for division by zero.
    public var sqlState: String
    /// `ERROR`, `FATAL` or `PANIC` (not localised).
    public var severity: String
    public var message: String
    public var detail: String?
    public var hint: String?
    public var constraintName: String?

    public init(
        sqlState: String, severity: String = "ERROR", message: String, detail: String? = nil, hint: String? = nil,
        constraintName: String? = nil
    ) {
        self.sqlState = sqlState
        self.severity = severity
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraintName = constraintName
    }

    public var description: String {
        var text = "\(severity) \(sqlState): \(message)"
        if let detail { text += " (detail: \(detail))" }
        return text
    }
}

/// Why a call failed.
///
/// Retryable (`isRetryable`): `outcomeUnknown` (retry with the same idempotency key: the statement may have
/// committed), `unavailable` and `queueFull` (the statement was not sent), and server errors with SQLSTATE class 40
/// (serialization failure, deadlock: rolled back).
public enum PipelineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// PostgreSQL answered the statement with an error; its transaction rolled back.
    case server(PostgresServerError)
    /// The connection failed after the statement was sent and before its Sync was answered: the statement may or
    /// may not have committed.
    case outcomeUnknown(reason: String)
    /// There is no usable connection (down, reconnecting with backoff, or lost before this statement was sent): the
    /// statement was not sent.
    case unavailable(reason: String)
    /// More statements are waiting to be sent on this connection than its configured `maxQueued`: not sent.
    case queueFull(limit: Int)
    /// The statement's deadline passed before it was sent: not sent.
    case deadlineExceeded
    /// The connection (or pool) is closed or closing: not sent.
    case closed
    /// libpq refused the statement before sending it (e.g. a parameter text containing NUL, too many parameters)
    /// or the server answered in a way this driver does not handle (e.g. COPY). Not retryable.
    case client(String)

    /// Whether retrying (with the same idempotency key for writes) is reasonable.
    public var isRetryable: Bool {
        switch self {
        case .outcomeUnknown, .unavailable, .queueFull: true
        case .server(let error): error.sqlState.hasPrefix("40")
        case .deadlineExceeded, .closed, .client: false
        }
    }

    /// True only for `outcomeUnknown`: every other case means the statement did not commit.
    public var mayHaveCommitted: Bool {
        if case .outcomeUnknown = self { return true }
        return false
    }

    /// The SQLSTATE of a server error.
    public var sqlState: String? {
        if case .server(let error) = self { return error.sqlState }
        return nil
    }

    public var description: String {
        switch self {
        case .server(let error): "PostgreSQL error \(error)"
        case .outcomeUnknown(let reason): "connection lost with the statement in flight, outcome unknown: \(reason)"
        case .unavailable(let reason): "no connection, statement not sent: \(reason)"
        case .queueFull(let limit): "more than \(limit) statements waiting on the connection, statement not sent"
        case .deadlineExceeded: "deadline passed before the statement was sent"
        case .closed: "connection closed, statement not sent"
        case .client(let message): "statement refused: \(message)"
        }
    }
}
