import Testing

@Test func rulesTargetBuilds() { #expect(Bool(true)) }
