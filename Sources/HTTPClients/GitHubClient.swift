import Foundation
import RunnerSupport

/// A user's public GitHub activity for a period, from the REST events API.
public struct GitHubActivity: Sendable, Equatable {
    public var pushes = 0
    /// Commits pushed, where GitHub still reports them in the push payload.
    public var commits = 0
    public var repositories: [String] = []
}

/// The GitHub REST API: `GITHUB_API_URL` (default https://api.github.com), `GITHUB_TOKEN` optional.
public struct GitHubClient: Sendable {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// GitHub itself is down or unreachable (a network error or a 5xx), not this user.
        public var isOutage = false

        public init(description: String, isOutage: Bool = false) {
            self.description = description
            self.isOutage = isOutage
        }
    }

    package let baseURL: String
    package let token: String?
    package let client: CurlClient
    /// How long one call may take: a GitHub that hangs costs a run one wave of these.
    package var timeout: Duration = .seconds(5)

    public init(environment: [String: String], client: CurlClient = CurlClient()) {
        baseURL = environment["GITHUB_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.github.com"
        token = environment["GITHUB_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        self.client = client
    }

    private init(baseURL: String, token: String?, client: CurlClient) {
        self.baseURL = baseURL
        self.token = token
        self.client = client
    }

    /// The same client on a transfer thread of its own: a client performs one call at a time,
    /// so concurrent lookups take one each.
    package func onOwnThread() -> GitHubClient {
        var copy = GitHubClient(baseURL: baseURL, token: token, client: CurlClient())
        copy.timeout = timeout
        return copy
    }

    /// Push events of `username` since `since` (the events API covers the last 90 days).
    public func activity(of username: String, since: Date) async throws(Failure) -> GitHubActivity {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-"))
        guard !username.isEmpty, username.unicodeScalars.allSatisfy(allowed.contains) else {
            throw Failure(description: "\"\(username)\" is not a GitHub username")
        }
        var transfer = CurlTransfer(url: "\(baseURL)/users/\(username)/events?per_page=100")
        transfer.headers = [
            "Accept: application/vnd.github+json", "X-GitHub-Api-Version: 2022-11-28", "User-Agent: runner",
        ]
        if let token { transfer.headers.append("Authorization: Bearer \(token)") }
        transfer.timeout = timeout
        // A page of 100 events with pull requests in it can pass 1 MiB.
        transfer.maxResponseBytes = 8 << 20
        let response: CurlTransfer.Response
        do {
            response = try await client.perform(transfer)
        } catch {
            throw Failure(description: "GitHub: \(error.message)", isOutage: true)
        }
        guard response.status == 200 else {
            throw Failure(
                description: "GitHub answered HTTP \(response.status) for \(username)", isOutage: response.status >= 500)
        }
        guard case .array(let events)? = JSONValue.parse(String(decoding: response.body, as: UTF8.self)) else {
            throw Failure(description: "GitHub's answer for \(username) is not a list of events")
        }
        var activity = GitHubActivity()
        var repositories: [String] = []
        for event in events {
            guard event["type"] == "PushEvent", case .string(let created)? = event["created_at"],
                let date = InstantFormat.parse(created), date >= since
            else { continue }
            activity.pushes += 1
            // Counts from the reply are outside values: a size that is not a sane count is ignored.
            if case .number(let size)? = event["payload"]?["size"], let count = Checked.int(size), (0...1_000_000).contains(count) {
                activity.commits += count
            } else if case .array(let commits)? = event["payload"]?["commits"] {
                activity.commits += commits.count
            }
            if case .string(let name)? = event["repo"]?["name"], !repositories.contains(name) {
                repositories.append(name)
            }
        }
        activity.repositories = repositories
        return activity
    }
}
