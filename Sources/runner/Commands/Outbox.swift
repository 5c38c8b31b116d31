import ArgumentParser
import Foundation
import RunnerCore

extension Effects.Status: ExpressibleByArgument {}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the emails the agents recorded: sent, drafts, pending retries, failures and unknown outcomes.",
        discussion: "Drafts are emails kept because no EMAIL_PROVIDER is configured (or no recipient); nothing is lost."
    )

    @Option(help: "Only emails with this status (pending, sent, draft, failed, unknown).")
    var status: Effects.Status?

    @Option(help: "At most this many emails.")
    var limit: Int = 50

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let connection = try await database.connect()
        let emails = try await Effects(connection: connection).list(
            kind: EmailDelivery.kind, status: status, limit: limit)
        if json {
            print(
                JSONValue.array(
                    emails.map { effect in
                        [
                            "id": .number(Double(effect.id)), "key": .string(effect.key),
                            "status": .string(effect.status.rawValue),
                            "to": .string(effect.target ?? ""), "subject": effect.payload["subject"] ?? .null,
                            "attempts": .number(Double(effect.attempts)),
                            "error": effect.lastError.map(JSONValue.string) ?? .null,
                            "created_at": .string(utc(effect.createdAt)),
                        ]
                    }
                ).text)
            return
        }
        guard !emails.isEmpty else {
            print("the outbox is empty\(status.map { " (status \($0.rawValue))" } ?? "")")
            return
        }
        let rows = emails.map { effect -> [String] in
            var subject = "-"
            if case .string(let text)? = effect.payload["subject"] { subject = text }
            return [
                String(effect.id), effect.status.rawValue, utc(effect.createdAt),
                effect.target.flatMap { $0.isEmpty ? nil : $0 } ?? "(no recipient)", subject,
                effect.lastError.map { String($0.prefix(60)) } ?? "",
            ]
        }
        print(alignedTable(header: ["ID", "STATUS", "CREATED", "TO", "SUBJECT", "ERROR"], rows: rows))
    }
}
