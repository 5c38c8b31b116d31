import Foundation
import HeapModule
import JobTable
import Ledger
import Logging
import PostgresClient
import Processes
import RunnerSupport

/// What a scheduler tells its watchers (the `/metrics` counters): called from its tasks.
public protocol SchedulerEvents: Sendable {
    /// A fire (or a retry the sweep started) ended with `outcome`.
    func ran(_ fire: Scheduler.Fire, outcome: OnceRunner.Outcome)
    /// `count` slots of `job` were passed over.
    func missed(job: String, count: Int)
    /// The sweep marked `count` runs of dead processes abandoned.
    func abandoned(count: Int)
}

/// `runner schedule`'s loop: the job table's next fires in one heap (no task or timer per
/// job), each fire claimed through the same ledger claim as `runner once`, so any number of
/// replicas on one database behave as one scheduler.
///
/// The scheduler never reads a clock itself: ``tick(now:)`` is given the instant (the
/// database's, read once per tick by the loop), so tests drive it through days, DST changes
/// and clock jumps without sleeping.
public actor Scheduler {
    /// One slot the scheduler starts: `trigger` is `schedule` for a fire on time, `catchup` for
    /// the latest slot within `catchup` after a start or a stall.
    public struct Fire: Sendable, Equatable, CustomStringConvertible {
        public let job: String
        public let slot: Date
        public let trigger: RunTrigger

        public var description: String { "\(job)@\(Ledger.slotKey(for: slot)) (\(trigger.rawValue))" }
    }

    /// What a tick found due: the fires to start, and per job the slots passed over (older than
    /// the one caught up, or all of them when even the earliest is past `catchup`), which
    /// ``Owed`` then decides: coalesced within catchup, missed past it.
    public struct Plan: Sendable {
        public var fires: [Fire] = []
        public var passed: [String: [Date]] = [:]
    }

    /// A job's next fire (a reload replaces them all).
    package struct Entry: Comparable {
        package let fire: Date
        package let job: String
        /// Planned at start-up from a slot already begun: running it is a catch-up.
        package let catchingUp: Bool
        /// Planned again after a claim lost with the connection, beside the job's own next fire.
        package var requeued = false

        package static func < (left: Entry, right: Entry) -> Bool {
            (left.fire, left.job) < (right.fire, right.job)
        }
    }

    /// A slot that began at most this long before the scheduler started is on time, not a
    /// catch-up (a start at 10:00:00.3 runs the 10:00 slot as scheduled).
    public static let onTime: Duration = .seconds(1)

    /// How often the loop also sweeps for runs whose process is gone and retries left due by
    /// processes that died in their backoff.
    public static let sweepInterval: Duration = .seconds(5)

    /// The pass over pending notifications in progress, if any.
    private var resending: Task<Void, Never>?
    private var jobs: [String: Job] {
        didSet { tableNames.withLock { $0 = Set(jobs.keys) } }
    }
    /// The table's job names, read by claims being tried again (a reload that removes a job
    /// ends them).
    private let tableNames = Locked<Set<String>>([])
    /// When each job's schedule took its present form: no slot before it is run, nor owed.
    private var definitions: [String: Date]
    private var heap = Heap<Entry>()
    /// A slot being run by this process (its retries included).
    package struct SlotID: Hashable {
        package let job: String
        package let slot: Date
    }
    private var inFlight: [SlotID: Task<Void, Never>] = [:]
    private var claiming = true
    private var lastSweep: Date?
    /// What the ledger keeps; nil: this scheduler prunes nothing.
    private var retention: Retention?
    private var pruning: Task<Void, Never>?
    private var lastPruneCheck: Date?
    /// How often a replica asks whether retention is due (the ledger runs it once an hour).
    public static let pruneCheckInterval: Duration = .seconds(60)
    /// Missed rows this replica wrote since start, per job (another replica's are its own).
    public private(set) var missedCounts: [String: Int] = [:]
    /// The first sweep after start is a catch-up: slots within catchup before the one it runs
    /// are recorded coalesced.
    private var sweptOnce = false
    package let runner: OnceRunner
    package let logger: Logger
    package let events: SchedulerEvents?
    /// When the last tick began (the loop's pulse, for `/health`).
    public private(set) var lastTick: ContinuousClock.Instant?
    /// This host's clock less the database's at the last tick, in ms: what the runs record.
    private var skewMs: Double = 0
    /// Slots that could not be run in a row (a claim or a run's record refused), or claims
    /// refused in a row while their slots are still tried: `/health` says so while they keep
    /// failing.
    public var failuresInARow: Int { max(slotsFailedInARow, runner.claimTrouble.inARow) }
    private var slotsFailedInARow = 0
    /// Runs this scheduler recorded `interrupted` once its shutdown began (a second signal's
    /// included), each once: what the last log line says.
    public private(set) var interruptedTotal = 0

    /// Plans every job from `now`: the latest slot within each job's `catchup` (a catch-up of
    /// what a restart or deploy passed over), else its next fire. `definitions`: when each job's
    /// schedule took its present form (``Ledger/slotHistories(jobs:)``); a slot before it is
    /// never run, so a job new to the table starts with its next fire.
    public init(
        jobs: [Job], runner: OnceRunner, logger: Logger, now: Date, retention: Retention? = nil,
        events: SchedulerEvents? = nil, definitions: [String: Date] = [:]
    ) {
        self.events = events
        self.jobs = Dictionary(jobs.map { ($0.name, $0) }) { first, _ in first }
        tableNames.withLock { $0 = Set(jobs.map(\.name)) }
        self.definitions = definitions
        self.retention = retention
        self.runner = runner
        self.logger = logger
        for job in jobs {
            if let entry = Self.firstEntry(job, now: now, definedAt: definitions[job.name]) { heap.insert(entry) }
        }
    }

    private static func firstEntry(_ job: Job, now: Date, definedAt: Date?) -> Entry? {
        if let slot = job.schedule.previous(atOrBefore: now, within: job.catchup), definedAt.map({ slot >= $0 }) ?? true
        {
            let late = now.timeIntervalSince(slot) > onTime.timeInterval
            return Entry(fire: slot, job: job.name, catchingUp: late)
        }
        return job.schedule.next(after: now).map { Entry(fire: $0, job: job.name, catchingUp: false) }
    }

    /// The earliest planned fire: the loop sleeps until then (or less).
    public var nextFire: Date? { heap.min?.fire }

    /// Takes every fire due at `now` off the heap and plans each job's next one. A job due
    /// several times over (the loop stalled, the clock jumped forward) runs its latest slot
    /// within `catchup` once; the slots before it are missed, never run late in a burst.
    public func plan(now: Date) -> Plan {
        var plan = Plan()
        while let top = heap.min, top.fire <= now {
            heap.removeMin()
            guard let job = jobs[top.job] else { continue }
            var latest = job.schedule.previous(atOrBefore: now, within: job.catchup)
            // Nothing from before the job's definition runs.
            if let definedAt = definitions[job.name], let slot = latest, slot < definedAt { latest = nil }
            let passedUntil: Date
            if let latest, latest >= top.fire {
                let stalled = latest > top.fire
                plan.fires.append(
                    Fire(job: job.name, slot: latest, trigger: top.catchingUp || stalled ? .catchup : .schedule))
                passedUntil = latest
            } else {
                passedUntil = now.addingTimeInterval(0.000_001)
            }
            // The newest, up to the coalesced cap: older ones past catchup are the check's to record.
            let passed = Owed.newestSlots(
                of: job, after: top.fire.addingTimeInterval(-0.000_001),
                through: passedUntil.addingTimeInterval(-0.000_001), cap: Owed.coalescedCap)
            if !passed.isEmpty { plan.passed[job.name, default: []] += passed }
            // A requeued fire's job still has its own next fire in the heap.
            if !top.requeued, let next = job.schedule.next(after: now) {
                heap.insert(Entry(fire: next, job: job.name, catchingUp: false))
            }
        }
        return plan
    }

    /// Whether a chore last done at `last` is due again at `now`.
    private static func due(_ last: Date?, every interval: Duration, now: Date) -> Bool {
        last.map { now.timeIntervalSince($0) >= interval.timeInterval } ?? true
    }

    /// One turn of the loop at `now` (the database's clock): records what was passed over,
    /// starts what is due, and every ``sweepInterval`` marks dead processes' runs abandoned
    /// and starts the retries they left due. Returns the plan it carried out.
    @discardableResult
    public func tick(now: Date, skewMs: Double = 0) async -> Plan {
        guard claiming else { return Plan() }
        lastTick = .now
        self.skewMs = skewMs
        let plan = plan(now: now)
        if !plan.passed.isEmpty { await settle(plan.passed, now: now) }
        // Replicas that tick together claim in different orders, so most of what one reaches
        // another has taken already (one cheap look) instead of all racing for the same slots.
        for fire in plan.fires.shuffled() { start(fire, now: now) }
        for fire in plan.fires { start(fire, now: now) }
        if Self.due(lastSweep, every: Self.sweepInterval, now: now) {
            lastSweep = now
            await sweep(now: now)
        }
        return plan
    }

    /// Records the slots a tick passed over as ``Owed`` decides them (a catch-up: coalesced
    /// within catchup, missed past it, paused in a pause, nothing before the definition): a few
    /// statements and at most one log line per tick, however many jobs (a stall of a table of
    /// thousands passes over thousands).
    private func settle(_ passed: [String: [Date]], now: Date) async {
        let ledger = runner.executor.ledger
        do {
            let histories = try await ledger.slotHistories(jobs: passed.keys.sorted())
            let written = try await MissedSlots.settle(
                passed, jobs: jobs, histories: histories, ledger: ledger, notifier: runner.executor.notifier,
                now: now, catchingUp: true, trigger: .schedule,
                reason: "missed: the scheduler was stopped or stalled past this slot and its catchup")
            counted(written, why: "slots missed: the scheduler passed over them past their catchup")
        } catch {
            logger.error(
                "cannot record the slots passed over; the next check finds them",
                metadata: ["jobs": "\(passed.count)", "error": "\(error)"])
        }
    }

    /// Counts and logs the missed rows this replica wrote (one line however many jobs).
    private func counted(_ written: [Ledger.WrittenSlot], why: String) {
        guard !written.isEmpty else { return }
        let byJob = Dictionary(grouping: written, by: \.job)
        for (job, rows) in byJob {
            missedCounts[job, default: 0] += rows.count
            events?.missed(job: job, count: rows.count)
        }
        let jobs = byJob.keys.sorted()
        logger.warning(
            "\(why)",
            metadata: [
                "jobs": "\(jobs.count)", "count": "\(written.count)",
                "job": "\(jobs.prefix(5).joined(separator: ","))\(jobs.count > 5 ? ",..." : "")",
                "latest": "\(written.map(\.slot).max().map(Ledger.slotKey(for:)) ?? "")",
            ])
    }

    /// Reaps exited orphans, marks runs whose heartbeat went stale abandoned (their retry is
    /// then due at once), and starts every due retry of this table's jobs that no task here is
    /// already making.
    private func sweep(now: Date) async {
        let ledger = runner.executor.ledger
        // Orphans adopted as PID 1 or as the commands' subreaper, exited since the last sweep.
        let orphans = ChildProcesses.shared.reapOrphans()
        if orphans > 0 { logger.debug("reaped exited orphans", metadata: ["count": "\(orphans)"]) }
        do {
            // The dead man's switch: holes past catchup (a claim that failed, a process that died
            // before its claim), and at start the gap a stop left.
            let catchingUp = !sweptOnce
            sweptOnce = true
            let written = try await MissedSlots.record(
                jobs: Array(jobs.values), ledger: ledger, now: now, notifier: runner.executor.notifier,
                catchingUp: catchingUp, trigger: .schedule)
            counted(written, why: "slots missed: no run started within their catchup")
        } catch {
            logger.error("the check for missed slots failed; the next sweep tries again", metadata: ["error": "\(error)"])
        }
        do {
            let abandoned = try await ledger.markAbandoned()
            if abandoned > 0 { events?.abandoned(count: abandoned) }
            for (name, slot) in try await ledger.dueRetrySlots(jobs: jobs.keys.sorted()) {
                guard claiming, inFlight[SlotID(job: name, slot: slot)] == nil else { continue }
                start(Fire(job: name, slot: slot, trigger: .retry), now: now)
            }
        } catch {
            logger.error("the sweep for abandoned runs and due retries failed", metadata: ["error": "\(error)"])
        }
        // Notifications a channel that was down left pending: in a task of their own, one at a
        // time, so a channel that hangs never holds up a tick.
        if resending == nil {
            let (notifier, table) = (runner.executor.notifier, Array(jobs.values))
            resending = Task {
                await notifier.finishPending(jobs: table)
                self.resent()
            }
        }
        if let retention, pruning == nil, Self.due(lastPruneCheck, every: Self.pruneCheckInterval, now: now) {
            lastPruneCheck = now
            let logger = self.logger
            pruning = Task {
                do {
                    if let pruned = try await ledger.prune(retention) {
                        logger.info("retention: old ledger rows deleted", metadata: ["deleted": "\(pruned)"])
                    }
                } catch {
                    logger.error("retention failed; it is tried again later", metadata: ["error": "\(error)"])
                }
                self.pruned()
            }
        }
    }

    private func pruned() { pruning = nil }

    private func resent() { resending = nil }

    /// Waits for a retention pass in progress (tests).
    public func waitForPruning() async { await pruning?.value }

    private func start(_ fire: Fire, now: Date) {
        guard let job = jobs[fire.job] else { return }
        let key = SlotID(job: fire.job, slot: fire.slot)
        guard inFlight[key] == nil else { return }
        let runner = self.runner
        let logger = self.logger
        let events = self.events
        let skewMs = self.skewMs
        let names = tableNames
        inFlight[key] = Task {
            var failure: (any Error)?
            var interrupted = false
            do {
                let outcome = try await runner.runSlot(
                    job, slot: fire.slot, now: now, skewMs: skewMs, trigger: fire.trigger,
                    inTable: { names.withLock { $0.contains(fire.job) } })
                if case .ran(let record, _) = outcome, record.status == .interrupted { interrupted = true }
                events?.ran(fire, outcome: outcome)
            } catch is OnceRunner.ClaimsStopped {
                logger.debug("not claimed: shutting down; left to another replica", metadata: ["slot": "\(fire)"])
            } catch {
                failure = error
            }
            self.finished(key, fire: fire, failure: failure, interrupted: interrupted)
        }
    }

    /// Counts a slot's end for `/health` and the log: the first failure of an outage is logged
    /// with its error, the others at debug, and the first slot that runs again says how many
    /// failed (one line each way, however many jobs and seconds the outage spans).
    /// A fire whose claim was lost with the connection (a database restart, past the claim's own
    /// tries) is planned again as a catch-up from its slot: the next tick after the database is
    /// back runs the latest slot within catchup and records the ones before it coalesced, not
    /// missed. Other refusals leave a hole the dead man's switch records missed.
    private func finished(_ key: SlotID, fire: Fire, failure: (any Error)?, interrupted: Bool = false) {
        inFlight[key] = nil
        if interrupted, !runner.gate.isOpen { interruptedTotal += 1 }
        guard let failure else {
            if slotsFailedInARow > 0 {
                logger.notice("slots are claimed and recorded again", metadata: ["failed": "\(slotsFailedInARow)"])
            }
            slotsFailedInARow = 0
            return
        }
        let lost = (failure as? PostgresError)?.isConnectionLoss == true
        slotsFailedInARow += 1
        let metadata: Logger.Metadata = ["job": "\(fire.job)", "slot": "\(fire)", "error": "\(failure)"]
        if slotsFailedInARow == 1 {
            logger.error(
                lost
                    ? "a slot could not be claimed: the database connection was lost; it is recorded coalesced into the next run once the database is back (logged again when slots run)"
                    : "a slot could not be claimed or recorded; a hole past its catchup is recorded missed (logged again when slots run)",
                metadata: metadata)
        } else {
            logger.debug("the slot could not be run", metadata: metadata)
        }
        if lost, claiming, jobs[fire.job] != nil {
            heap.insert(Entry(fire: fire.slot, job: fire.job, catchingUp: true, requeued: true))
        }
    }

    /// Applies a new job table from the next fire: removed jobs are no longer claimed, runs in
    /// progress finish, every job is planned afresh from `now` (no catch-up of slots the old
    /// table already passed).
    public func reload(
        _ newJobs: [Job], now: Date, retention: Retention? = nil, definitions: [String: Date]? = nil
    ) {
        if let retention { self.retention = retention }
        if let definitions { self.definitions = definitions }
        jobs = Dictionary(newJobs.map { ($0.name, $0) }) { first, _ in first }
        heap = Heap()
        for job in newJobs {
            if let next = job.schedule.next(after: now) {
                heap.insert(Entry(fire: next, job: job.name, catchingUp: false))
            }
        }
    }

    public var jobNames: [String] { jobs.keys.sorted() }

    /// The table's jobs, by name.
    public var table: [Job] { jobs.values.sorted { $0.name < $1.name } }

    /// Runs in progress in this process, per job.
    public var runningByJob: [String: Int] {
        inFlight.keys.reduce(into: [:]) { counts, key in counts[key.job, default: 0] += 1 }
    }

    /// Waits for every run in progress (tests; a shutdown uses ``shutdown(grace:)``).
    public func waitForRuns() async {
        while let task = inFlight.values.first { await task.value }
    }

    /// Closes the claim gate at once, from the signal handler: a fire queued behind others
    /// claims nothing from now on (its slot is left to the other replicas), while the runs already
    /// claimed go on until ``shutdown(grace:)``.
    public nonisolated func stopClaiming() {
        runner.gate.close()
    }

    /// Stops claiming, waits up to `grace` for the runs in progress, then stops the rest: they
    /// are cancelled as on SIGTERM and recorded `interrupted`. Returns how many were stopped.
    @discardableResult
    public func shutdown(grace: Duration) async -> Int {
        runner.gate.close()
        claiming = false
        heap = Heap()
        pruning?.cancel()
        let tasks = Array(inFlight.values)
        guard !tasks.isEmpty else { return 0 }
        let waiter = Task {
            for task in tasks { await task.value }
        }
        if await finishes(within: grace, { await waiter.value }) { return 0 }
        let stopping = inFlight.count
        for task in inFlight.values { task.cancel() }
        // The stopped runs' reports and ends get a bounded time: a database that does not take
        // them must not hold the exit past the platform's stop timeout. What is not written by
        // then stays `running`, and another replica marks it abandoned (its command dies with
        // this process: see the supervisor).
        if await !finishes(within: Self.stopMargin, { await waiter.value }) {
            logger.warning(
                "shutdown: some stopped runs could not be recorded in time; another replica marks them abandoned",
                metadata: ["waited": "\(DurationParser.format(Self.stopMargin))"])
        }
        return stopping
    }

    /// How long a shutdown waits, after `--grace`, for the stopped runs to report (the work's 5 s
    /// stop grace) and be recorded. The shipped stop timeouts are `--grace` plus 15 s.
    public static let stopMargin: Duration = .seconds(8)
}
