import LoyaltyCore
import Testing

@Suite("Integer amounts")
struct AmountTests {
    @Test func negativeIsRefused() {
        #expect(throws: AmountError.negative(field: "amount", value: -1)) { try Amount(-1, .points) }
    }

    @Test func overflowIsAnErrorNotAWrap() throws {
        let big = try Amount(Int64.max, .points)
        #expect(throws: AmountError.self) { try big.adding(try Amount(1, .points)) }
    }

    @Test func unitsDoNotMix() throws {
        #expect(throws: AmountError.unitMismatch(.points, .cashbackMinor)) {
            try Amount(1, .points).adding(try Amount(1, .cashbackMinor))
        }
    }

    @Test func subtractingBelowZeroIsRefused() throws {
        #expect(throws: AmountError.self) { try Amount(1, .points).subtracting(try Amount(2, .points)) }
        #expect(try Amount(5, .points).subtracting(try Amount(2, .points)).value == 3)
    }

    @Test("adding then subtracting gives back the start (1,000 random pairs)")
    func addSubtractProperty() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<1_000 {
            let a = Int64.random(in: 0...(Int64.max / 2), using: &generator)
            let b = Int64.random(in: 0...(Int64.max / 2), using: &generator)
            let sum = try Amount(a, .points).adding(try Amount(b, .points))
            #expect(sum.value == a + b)
            #expect(try sum.subtracting(try Amount(b, .points)).value == a)
        }
    }
}
