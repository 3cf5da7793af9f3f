/// Exact awards as fractions over a fixed denominator, in 128-bit integers so nothing rounds or wraps before the
/// one floor the rounding mode asks for.
///
/// A line's exact award is paid × K / 10^12 where K = rate × product multiplier × campaign multiplier
/// + extra rates × 10^8 (every factor in basis points, hence 10^4 per factor). paid and K are below 2^63, so their
/// product is below 2^126 and always fits.
enum ExactArithmetic {
    static let denominator: UInt128 = 1_000_000_000_000
    static let bp: UInt128 = 10_000

    /// K for one line; nil when it does not fit in 63 bits.
    static func factor(rateBp: Int64, productBp: Int64, campaignBp: Int64, extraBp: Int64) -> UInt128? {
        let limit = UInt128(Int64.max)
        let (rp, o1) = UInt128(rateBp).multipliedReportingOverflow(by: UInt128(productBp))
        let (rpc, o2) = rp.multipliedReportingOverflow(by: UInt128(campaignBp))
        let (extra, o3) = UInt128(extraBp).multipliedReportingOverflow(by: bp * bp)
        let (sum, o4) = rpc.addingReportingOverflow(extra)
        guard !(o1 || o2 || o3 || o4), sum <= limit else { return nil }
        return sum
    }

    /// paid × K, exact (fits by construction; checked anyway).
    static func numerator(paidMinor: Int64, factor: UInt128) -> UInt128? {
        let (product, overflow) = UInt128(paidMinor).multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }

    /// floor(numerator / denominator) as Int64, nil when above Int64.max.
    static func floor(_ numerator: UInt128) -> Int64? {
        let whole = numerator / denominator
        return whole <= UInt128(Int64.max) ? Int64(whole) : nil
    }

    /// numerator / denominator written in decimal, trailing zeros dropped: 12340000000000 → "12.34".
    static func decimal(_ numerator: UInt128) -> String {
        decimal(numerator, scaleDigits: 12)
    }

    /// A basis-point multiplier as a factor: 25_000 → "×2.5".
    static func times(_ bpValue: Int64) -> String {
        "×" + decimal(UInt128(max(0, bpValue)), scaleDigits: 4)
    }

    /// A basis-point rate as a percentage: 150 → "1.5 %".
    static func percent(_ bpValue: Int64) -> String {
        decimal(UInt128(max(0, bpValue)), scaleDigits: 2) + " %"
    }

    private static func decimal(_ value: UInt128, scaleDigits: Int) -> String {
        var scale: UInt128 = 1
        for _ in 0..<scaleDigits { scale *= 10 }
        let whole = value / scale
        let fraction = value % scale
        guard fraction != 0 else { return "\(whole)" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: scaleDigits - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}
