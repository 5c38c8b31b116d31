import Foundation
import Ledger
import Prometheus
import Engine
import RunnerSupport

/// The scheduler's Prometheus instruments: what this replica did (counters, histograms), plus
/// gauges set from the ledger at each scrape (what all replicas did).
public final class SchedulerMetrics: SchedulerEvents {
    public let registry = PrometheusCollectorRegistry()
    private let durationBuckets: [Double] = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600]
    private let delayBuckets: [Double] = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30]

    public init() {
        registry.makeGauge(name: "runner_scheduler_up", help: "1 while this scheduler runs.").set(to: 1)
    }

    public func ran(_ fire: Scheduler.Fire, outcome: OnceRunner.Outcome) {
        switch outcome {
        case .ran(let last, let earlier):
            for record in earlier + [last] { count(record) }
            if let first = (earlier.first ?? Optional(last)), fire.trigger == .schedule || fire.trigger == .catchup {
                registry.makeValueHistogram(
                    name: "runner_schedule_delay_seconds", labels: [("job", fire.job)], buckets: delayBuckets,
                    help: "From a slot's instant to its run's start."
                ).record(max(0, first.startedAt.timeIntervalSince(first.slot)))
            }
        case .skipped:
            registry.makeCounter(
                name: "runner_skipped_total", labels: [("job", fire.job)],
                help: "Slots recorded skipped because the job's previous run was still running."
            ).increment()
        case .paused:
            registry.makeCounter(
                name: "runner_paused_slots_total", labels: [("job", fire.job)],
                help: "Slots recorded skipped because the job is paused (runner pause)."
            ).increment()
        case .alreadyClaimed, .missed, .noSlot, .beforeDefinition:
            break
        }
    }

    private func count(_ record: RunRecord) {
        registry.makeCounter(
            name: "runner_runs_total", labels: [("job", record.job), ("status", record.status.rawValue)],
            help: "Runs this replica made, by job and how they ended."
        ).increment()
        if let milliseconds = record.durationMs {
            registry.makeValueHistogram(
                name: "runner_run_duration_seconds", labels: [("job", record.job)], buckets: durationBuckets,
                help: "How long runs took."
            ).record(Double(milliseconds) / 1000)
        }
    }

    public func missed(job: String, count: Int) {
        registry.makeCounter(
            name: "runner_missed_total", labels: [("job", job)],
            help: "Slots passed over (the scheduler was stopped or stalled past them)."
        ).increment(by: Int64(count))
    }

    public func abandoned(count: Int) {
        registry.makeCounter(
            name: "runner_abandoned_total", help: "Runs of dead processes this replica marked abandoned."
        ).increment(by: Int64(count))
    }

    /// Sets the gauges read from the ledger and the scheduler, then renders the exposition.
    func exposition(running: [String: Int], jobs: [String], lastSuccess: [String: Date]) -> String {
        for job in jobs {
            registry.makeGauge(
                name: "runner_running", labels: [("job", job)], help: "Runs in progress in this replica."
            ).set(to: Double(running[job] ?? 0))
            if let at = lastSuccess[job] {
                registry.makeGauge(
                    name: "runner_last_success_timestamp_seconds", labels: [("job", job)],
                    help: "When the job's last successful run ended (any replica), Unix seconds."
                ).set(to: at.timeIntervalSince1970)
            }
        }
        return registry.emitToString()
    }
}
