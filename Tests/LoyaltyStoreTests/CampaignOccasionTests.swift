import Foundation
import LoyaltyCore
import LoyaltyStore
import LoyaltyTestSupport
import PostgresNIO
import Testing

private func number(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int64 {
    let rows = try await client.query(query)
    for try await value in rows.decode(Int64.self) { return value }
    return -1
}

private func utc(_ text: String) throws -> Date {
    try Date.ISO8601FormatStyle().parse(text)
}

/// A member with a card, a birth date and tags; returns its id.
private func member(_ client: PostgresClient, _ card: String, born: String?, tags: [String] = [], status: String = "active") async throws -> Int64 {
    try await number(client, """
        INSERT INTO members (card_number, birth_date, tags, status, tier_id)
        VALUES (\(card), \(born)::date, \(tags), \(status), (SELECT min(tier_id) FROM tiers)) RETURNING member_id
        """)
}

/// A purchase as the till books it: an accrual with spend, at `occurredAt`.
private func purchase(_ ledger: LedgerStore, _ memberID: Int64, at occurredAt: Date, key: String) async throws {
    _ = try await ledger.accrue(
        AccrualRequest(
            memberID: memberID, unit: .points, amount: 10, availableAt: occurredAt, expiresAt: nil, occurredAt: occurredAt,
            actor: "till-1", spendMinor: 1_000),
        key: try IdempotencyKey(scope: "pos:till-1", key: key))
}

/// Passes until nothing more is due at `now`, as the runner does; returns the members paid.
@discardableResult
private func pass(_ store: CampaignStore, _ campaign: Int64, now: Date, batchSize: Int = 500) async throws -> [Int64] {
    var paid: [Int64] = []
    for _ in 0..<100 {
        let progress = try await store.occasionBatch(campaign, batchSize: batchSize, actor: "test-runner", now: now)
        paid += progress.paidMemberVersions.map(\.memberID)
        if progress.more != true { return paid }
    }
    Issue.record("the campaign still had more to pay after 100 batches")
    return paid
}

/// Passes at `now` until every one of `members` has its welcome award, or 30 s have gone by; returns whom these
/// passes paid. A welcome payment waits for every older writing transaction of the PostgreSQL server to end, and
/// tests of other suites may hold one open for a moment.
private func passUntilPaid(
    _ client: PostgresClient, _ store: CampaignStore, _ campaign: Int64, _ members: [Int64], now: Date, batchSize: Int = 500
) async throws -> [Int64] {
    let deadline = ContinuousClock.now + .seconds(30)
    var paid: [Int64] = []
    while true {
        paid += try await pass(store, campaign, now: now, batchSize: batchSize)
        let awarded = try await number(client, """
            SELECT count(*) FROM campaign_awards WHERE campaign_id = \(campaign) AND member_id = ANY(\(members))
            """)
        if awarded == members.count || ContinuousClock.now >= deadline { return paid }
        try await Task.sleep(for: .milliseconds(50))
    }
}

@Suite("Birthday and welcome campaigns")
struct CampaignOccasionTests {
    @Test("a birthday campaign pays each member on their birthday once a year, catches up missed days, pays 29 February birthdays on the 28th in other years, and skips blocked members")
    func birthdays() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let feb28 = try await member(client, "BD-0228", born: "1980-02-28")
            let feb29 = try await member(client, "BD-0229", born: "1988-02-29")
            let mar1 = try await member(client, "BD-0301", born: "1990-03-01")
            _ = try await member(client, "BD-0302", born: "1991-03-02")
            _ = try await member(client, "BD-BLOCKED", born: "1992-03-01", status: "blocked")
            _ = try await member(client, "BD-NONE", born: nil)
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let campaign = try await store.createOccasion(
                kind: "birthday", name: "Birthday treat", segmentID: nil, bonusPoints: 50, expiresDays: 30, budgetPoints: nil,
                startsAt: try utc("2027-02-20T00:00:00Z"), endsAt: try utc("2029-01-01T00:00:00Z"), createdBy: "test")

            // Before the window opens nothing happens and the campaign stays scheduled.
            #expect(try await pass(store, campaign, now: try utc("2027-02-10T12:00:00Z")).isEmpty)
            #expect(try await store.progress(campaign)?.state == "scheduled")

            // 1 March 2027: the runner was not there for a week; 28 Feb (with the 29th's child) and 1 March are paid.
            let march1 = try utc("2027-03-01T12:00:00Z")
            #expect(Set(try await pass(store, campaign, now: march1)) == [feb28, feb29, mar1])
            #expect(try await pass(store, campaign, now: march1).isEmpty)
            #expect(try await pass(store, campaign, now: try utc("2027-03-01T23:00:00Z")).isEmpty)

            // A leap year: the 28th and the 29th each get their own day.
            #expect(try await pass(store, campaign, now: try utc("2028-02-28T08:00:00Z")) == [feb28])
            #expect(try await pass(store, campaign, now: try utc("2028-02-29T08:00:00Z")) == [feb29])

            #expect(try await number(client, "SELECT count(*) FROM campaign_awards WHERE occasion = 'birthday:2027'") == 3)
            #expect(try await number(client, "SELECT count(*) FROM campaign_awards WHERE occasion = 'birthday:2028'") == 2)
            #expect(try await number(client, "SELECT count(*) FROM journal_entries WHERE kind = 'campaign_bonus'") == 5)
            #expect(try await number(client, "SELECT balance FROM accounts WHERE member_id = \(feb29) AND bucket = 'available' AND unit = 'points'") == 100)
            let progress = try #require(try await store.progress(campaign))
            #expect(progress.state == "running" && progress.awardedMembers == 5 && progress.awardedPoints == 250)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)

            // After the window the campaign finishes on its next pass and pays nobody again.
            #expect(try await pass(store, campaign, now: try utc("2029-03-01T12:00:00Z")).isEmpty)
            #expect(try await store.progress(campaign)?.finishReason == "window ended")
        }
    }

    @Test("a birthday campaign limited to a segment pays only its members, and its budget stops it exactly at the cap")
    func birthdaySegmentAndBudget() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            var vips: [Int64] = []
            for index in 0..<5 { vips.append(try await member(client, "VIP-\(index)", born: "1985-06-15", tags: ["vip"])) }
            for index in 0..<5 { _ = try await member(client, "REG-\(index)", born: "1985-06-15") }
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let segment = try await store.createSegment(name: "VIPs", definition: SegmentDefinition(tagsAny: ["vip"]))
            let window = (try utc("2027-06-01T00:00:00Z"), try utc("2027-07-01T00:00:00Z"))
            let vipOnly = try await store.createOccasion(
                kind: "birthday", name: "VIP birthday", segmentID: segment.id, bonusPoints: 100, expiresDays: 30, budgetPoints: nil,
                startsAt: window.0, endsAt: window.1, createdBy: "test")
            let capped = try await store.createOccasion(
                kind: "birthday", name: "Capped birthday", segmentID: nil, bonusPoints: 100, expiresDays: 30, budgetPoints: 750,
                startsAt: window.0, endsAt: window.1, createdBy: "test")
            let june15 = try utc("2027-06-15T09:00:00Z")

            #expect(Set(try await pass(store, vipOnly, now: june15)) == Set(vips))
            // Batches of 2 against a cap of 7 payments' worth and a half: 7 are paid, the 8th would pass the cap.
            #expect(try await pass(store, capped, now: june15, batchSize: 2).count == 7)
            let done = try #require(try await store.progress(capped))
            #expect(done.state == "finished" && done.finishReason == "budget" && done.awardedPoints == 700)
            #expect(try await pass(store, capped, now: june15).isEmpty)
        }
    }

    @Test("a welcome campaign pays a member once on their first purchase in its window, as soon as it is committed; earlier customers, blocked members and later purchases get nothing more")
    func welcome() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let regular = try await member(client, "WEL-REGULAR", born: nil)
            let newcomer = try await member(client, "WEL-NEW", born: nil)
            let blocked = try await member(client, "WEL-BLOCKED", born: nil)
            _ = try await member(client, "WEL-NOPURCHASE", born: nil)
            let start = Date().addingTimeInterval(-3_600)
            try await purchase(ledger, regular, at: start.addingTimeInterval(-86_400), key: "old-1")

            let campaign = try await store.createOccasion(
                kind: "welcome", name: "Welcome", segmentID: nil, bonusPoints: 200, expiresDays: 60, budgetPoints: nil,
                startsAt: start, endsAt: Date().addingTimeInterval(86_400), createdBy: "test")
            try await purchase(ledger, regular, at: Date(), key: "r-2")
            try await purchase(ledger, newcomer, at: Date(), key: "n-1")
            try await purchase(ledger, newcomer, at: Date(), key: "n-2")
            try await purchase(ledger, blocked, at: Date(), key: "b-1")
            try await client.query("UPDATE members SET status = 'blocked' WHERE member_id = \(blocked)")

            // Paid as soon as the purchases are committed (no settling time). Two runners at once: the campaign
            // row makes them take turns.
            let later = Date()
            async let first = passUntilPaid(client, store, campaign, [newcomer], now: later, batchSize: 1)
            async let second = passUntilPaid(client, store, campaign, [newcomer], now: later, batchSize: 1)
            #expect(try await first + second == [newcomer])
            #expect(try await pass(store, campaign, now: later).isEmpty)

            try await purchase(ledger, newcomer, at: Date(), key: "n-3")
            #expect(try await pass(store, campaign, now: Date().addingTimeInterval(240)).isEmpty)
            #expect(try await number(client, "SELECT count(*) FROM campaign_awards") == 1)
            #expect(try await number(client, "SELECT count(*) FROM campaign_awards WHERE member_id = \(newcomer) AND occasion = 'welcome' AND points = 200") == 1)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }

    @Test("a purchase whose transaction stays open past several passes (and more than 60 s of the runner's clock) is paid once it commits, exactly once; purchases committed after it meanwhile are paid too")
    func welcomeLateCommit() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            let ledger = LedgerStore(client: client, logger: TestServices.logger)
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let slow = try await member(client, "WEL-SLOW", born: nil)
            let quick = try await member(client, "WEL-QUICK", born: nil)
            let campaign = try await store.createOccasion(
                kind: "welcome", name: "Welcome", segmentID: nil, bonusPoints: 200, expiresDays: 60, budgetPoints: nil,
                startsAt: Date().addingTimeInterval(-3_600), endsAt: Date().addingTimeInterval(86_400), createdBy: "test")
            #expect(try await pass(store, campaign, now: Date()).isEmpty)

            // The slow till's purchase: inserted (its entry id taken) in a transaction left open.
            let open = try await RowLock.hold(client, """
                SELECT ledger_accrue('pos:till-slow', 'slow-1', decode('00', 'hex'), \(slow), 'points', 10, now(), NULL,
                                     now(), 'till-slow', NULL, '{}'::jsonb, 1000)
                """)
            // A later purchase commits first, with a higher entry id.
            try await purchase(ledger, quick, at: Date(), key: "quick-1")
            // Passes while the slow purchase is open, the runner's clock more than 60 s past its insert: nothing
            // may move past it.
            var paid = try await pass(store, campaign, now: Date().addingTimeInterval(120))
            paid += try await pass(store, campaign, now: Date().addingTimeInterval(180))
            #expect(!paid.contains(slow))

            try await open.release()
            paid += try await passUntilPaid(client, store, campaign, [slow, quick], now: Date().addingTimeInterval(240))
            #expect(paid.sorted() == [slow, quick].sorted())
            #expect(try await pass(store, campaign, now: Date().addingTimeInterval(300)).isEmpty)
            #expect(try await number(client, "SELECT count(*) FROM campaign_awards WHERE member_id = \(slow) AND occasion = 'welcome'") == 1)
            #expect(try await number(client, "SELECT count(*) FROM campaign_awards WHERE member_id = \(quick) AND occasion = 'welcome'") == 1)
            #expect(try await LedgerAudit(client: client, logger: TestServices.logger).run().isClean)
        }
    }

    @Test("birthday and welcome campaigns are not triggered by hand, and a pass refuses a blast")
    func wrongKinds() async throws {
        try await TestServices.withMigratedDatabase { _, client in
            _ = try await member(client, "K-MEMBER", born: nil, tags: ["k"])
            let store = CampaignStore(client: client, logger: TestServices.logger)
            let segment = try await store.createSegment(name: "K", definition: SegmentDefinition(tagsAny: ["k"]))
            let welcome = try await store.createOccasion(
                kind: "welcome", name: "Welcome", segmentID: nil, bonusPoints: 10, expiresDays: 10, budgetPoints: nil,
                startsAt: Date(), endsAt: Date().addingTimeInterval(3_600), createdBy: "test")
            await #expect(throws: LedgerStoreError.notABonusCampaign(campaignID: welcome, kind: "welcome")) { try await store.trigger(welcome) }
            let blast = try await store.createBonus(
                name: "Blast", segmentID: segment.id, bonusPoints: 10, expiresDays: 10, budgetPoints: nil, createdBy: "test")
            await #expect(throws: LedgerStoreError.notABonusCampaign(campaignID: blast, kind: "bonus")) {
                try await store.occasionBatch(blast, batchSize: 10, actor: "test")
            }
        }
    }
}
