import Foundation
import Hummingbird
import LoyaltyStore

/// `/v1/reports` (admin, marketer, readonly): outstanding liability per tier and unit, what expires in the next
/// days, accruals and redemptions per day. Read-only SQL in `ReportStore`; every range is bounded.
enum ReportRoutes {
    static let units: Set<String> = ["points", "cashback_minor"]
    static let defaultExpiringDays = 30
    static let defaultDailyRangeDays = 30

    @Sendable static func liability(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        _ = try AdminRequestParameters(request, context)
        let generatedAt = Date()
        let rows = try await services.reports(context).liability()
        var totals: [String: LiabilityTotal] = [:]
        for row in rows {
            var total = totals[row.unit] ?? LiabilityTotal(unit: row.unit, available: 0, pending: 0, held: 0, members: 0)
            total.available = saturating(total.available, row.available)
            total.pending = saturating(total.pending, row.pending)
            total.held = saturating(total.held, row.held)
            total.members = saturating(total.members, row.members)
            totals[row.unit] = total
        }
        return try JSONResponse.make(LiabilityReport(
            generatedAt: RulesBody.timestamp(generatedAt), items: rows, totals: totals.values.sorted { $0.unit < $1.unit }))
    }

    /// `days` 1-365 (default 30), optionally one `unit`.
    @Sendable static func expiring(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["days", "unit"])
        let range = ReportStore.expiringDays
        var days = defaultExpiringDays
        if let text = parameters.string("days") {
            guard let value = Int(text), range.contains(value) else {
                throw APIProblem.invalidParameter("query parameter \"days\" must be an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            days = value
        }
        let unit = try self.unit(parameters)
        let generatedAt = Date()
        let items = try await services.reports(context).expiring(days: days, unit: unit)
        return try JSONResponse.make(ExpiringReport(
            generatedAt: RulesBody.timestamp(generatedAt), days: days, unit: unit, items: items))
    }

    /// `from` and `to` (`YYYY-MM-DD`, UTC, inclusive; default the last 30 days up to today), at most 366 days,
    /// optionally one `unit`.
    @Sendable static func daily(_ request: Request, _ context: AdminRequestContext, _ services: AdminServices) async throws -> Response {
        let parameters = try AdminRequestParameters(request, context, allowedQuery: ["from", "to", "unit"])
        let to = try parameters.string("to").map { (text) throws(APIProblem) in try ReportDate(text, name: "to") } ?? ReportDate.today
        let from = try parameters.string("from").map { (text) throws(APIProblem) in try ReportDate(text, name: "from") }
            ?? to.adding(days: -(defaultDailyRangeDays - 1))
        let span = from.days(until: to)
        guard span >= 0 else { throw APIProblem.invalidParameter("query parameter \"from\" must not be after \"to\"") }
        guard span < ReportStore.maximumDailyRangeDays else {
            throw APIProblem.invalidParameter("from \"from\" to \"to\" is at most \(ReportStore.maximumDailyRangeDays) days")
        }
        let unit = try self.unit(parameters)
        let items = try await services.reports(context).daily(from: from.text, to: to.text, unit: unit)
        return try JSONResponse.make(DailyReport(from: from.text, to: to.text, unit: unit, items: items))
    }

    /// Each tier's sum fits a bigint; their total saturates rather than trapping on an absurd ledger.
    static func saturating(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : sum
    }

    static func unit(_ parameters: AdminRequestParameters) throws(APIProblem) -> String? {
        guard let unit = parameters.string("unit") else { return nil }
        guard units.contains(unit) else { throw .invalidParameter("query parameter \"unit\" must be points or cashback_minor") }
        return unit
    }
}

struct LiabilityTotal: Encodable, Sendable {
    var unit: String
    var available: Int64
    var pending: Int64
    var held: Int64
    var members: Int64
}

struct LiabilityReport: Encodable, Sendable {
    var generatedAt: String
    var items: [LiabilityRow]
    var totals: [LiabilityTotal]

    enum CodingKeys: String, CodingKey {
        case generatedAt = "generated_at", items, totals
    }
}

struct ExpiringReport: Encodable, Sendable {
    var generatedAt: String
    var days: Int
    var unit: String?
    var items: [ExpiringDay]

    enum CodingKeys: String, CodingKey {
        case generatedAt = "generated_at", days, unit, items
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(generatedAt, forKey: .generatedAt)
        try container.encode(days, forKey: .days)
        try container.encode(unit, forKey: .unit)
        try container.encode(items, forKey: .items)
    }
}

struct DailyReport: Encodable, Sendable {
    var from: String
    var to: String
    var unit: String?
    var items: [DailyTotals]

    enum CodingKeys: String, CodingKey { case from, to, unit, items }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(unit, forKey: .unit)
        try container.encode(items, forKey: .items)
    }
}
