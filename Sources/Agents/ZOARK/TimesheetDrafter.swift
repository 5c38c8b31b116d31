import Engine
import Foundation
import HTTPClients
import JobTable
import Ledger
import Logging
import Outbox
import PostgresClient
import RunnerSupport

/// ZOARK's timesheet drafter: every user whose `"timesheetStatus"` is not 'completed' gets one
/// reminder per ISO week, with the tasks they finished in the last 7 days (through their
/// team-member assignments, else their projects) and their GitHub pushes of the week.
public struct TimesheetDrafter: ZOARKAgent {
    public static let name: AgentName = "timesheet-drafter"
    package static let activity = AgentLog.Action.timesheetReminder
    package struct Reminder: Sendable {
        package let userID: String
        package let name: String
        package let email: Result<EmailAddress, EmailAddress.Invalid>
        package let githubUsername: String?
        package let tasks: [(title: String, project: String)]
        package var github: Result<GitHubActivity, GitHubClient.Failure>?
    }

    /// `with:` keys: `lookback` (7 days), how far back finished tasks and pushes are gathered.
    public struct Options: AgentOptionSet {
        public var lookback: Duration = .seconds(7 * 86_400)

        public init() {}

        public static let fields: [OptionField<Self>] = [.duration("lookback", \.lookback)]
    }

    public let options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    public func run(_ context: AgentContext) async throws -> AgentReport {
        let reminders = try await Self.users(context, lookback: options.lookback, onlyUser: nil)
        var report = ReportBuilder()
        report.count("users", reminders.count)
        if context.dryRun {
            report.note("would_remind", .number(Double(reminders.count)))
            return report.report
        }
        let week = Self.isoWeek(context.now)
        let delivery = EmailDelivery(context: context.outbox)
        var results = try await delivery.finishPending()
        var deliverable: [(reminder: Reminder, to: EmailAddress)] = []
        for reminder in reminders {
            switch reminder.email {
            case .success(let address): deliverable.append((reminder, address))
            case .failure(let invalid):
                let result = try await delivery.recordInvalid(invalid, key: Self.key(reminder, week: week))
                if result != .alreadyRecorded { results.append(result) }
            }
        }
        // GitHub is asked only about the users whose reminder is not recorded yet: a second run
        // in the week costs GitHub nothing.
        var githubFailures = 0
        var phases = PhaseTimer()
        let batch = try await delivery.deliver(deliverable, key: { Self.key($0.reminder, week: week) }, phases: &phases)
        {
            items in
            let activity = await Self.githubActivity(
                of: items.map(\.reminder.githubUsername),
                since: context.now.addingTimeInterval(-options.lookback.timeInterval), client: context.clients.github,
                logger: context.logger)
            return zip(items, activity).map { item, github in
                if case .failure = github { githubFailures += 1 }
                var reminder = item.reminder
                reminder.github = github
                return Self.email(reminder, to: item.to, week: week)
            }
        }
        results += batch.results
        report.note("github_unavailable", count: githubFailures)
        phases.report(into: &report)
        report.note("week", .string(week))
        report.failure = EmailDelivery.summarize(results, into: &report)
        return report.report
    }

    public func preview(_ context: AgentContext, user: String?, includeRecorded: Bool) async throws -> [Email] {
        let week = Self.isoWeek(context.now)
        let reminders = try await Self.withGitHub(
            try await Self.users(context, lookback: options.lookback, onlyUser: user), lookback: options.lookback,
            context: context)
        let keys = reminders.map { EmailDelivery.recordedKey(Self.key($0, week: week), scope: context.effectsScope) }
        let recorded =
            includeRecorded ? [] : try await context.effects.recordedKeys(kind: EmailDelivery.kind.name, keys: keys)
        return zip(reminders, keys).filter { !recorded.contains($0.1) }.compactMap { reminder, _ in
            guard case .success(let address) = reminder.email else { return nil }
            return Self.email(reminder, to: address, week: week)
        }
    }

    /// The users a run would remind (all, or one) with the tasks they finished: one query.
    package static func users(_ context: AgentContext, lookback: Duration, onlyUser: String?) async throws -> [Reminder] {
        let rows = try await context.database.query(
            """
            WITH users AS (
                SELECT u."id", u."name", u."email", u."githubUsername"
                FROM "User" u
                WHERE u."timesheetStatus" <> 'completed' AND ($3::text IS NULL OR u."id" = $3)
            ),
            finished AS (
                SELECT u."id" AS user_id, t."id" AS task_id, t."title", p."name" AS project
                FROM users u
                JOIN "TeamMember" m ON lower(m."email") = lower(u."email")
                JOIN "TaskAssignment" a ON a."teamMemberId" = m."id"
                JOIN "Task" t ON t."id" = a."taskId"
                JOIN "Project" p ON p."id" = t."projectId"
                WHERE t."status" = 'DONE' AND t."lastUpdated" >= ($1::timestamptz AT TIME ZONE 'UTC') - $2::interval
                UNION
                SELECT u."id", t."id", t."title", p."name"
                FROM users u
                JOIN "_ProjectToUser" pu ON pu."B" = u."id"
                JOIN "Project" p ON p."id" = pu."A"
                JOIN "Task" t ON t."projectId" = p."id"
                WHERE t."status" = 'DONE' AND t."lastUpdated" >= ($1::timestamptz AT TIME ZONE 'UTC') - $2::interval
                  AND NOT EXISTS (SELECT 1 FROM "TeamMember" m WHERE lower(m."email") = lower(u."email"))
            )
            SELECT u."id", u."name", u."email", u."githubUsername",
                   coalesce(json_agg(json_build_array(f."title", f."project") ORDER BY f."project", f."title")
                            FILTER (WHERE f.task_id IS NOT NULL), '[]')::text AS tasks
            FROM users u LEFT JOIN finished f ON f.user_id = u."id"
            GROUP BY u."id", u."name", u."email", u."githubUsername"
            ORDER BY u."name", u."id"
            """, [.timestamp(context.now), .interval(lookback), PostgresValue(onlyUser)])
        return try rows.map { row -> Reminder in
            var tasks: [(String, String)] = []
            if case .array(let items)? = JSONValue.parse(try row.string("tasks", default: "[]")) {
                for case .array(let pair) in items where pair.count == 2 {
                    if case .string(let title) = pair[0], case .string(let project) = pair[1] {
                        tasks.append((title, project))
                    }
                }
            }
            let email = try row.string("email", default: "")
            return Reminder(
                userID: try row.string("id", default: ""), name: try row.string("name", default: ""),
                email: Result { () throws(EmailAddress.Invalid) in try EmailAddress(parsing: email) },
                githubUsername: try row.string("githubUsername").flatMap { $0.isEmpty ? nil : $0 }, tasks: tasks)
        }
    }

    /// The reminders with each user's GitHub activity, for those with a username.
    package static func withGitHub(_ reminders: [Reminder], lookback: Duration, context: AgentContext) async -> [Reminder] {
        let activity = await Self.githubActivity(
            of: reminders.map(\.githubUsername), since: context.now.addingTimeInterval(-lookback.timeInterval),
            client: context.clients.github, logger: context.logger)
        var reminders = reminders
        for index in reminders.indices { reminders[index].github = activity[index] }
        return reminders
    }

    /// Looks up each username's activity, `concurrency` at a time. After `giveUpAfter` outages
    /// (network errors, 5xx) in a row GitHub counts as down: the remaining users are not asked, and their reminders
    /// say no activity is available, so a GitHub outage never holds the reminders back.
    package static func githubActivity(
        of usernames: [String?], since: Date, client: GitHubClient, logger: Logger, concurrency: Int = 4,
        giveUpAfter: Int = 3
    ) async -> [Result<GitHubActivity, GitHubClient.Failure>?] {
        var results = [Result<GitHubActivity, GitHubClient.Failure>?](repeating: nil, count: usernames.count)
        let wanted = usernames.indices.filter { usernames[$0] != nil }
        var failuresInARow = 0
        var next = wanted.makeIterator()
        await withTaskGroup(of: (Int, Result<GitHubActivity, GitHubClient.Failure>).self) { group in
            func start() -> Bool {
                guard failuresInARow < giveUpAfter, let index = next.next(), let username = usernames[index] else {
                    return false
                }
                let client = client.onOwnThread()
                group.addTask {
                    do throws(GitHubClient.Failure) {
                        return (index, .success(try await client.activity(of: username, since: since)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
                return true
            }
            for _ in 0..<max(1, concurrency) {
                guard start() else { break }
            }
            for await (index, result) in group {
                results[index] = result
                if case .failure(let error) = result {
                    // A user GitHub does not know (404) is an answer: GitHub is up.
                    failuresInARow = error.isOutage ? failuresInARow + 1 : 0
                    logger.warning("GitHub activity unavailable", metadata: ["error": "\(error)"])
                } else {
                    failuresInARow = 0
                }
                _ = start()
            }
        }
        for index in wanted where results[index] == nil {
            results[index] = .failure(
                GitHubClient.Failure(description: "GitHub skipped after \(giveUpAfter) failures in a row"))
        }
        return results
    }

    /// One reminder per user per ISO week.
    package static func key(_ reminder: Reminder, week: String) -> String {
        "timesheet:\(reminder.userID)@\(week)"
    }

    /// `2026-W47`.
    package static func isoWeek(_ date: Date) -> String {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
        return String(format: "%04d-W%02d", parts.yearForWeekOfYear ?? 0, parts.weekOfYear ?? 0)
    }

    package static func email(_ reminder: Reminder, to address: EmailAddress, week: String) -> Email {
        let subject = "Timesheet reminder: please complete your timesheet for \(week)"
        var text = "Hi \(reminder.name),\n\nYour timesheet for \(week) is not completed yet.\n\n"
        var html =
            "<html><body><p>Hi \(htmlEscape(reminder.name)),</p>"
            + "<p>Your timesheet for \(htmlEscape(week)) is not completed yet.</p>"
        if reminder.tasks.isEmpty {
            text += "No finished tasks were recorded for you in the last 7 days.\n"
            html += "<p>No finished tasks were recorded for you in the last 7 days.</p>"
        } else {
            text += "Tasks you finished in the last 7 days:\n"
            html += "<p>Tasks you finished in the last 7 days:</p><ul>"
            for task in reminder.tasks {
                text += "- \(task.title) (\(task.project))\n"
                html += "<li>\(htmlEscape(task.title)) (\(htmlEscape(task.project)))</li>"
            }
            html += "</ul>"
        }
        switch reminder.github {
        case .success(let activity)?:
            let repositories = activity.repositories.isEmpty ? "none" : activity.repositories.joined(separator: ", ")
            let line =
                "GitHub this week: \(activity.pushes) push\(activity.pushes == 1 ? "" : "es"), "
                + "\(activity.commits) commit\(activity.commits == 1 ? "" : "s"); repositories: \(repositories)"
            text += "\n\(line)\n"
            html += "<p>\(htmlEscape(line))</p>"
        case .failure?:
            text += "\nNo GitHub activity available.\n"
            html += "<p>No GitHub activity available.</p>"
        case nil:
            break
        }
        html += "</body></html>"
        return Email(to: [address], subject: subject, text: text, html: html)
    }
}
