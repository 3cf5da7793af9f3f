import Hummingbird
import Logging
import LoyaltyStore
import NIOCore

/// Turns every error below it into an `application/problem+json` response. Client mistakes get their own code;
/// anything unexpected is logged in full and answered `internal` with the request id only, so nothing about
/// the server's insides reaches the client.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = Self.problem(for: error)
            if problem.code == .internalError || problem.code == .unavailable {
                context.logger.error("admin request failed", metadata: ["error": "\(String(reflecting: error))"])
            } else {
                context.logger.debug("admin request refused", metadata: ["code": "\(problem.code.rawValue)", "detail": "\(problem.detail)"])
            }
            return problem.response(instance: request.uri.path, requestID: context.requestID)
        }
    }

    static func problem(for error: any Error) -> APIProblem {
        switch error {
        case let problem as APIProblem:
            return problem
        case let error as AdminStoreError:
            return switch error {
            case .invalid: APIProblem(.invalidBody, error.description)
            case .notFound: APIProblem(.notFound, error.description)
            case .conflict: APIProblem(.conflict, error.description)
            }
        case let error as LedgerStoreError:
            return ledgerProblem(error)
        case let error as TierChangeError:
            return TierRoutes.problem(error)
        case let error as ReportTimedOut:
            // Retry-After: about as long as the report was given, so the retry does not land on the same load.
            let retryAfterS = max(1, (error.timeoutMs + 999) / 1_000)
            return APIProblem(
                .reportTimedOut, "\(error.description); the database is busy: retry after \(retryAfterS) s, or ask for a shorter range",
                headers: [.retryAfter: "\(retryAfterS)"])
        case is NIOTooManyBytesError:
            return APIProblem(.payloadTooLarge, "the request body is larger than \(JSONRequestBody.maximumBytes) bytes")
        case let error as HTTPError:
            return httpProblem(error.status, message: error.body)
        case let error as any HTTPResponseError:
            return httpProblem(error.status, message: nil)
        default:
            return APIProblem(.internalError, "the server failed; quote the request id when reporting it")
        }
    }

    static func ledgerProblem(_ error: LedgerStoreError) -> APIProblem {
        switch error {
        case .insufficientBalance: APIProblem(.insufficientBalance, error.description)
        case .memberNotActive: APIProblem(.memberNotActive, error.description)
        case .unknownMember: APIProblem(.unknownMember, error.description)
        case .idempotencyConflict: APIProblem(.idempotencyConflict, error.description)
        case .invalidAmount: APIProblem(.invalidAmount, error.description)
        case .invalidDates: APIProblem(.invalidBody, error.description)
        case .unknownCampaign: APIProblem(.unknownCampaign, error.description)
        case .notABonusCampaign: APIProblem(.notABonusCampaign, error.description)
        case .campaignEnded: APIProblem(.campaignEnded, error.description)
        case .campaignAlreadyRunning: APIProblem(.campaignAlreadyRunning, error.description)
        case .campaignHasNoSegment: APIProblem(.campaignHasNoSegment, error.description)
        case .dailyAdjustmentLimitReached: APIProblem(.dailyAdjustmentLimitReached, error.description)
        case .unavailable: APIProblem(.unavailable, "PostgreSQL is unavailable; retry with the same idempotency key")
        default: APIProblem(.internalError, "the server failed; quote the request id when reporting it")
        }
    }

    /// Errors Hummingbird raises itself (no route, body too large, ...).
    static func httpProblem(_ status: HTTPResponse.Status, message: String?) -> APIProblem {
        switch status {
        case .notFound: APIProblem(.notFound, message ?? "no such route")
        case .contentTooLarge: APIProblem(.payloadTooLarge, "the request body is larger than \(JSONRequestBody.maximumBytes) bytes")
        case .unsupportedMediaType: APIProblem(.unsupportedMediaType, message ?? "send Content-Type: application/json")
        case .unauthorized: APIProblem(.unauthenticated, message ?? "send Authorization: Bearer <token>")
        case .forbidden: APIProblem(.forbidden, message ?? "not allowed")
        case .conflict: APIProblem(.conflict, message ?? "conflict")
        default:
            status.kind == .clientError
                ? APIProblem(.invalidParameter, message ?? status.reasonPhrase)
                : APIProblem(.internalError, "the server failed; quote the request id when reporting it")
        }
    }
}
