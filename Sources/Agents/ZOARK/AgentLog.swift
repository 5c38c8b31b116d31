import Engine
import Foundation
import Ledger
import PostgresClient
import RunnerSupport

/// A ZOARK agent: after each run that is not a dry run, its activity feed gets a row.
package protocol ZOARKAgent: Agent {
    static var activity: AgentLog.Action { get }
}

extension ZOARKAgent {
    public func recordActivity(_ report: AgentReport, on database: PostgresConnection) async throws {
        try await AgentLog.write(Self.activity, outcome: report.outcome, failed: report.failure != nil, on: database)
    }
}

/// ZOARK's activity feed: one `"AgentLog"` row per run, where that table exists.
package enum AgentLog {
    package enum Action: String {
        case taskStuckAlert = "TASK_STUCK_ALERT"
        case approvalNudge = "APPROVAL_NUDGE"
        case timesheetReminder = "TIMESHEET_REMINDER"
    }

    /// A stopping run skips it (its statements are being cancelled): the run's own record in
    /// the ledger still says what happened.
    package static func write(_ action: Action, outcome: [String: JSONValue], failed: Bool, on database: PostgresConnection)
        async throws
    {
        do {
            try await insert(action, outcome: outcome, failed: failed, on: database)
        } catch where Task.isCancelled {
            return
        }
    }

    private static func insert(_ action: Action, outcome: [String: JSONValue], failed: Bool, on database: PostgresConnection)
        async throws
    {
        let exists = try await database.query("SELECT to_regclass('\"AgentLog\"') IS NOT NULL AS present")
        guard try exists.first?.bool("present") == true else { return }
        try await database.query(
            """
            INSERT INTO "AgentLog" ("id", "action", "context", "status")
            VALUES ($1, $2::"AgentAction", $3::jsonb, $4::"AgentStatus")
            """,
            [
                PostgresValue(UUID().uuidString.lowercased()), PostgresValue(action.rawValue),
                PostgresValue(JSONValue.object(outcome).text), PostgresValue(failed ? "FAILED" : "SUCCESS"),
            ])
    }
}
