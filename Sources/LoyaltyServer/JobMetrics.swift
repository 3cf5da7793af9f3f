import Foundation
import LoyaltyStore
import Metrics

/// Progress of the background work, for `/metrics`: what each ledger job pass did and when it last finished, and
/// how far each campaign run is (gauges per campaign, so a dashboard shows paid of target while a run goes on).
enum JobMetrics {
    /// One pass of a ledger job: lots (or holds) handled, the amount moved, and the time it finished.
    static func recordLedgerJob(_ job: String, items: Int64, amount: Int64) {
        Counter(label: "loyalty_ledger_job_items_total", dimensions: [("job", job)]).increment(by: items)
        Counter(label: "loyalty_ledger_job_amount_total", dimensions: [("job", job)]).increment(by: amount)
        Gauge(label: "loyalty_ledger_job_last_pass_timestamp_seconds", dimensions: [("job", job)])
            .record(Date().timeIntervalSince1970)
    }

    /// The state of a campaign run after a batch.
    static func recordCampaign(_ campaignID: Int64, kind: String, _ progress: CampaignProgress) {
        let dimensions = [("campaign", "\(campaignID)"), ("kind", kind)]
        Gauge(label: "loyalty_campaign_awarded_members", dimensions: dimensions).record(progress.awardedMembers)
        Gauge(label: "loyalty_campaign_awarded_points", dimensions: dimensions).record(progress.awardedPoints)
        if let target = progress.targetMembers {
            Gauge(label: "loyalty_campaign_target_members", dimensions: dimensions).record(target)
        }
    }
}
