import Foundation

/// Every environment variable runner reads, for `runner env` and `.env.example` (a test keeps
/// the two and the code in step).
public struct EnvironmentVariable: Sendable, Equatable {
    public let name: String
    public let group: String
    /// Its value is never printed: `runner env` says only whether it is set.
    public let secret: Bool
    public let help: String

    package init(_ name: String, _ group: String, secret: Bool = false, _ help: String) {
        self.name = name
        self.group = group
        self.secret = secret
        self.help = help
    }
}

public enum EnvironmentCatalog {
    public static let all: [EnvironmentVariable] = [
        .init(
            "DATABASE_URL", "Database", secret: true,
            "The ledger's PostgreSQL (postgres://user:password@host:5432/db); unset: an embedded one in .runner/, for trying runner out"
        ),
        .init("RUNNER_HOME", "Database", "Where the embedded PostgreSQL lives (default ./.runner)"),
        .init(
            "RUNNER_EMBEDDED", "Database",
            "1: once, schedule, backfill and migrate may use the embedded PostgreSQL with no terminal (like --embedded)"),
        .init(
            "RUNNER_PG_BIN", "Database",
            "The folder of initdb and pg_ctl for the embedded PostgreSQL (default: found under /usr/lib/postgresql)"),
        .init("RUNNER_CONFIG", "Runner", "The job table (default ./jobs.yaml); --config overrides it"),
        .init("RUNNER_LOG_LEVEL", "Runner", "trace, debug, info (default), notice, warning, error or critical"),
        .init(
            "RUNNER_HEARTBEAT_INTERVAL", "Runner",
            "How often a run renews its lease, 1s to 10m (default 5s; the lease is six of them, at least 30s)"),
        .init(
            "RUNNER_HTTP_TOKEN", "Runner", secret: true,
            "runner schedule --http: the page and /metrics need it (a bearer token, or basic auth's password)"),
        .init(
            "RUNNER_METRICS_TOKEN", "Runner", secret: true,
            "runner schedule --http: /metrics needs this one instead of RUNNER_HTTP_TOKEN (for Prometheus)"),
        .init("EMAIL_PROVIDER", "Email", "smtp, sendgrid or resend; unset: emails are kept as drafts (runner outbox)"),
        .init("EMAIL_MAX_CONNECTIONS", "Email", "Connections to the provider at once, 1 to 32 (default 4)"),
        .init("EMAIL_RATE_LIMIT", "Email", "Requests per second to the provider (like 2/s), or none to lift a preset"),
        .init("SMTP_PRESET", "Email", "A known relay that sets host and port (see the README)"),
        .init("SMTP_HOST", "Email", "The SMTP relay (needed with EMAIL_PROVIDER=smtp unless SMTP_PRESET)"),
        .init("SMTP_PORT", "Email", "Default 587 (STARTTLS); 465 is TLS"),
        .init(
            "SMTP_SECURITY", "Email", "none, starttls or tls (default: from the port; credentials never go in clear)"),
        .init("SMTP_USER", "Email", "The relay's login"),
        .init("SMTP_PASSWORD", "Email", secret: true, "The relay's password"),
        .init("SMTP_FROM", "Email", "The sender address (default SMTP_USER)"),
        .init("SMTP_CA_FILE", "Email", "CA certificates to trust for a private relay, instead of the system's"),
        .init("SENDGRID_API_KEY", "Email", secret: true, "SendGrid's API key (needed with EMAIL_PROVIDER=sendgrid)"),
        .init("SENDGRID_FROM_EMAIL", "Email", "The verified sender (needed with EMAIL_PROVIDER=sendgrid)"),
        .init("SENDGRID_BASE_URL", "Email", "Default https://api.sendgrid.com (tests point it at a local server)"),
        .init("RESEND_API_KEY", "Email", secret: true, "Resend's API key (needed with EMAIL_PROVIDER=resend)"),
        .init("RESEND_FROM_EMAIL", "Email", "The verified sender (needed with EMAIL_PROVIDER=resend)"),
        .init("RESEND_BASE_URL", "Email", "Default https://api.resend.com"),
        .init(
            "ANTHROPIC_API_KEY", "Insights", secret: true, "Claude writes the deal insights; unset: rule-based insights"
        ),
        .init("ANTHROPIC_BASE_URL", "Insights", "Default https://api.anthropic.com"),
        .init(
            "RUNNER_LLM_BACKOFF", "Insights",
            "First wait before retrying a model call that was refused for load (default 1s)"),
        .init(
            "GITHUB_TOKEN", "GitHub", secret: true,
            "For agents that read GitHub (higher rate limits, private repositories)"),
        .init("GITHUB_API_URL", "GitHub", "Default https://api.github.com"),
        .init("SSL_CERT_FILE", "TLS", "A CA bundle for TLS to Postgres and the providers (passed to command jobs too)"),
        .init("SSL_CERT_DIR", "TLS", "A folder of CA certificates (passed to command jobs too)"),
        .init(
            "WEBHOOK_SECRET", "Notifications", secret: true,
            "Signs notify: webhook bodies (HMAC-SHA256, X-Runner-Signature); needed by webhook channels"),
        .init(
            "SENTRY_DSN", "Notifications", secret: true,
            "A failed or timed-out run sends a Sentry event, grouped per job; unset: none"),
        .init(
            "RUNNER_PUBLIC_URL", "Notifications",
            "Where runner schedule --http's status page is reachable, for links in notifications"),
        // Used by the repository's jobs.yaml (a table of your own may use others: runner env lists them).
        .init("ALERT_EMAIL", "jobs.yaml", "Where stuck-tasks sends its digest (alert_to); unset: kept as a draft"),
        .init(
            "VECTOROS_DATABASE_URL", "jobs.yaml", secret: true,
            "VectorOS's database for deal-insights; unset: the runner's own database"),
    ]

    /// `${VAR}` references in a job table's text: each name, and whether it has a default
    /// (`${VAR:-…}`, so it may be unset). Comment lines are left out; `$${` is a literal.
    public static func references(inJobTable text: String) -> [(name: String, hasDefault: Bool)] {
        var found: [String: Bool] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var content = Substring(line)
            if content.trimmingCharacters(in: .whitespaces).hasPrefix("#") { continue }
            if let comment = content.range(of: " #") { content = content[..<comment.lowerBound] }
            for match in content.matches(of: /(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?/) where match.1.isEmpty {
                let name = String(match.2)
                found[name] = (found[name] ?? true) && match.3 != nil
            }
        }
        return found.keys.sorted().map { ($0, found[$0] ?? false) }
    }

    /// What the environment still needs for the delivery it asks for (EMAIL_PROVIDER's own
    /// variables), each with why.
    public static func deliveryNeeds(_ environment: [String: String]) -> [(name: String, why: String)] {
        func set(_ name: String) -> Bool { !(environment[name] ?? "").isEmpty }
        let provider = (environment["EMAIL_PROVIDER"] ?? "").lowercased()
        let why = "EMAIL_PROVIDER=\(provider)"
        switch provider {
        case "smtp":
            var needs: [(String, String)] = []
            if !set("SMTP_HOST") && !set("SMTP_PRESET") { needs.append(("SMTP_HOST", why + " (or SMTP_PRESET)")) }
            if !set("SMTP_FROM") && !set("SMTP_USER") { needs.append(("SMTP_FROM", why + " (or SMTP_USER)")) }
            return needs
        case "sendgrid":
            return ["SENDGRID_API_KEY", "SENDGRID_FROM_EMAIL"].filter { !set($0) }.map { ($0, why) }
        case "resend":
            return ["RESEND_API_KEY", "RESEND_FROM_EMAIL"].filter { !set($0) }.map { ($0, why) }
        default:
            return []
        }
    }
}
