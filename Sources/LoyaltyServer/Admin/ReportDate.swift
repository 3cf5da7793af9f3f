import Foundation

/// A calendar day in UTC as reports take it (`YYYY-MM-DD`), years 2000-2999 so every day is one PostgreSQL
/// accepts and a range stays meaningful.
struct ReportDate: Sendable, Equatable {
    static let years = 2000...2999
    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// Midnight UTC of the day.
    let date: Date

    static var today: ReportDate { ReportDate(date: calendar.startOfDay(for: Date())) }

    private init(date: Date) { self.date = date }

    /// Parses `text`, refusing anything but a real calendar day: 400 naming the query parameter.
    init(_ text: String, name: String) throws(APIProblem) {
        let refusal = APIProblem.invalidParameter(
            "query parameter \"\(name)\" must be a date YYYY-MM-DD from \(Self.years.lowerBound) to \(Self.years.upperBound)")
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes.enumerated().allSatisfy({ $0.offset == 4 || $0.offset == 7 || ($0.element >= 0x30 && $0.element <= 0x39) }),
            let year = Int(text.prefix(4)), let month = Int(text.dropFirst(5).prefix(2)), let day = Int(text.suffix(2)),
            Self.years.contains(year)
        else { throw refusal }
        let components = DateComponents(year: year, month: month, day: day)
        // A date the calendar had to roll over (2025-02-30 → March 2) is not a real day.
        guard components.isValidDate(in: Self.calendar), let date = Self.calendar.date(from: components) else { throw refusal }
        self.date = date
    }

    var text: String {
        let parts = Self.calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    func adding(days: Int) -> ReportDate {
        ReportDate(date: Self.calendar.date(byAdding: .day, value: days, to: date) ?? date)
    }

    /// Whole days from this day to `other` (negative when `other` is earlier).
    func days(until other: ReportDate) -> Int {
        Self.calendar.dateComponents([.day], from: date, to: other.date).day ?? 0
    }
}
