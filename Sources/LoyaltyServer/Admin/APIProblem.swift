import Foundation
import Hummingbird

/// The stable error codes of the admin API, one per class of error. A client switches on the code (the last part
/// of the problem `type`), never on the human-readable `detail`.
enum ProblemCode: String, Sendable, CaseIterable {
    case unauthenticated
    case forbidden
    case notFound = "not_found"
    case invalidBody = "invalid_body"
    case invalidParameter = "invalid_parameter"
    case conflict
    case payloadTooLarge = "payload_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    case insufficientBalance = "insufficient_balance"
    case memberNotActive = "member_not_active"
    case unknownMember = "unknown_member"
    case idempotencyConflict = "idempotency_conflict"
    case invalidAmount = "invalid_amount"
    case unknownCampaign = "unknown_campaign"
    case notABonusCampaign = "not_a_bonus_campaign"
    case campaignEnded = "campaign_ended"
    case campaignAlreadyRunning = "campaign_already_running"
    case campaignHasNoSegment = "campaign_has_no_segment"
    case unknownTier = "unknown_tier"
    case tierInUse = "tier_in_use"
    case tierRankTaken = "tier_rank_taken"
    case tierThresholdsNotIncreasing = "tier_thresholds_not_increasing"
    case tierLadderInvalid = "tier_ladder_invalid"
    case dailyAdjustmentLimitReached = "daily_adjustment_limit_reached"
    case reportTimedOut = "report_timed_out"
    case methodNotAllowed = "method_not_allowed"
    case unavailable
    case internalError = "internal"

    var status: HTTPResponse.Status {
        switch self {
        case .unauthenticated: .unauthorized
        case .forbidden, .dailyAdjustmentLimitReached: .forbidden
        case .notFound, .unknownMember, .unknownCampaign, .unknownTier: .notFound
        case .invalidBody, .invalidParameter, .invalidAmount: .badRequest
        case .conflict, .insufficientBalance, .memberNotActive, .idempotencyConflict, .notABonusCampaign, .campaignEnded,
            .campaignAlreadyRunning, .campaignHasNoSegment, .tierInUse, .tierRankTaken, .tierThresholdsNotIncreasing,
            .tierLadderInvalid:
            .conflict
        case .methodNotAllowed: .methodNotAllowed
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .unavailable, .reportTimedOut: .serviceUnavailable
        case .internalError: .internalServerError
        }
    }

    var title: String {
        switch self {
        case .unauthenticated: "Authentication required"
        case .forbidden: "Not allowed for this token's role"
        case .notFound: "Not found"
        case .invalidBody: "Invalid request body"
        case .invalidParameter: "Invalid parameter"
        case .conflict: "Conflict with the current state"
        case .payloadTooLarge: "Request body too large"
        case .unsupportedMediaType: "Request body must be JSON"
        case .insufficientBalance: "Insufficient balance"
        case .memberNotActive: "Member not active"
        case .unknownMember: "Unknown member"
        case .idempotencyConflict: "Idempotency key reused for another request"
        case .invalidAmount: "Invalid amount"
        case .unknownCampaign: "Unknown campaign"
        case .notABonusCampaign: "Not a bonus campaign"
        case .campaignEnded: "Campaign ended"
        case .campaignAlreadyRunning: "Campaign already running"
        case .campaignHasNoSegment: "Campaign has no segment"
        case .unknownTier: "Unknown tier"
        case .tierInUse: "Tier in use"
        case .tierRankTaken: "Tier rank taken"
        case .tierThresholdsNotIncreasing: "Tier thresholds must rise with rank"
        case .tierLadderInvalid: "Tier ladder would be invalid"
        case .dailyAdjustmentLimitReached: "Daily adjustment limit reached"
        case .reportTimedOut: "Report timed out"
        case .methodNotAllowed: "Method not allowed on this path"
        case .unavailable: "Service unavailable"
        case .internalError: "Internal error"
        }
    }

    var type: String { "urn:loyalty:problem:\(rawValue)" }
}

/// An error the admin API answers with an `application/problem+json` body (RFC 9457). Thrown anywhere below a
/// route; `ProblemMiddleware` renders it with the request path and id.
struct APIProblem: Error, Sendable, Equatable {
    var code: ProblemCode
    var detail: String
    /// Extra response headers, e.g. `WWW-Authenticate` on 401.
    var headers: HTTPFields = [:]

    init(_ code: ProblemCode, _ detail: String, headers: HTTPFields = [:]) {
        self.code = code
        self.detail = detail
        self.headers = headers
    }

    static func invalidBody(_ detail: String) -> APIProblem { APIProblem(.invalidBody, detail) }
    static func invalidParameter(_ detail: String) -> APIProblem { APIProblem(.invalidParameter, detail) }
    static func notFound(_ detail: String) -> APIProblem { APIProblem(.notFound, detail) }
}

/// The problem document. Field names are RFC 9457's, plus `code` and `request_id`.
struct ProblemDocument: Encodable, Sendable {
    var type: String
    var title: String
    var status: Int
    var detail: String
    var instance: String
    var code: String
    var requestID: String

    enum CodingKeys: String, CodingKey {
        case type, title, status, detail, instance, code
        case requestID = "request_id"
    }

    init(_ problem: APIProblem, instance: String, requestID: String) {
        self.type = problem.code.type
        self.title = problem.code.title
        self.status = problem.code.status.code
        self.detail = problem.detail
        self.instance = instance
        self.code = problem.code.rawValue
        self.requestID = requestID
    }
}

extension APIProblem {
    func response(instance: String, requestID: String) -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        let document = ProblemDocument(self, instance: instance, requestID: requestID)
        let body = (try? JSONResponse.encoder.encode(document)) ?? Data("{}".utf8)
        return Response(status: code.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
