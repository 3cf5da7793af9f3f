import Foundation
import LoyaltyStore
import Metrics

/// Progress of the background work, for `/metrics`: what each ledger job pass did and when it last finished, and
/// how far each campaign run is (gauges per campaign, so a dashboard shows paid of target while a run goes on; removed
/// when the campaign ends).
enum JobMetrics {
    /// One pass of a ledger job: lots (or holds) handled, the amount moved, and the time it finished.
    static func recordLedgerJob(_ job: String, items: Int64, amount: Int64) {
        Counter(label: "loyalty_ledger_job_items_total", dimensions: [("job", job)]).increment(by: items)
        Counter(label: "loyalty_ledger_job_amount_total", dimensions: [("job", job)]).increment(by: amount)
        Gauge(label: "loyalty_ledger_job_last_pass_timestamp_seconds", dimensions: [("job", job)])
            .record(Date().timeIntervalSince1970)
    }

    static let campaignGauges = ["loyalty_campaign_awarded_members", "loyalty_campaign_awarded_points", "loyalty_campaign_target_members"]

    /// The state of a campaign run after a batch; once the campaign is over (finished or cancelled), its series are
    /// removed instead, so `/metrics` does not grow with every campaign ever run.
    static func recordCampaign(_ campaignID: Int64, kind: String, _ progress: CampaignProgress, factory: any MetricsFactory = MetricsSystem.factory) {
        let dimensions = [("campaign", "\(campaignID)"), ("kind", kind)]
        guard progress.state != "finished" && progress.state != "cancelled" else {
            for label in campaignGauges { Gauge(label: label, dimensions: dimensions, factory: factory).destroy() }
            return
        }
        Gauge(label: "loyalty_campaign_awarded_members", dimensions: dimensions, factory: factory).record(progress.awardedMembers)
        Gauge(label: "loyalty_campaign_awarded_points", dimensions: dimensions, factory: factory).record(progress.awardedPoints)
        if let target = progress.targetMembers {
            Gauge(label: "loyalty_campaign_target_members", dimensions: dimensions, factory: factory).record(target)
        }
    }
}
