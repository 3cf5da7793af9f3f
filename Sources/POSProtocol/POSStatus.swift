/// Response status codes, numbered like gRPC's so POS vendors recognise them. Carried in a response frame's
/// status field; a non-OK response's payload is an `ErrorDetail` with a stable code and a message.
public enum POSStatus: UInt32, Sendable, CaseIterable {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    /// Whether a till may retry the same request (with the same POS transaction id) after this status.
    public var isRetryable: Bool {
        switch self {
        case .deadlineExceeded, .unavailable, .aborted, .resourceExhausted: true
        default: false
        }
    }
}
