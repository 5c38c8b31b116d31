import Cron
import Foundation
import RunnerSupport
import Yams

/// Reads `jobs.yaml` into a validated ``JobTable``, or reports every problem with its line and column.
public struct JobTableLoader: Sendable {
    public var environment: [String: String]
    /// The agents `agent:` may name, and the options each takes.
    public var agents: AgentCatalogue

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, agents: AgentCatalogue) {
        self.environment = environment
        self.agents = agents
    }

    /// The file named by `--config`, else `RUNNER_CONFIG`, else `./jobs.yaml`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let path = environment["RUNNER_CONFIG"], !path.isEmpty { return path }
        return "jobs.yaml"
    }

    public func load(path: String) throws(JobTableError) -> JobTable {
        func problem(_ message: String, hint: String) -> JobTableError {
            JobTableError(path: path, diagnostics: [ConfigDiagnostic(line: 1, column: 1, message: message)], hint: hint)
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            let looked =
                path.hasPrefix("/")
                ? path : "\(path) in \(FileManager.default.currentDirectoryPath)"
            throw problem(
                "no such file: no job table at \(looked)",
                hint: "point --config or RUNNER_CONFIG at your jobs.yaml (`runner check --config PATH` checks it)")
        }
        guard !isFolder.boolValue else {
            throw problem(
                "this is a folder, not a file", hint: "point --config or RUNNER_CONFIG at the jobs.yaml inside it")
        }
        let text: String
        let bytes: Data
        do {
            bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw problem(
                "cannot read the file: \(Self.reason(error))",
                hint: "check that the user runner runs as may read it")
        }
        switch Self.utf8Text(bytes) {
        case .success(let decoded): text = decoded
        case .failure(let place):
            throw JobTableError(
                path: path,
                diagnostics: [
                    ConfigDiagnostic(
                        line: place.line, column: place.column, message: "the file is not UTF-8 text: an invalid byte here")
                ], hint: "save the job table as UTF-8")
        }
        return try load(text: text, path: path)
    }

    public func load(text: String, path: String) throws(JobTableError) -> JobTable {
        var reader = JobTableReader(environment: EnvironmentExpander(environment: environment), agents: agents)
        let jobs = reader.read(text)
        guard reader.diagnostics.isEmpty else {
            let sorted = reader.diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
            throw JobTableError(path: path, diagnostics: sorted)
        }
        return JobTable(path: path, jobs: jobs, retention: reader.retention, namespace: reader.namespace)
    }

    /// Where a text's first byte that is not UTF-8 stands (1-based line and column).
    package struct NotUTF8: Error {
        package let line: Int
        package let column: Int
    }

    /// `bytes` as UTF-8 text, or where the first invalid byte is.
    package static func utf8Text(_ bytes: Data) -> Result<String, NotUTF8> {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var (line, column) = (1, 1)
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "\n" { (line, column) = (line + 1, 1) } else { column += 1 }
            case .emptyInput:
                return .success(String(decoding: bytes, as: UTF8.self))
            case .error:
                return .failure(NotUTF8(line: line, column: column))
            }
        }
    }

    private static func reason(_ error: Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
            let message = String(validatingCString: strerror(Int32(underlying.code)))
        {
            return message
        }
        return nsError.localizedDescription
    }
}

/// The walk over the YAML node tree; collects diagnostics instead of stopping at the first.
package struct JobTableReader {
    package let environment: EnvironmentExpander
    package let agents: AgentCatalogue
    package var diagnostics: [ConfigDiagnostic] = []
    /// Placeholder key → (original key, line of its first definition).
    private var duplicates: [String: (key: String, firstLine: Int)] = [:]

    package init(environment: EnvironmentExpander, agents: AgentCatalogue) {
        self.environment = environment
        self.agents = agents
    }

    private struct Defaults {
        package var timeZone = TimeZone(identifier: "UTC")!
        package var timeout = Job.defaultTimeout
        package var overlap = Job.Overlap.skip
        package var catchup = Job.defaultCatchup
        package var retries = Job.Retries.standard
        package var notify: [NotifyChannel] = []
        package var repeatAfter: Duration = .seconds(24 * 3600)
        package var warnAfter: Duration?
    }

    /// `retention:` of `defaults:`, once read.
    private(set) var retention = Retention()
    /// The top-level `namespace:`, once read.
    private(set) var namespace = JobTable.defaultNamespace

    package mutating func read(_ original: String) -> [Job] {
        let (text, starDiagnostics) = YAMLPreflight.quoteStarValues(in: original)
        diagnostics += starDiagnostics
        guard let root = compose(text) else {
            if diagnostics.isEmpty {
                diagnostics.append(
                    ConfigDiagnostic(
                        line: 1, column: 1,
                        message: "the file holds no jobs: it must have jobs: with at least one job (see the README)"))
            }
            return []
        }
        guard let mapping = root.mapping else {
            error(at: root, "the file must be a mapping with the keys defaults and jobs")
            return []
        }
        var defaults = Defaults()
        var jobsNode: Node?
        for (keyNode, value) in mapping {
            guard let key = name(of: keyNode, expected: ["namespace", "defaults", "jobs"], at: "the top level")
            else { continue }
            switch key {
            case "namespace": readNamespace(value)
            case "defaults": defaults = readDefaults(value)
            default: jobsNode = value
            }
        }
        guard let jobsNode else {
            error(at: root, "missing \"jobs:\": the file must list at least one job under jobs:")
            return []
        }
        guard let jobsMapping = jobsNode.mapping, !jobsMapping.isEmpty else {
            error(at: jobsNode, "jobs: must be a mapping of job names to jobs, with at least one job")
            return []
        }
        var jobs: [Job] = []
        for (keyNode, value) in jobsMapping {
            let raw = keyNode.string ?? ""
            if let duplicate = duplicates[raw] {
                error(
                    at: keyNode,
                    "duplicate job name \"\(duplicate.key)\" (first defined at line \(duplicate.firstLine))")
                continue
            }
            guard Self.isValidJobName(raw) else {
                error(
                    at: keyNode,
                    "job name \"\(raw)\" must start with a letter or digit and use only letters, digits, "
                        + "'-', '_' and '.' (at most 64 characters)")
                continue
            }
            if let job = readJob(named: raw, keyNode: keyNode, value, defaults: defaults) { jobs.append(job) }
        }
        return jobs
    }

    /// `namespace:`: 1 to 64 of `a-z0-9_-`, `${VAR}` expanded.
    private mutating func readNamespace(_ node: Node) {
        guard let text = string(node, "namespace") else { return }
        guard JobTable.isValidNamespace(text) else {
            error(
                at: node,
                "namespace \"\(text)\" must be 1 to 64 characters of a-z, 0-9, '_' and '-' "
                    + "(the name of this service's jobs in a shared ledger; default \"default\")")
            return
        }
        namespace = text
    }

    package static func isValidJobName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber, name.count <= 64 else {
            return false
        }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    // MARK: - Parsing

    /// Parses the text, renaming repeated keys so that every repeat is reported, not only the first.
    private mutating func compose(_ start: String) -> Node? {
        var text = start
        var placeholders = 0
        for _ in 0..<100 {
            do {
                // No tag resolution: the loader reads every value from its text, so the default
                // resolver's regular expressions (ICU, compiled at each start) would cost every
                // command's start-up for nothing.
                return try Yams.compose(yaml: text, .basic)
            } catch let YamlError.duplicatedKeysInMapping(keys, context) {
                var progressed = false
                for key in keys {
                    let (patched, renamed) = YAMLPreflight.renameDuplicates(
                        of: key, firstLine: context.mark.line, column: context.mark.column, in: text,
                        nextPlaceholder: &placeholders)
                    text = patched
                    for (placeholder, _) in renamed {
                        duplicates[placeholder] = (key, context.mark.line)
                        progressed = true
                    }
                }
                if !progressed {
                    diagnostics.append(
                        ConfigDiagnostic(
                            line: context.mark.line, column: context.mark.column,
                            message: "duplicate key \(keys.map { "\"\($0)\"" }.joined(separator: ", "))"))
                    return nil
                }
            } catch let yamlError as YamlError {
                diagnostics.append(Self.diagnostic(for: yamlError))
                return nil
            } catch {
                diagnostics.append(ConfigDiagnostic(line: 1, column: 1, message: "cannot parse YAML: \(error)"))
                return nil
            }
        }
        return nil
    }

    private static func diagnostic(for error: YamlError) -> ConfigDiagnostic {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let where_ = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            return ConfigDiagnostic(
                line: mark.line, column: mark.column, message: "YAML syntax error: \(problem)\(where_)")
        case .reader(let problem, _, _, _):
            return ConfigDiagnostic(line: 1, column: 1, message: "cannot read YAML: \(problem)")
        default:
            return ConfigDiagnostic(line: 1, column: 1, message: "cannot parse YAML: \(error)")
        }
    }

    // MARK: - Sections

    private mutating func readDefaults(_ node: Node) -> Defaults {
        var defaults = Defaults()
        guard let mapping = mappingOrEmpty(node, what: "defaults:") else { return defaults }
        let keys = [
            "timezone", "timeout", "overlap", "catchup", "retries", "retention", "notify", "repeat_after", "warn_after",
        ]
        for (keyNode, value) in mapping {
            guard let key = name(of: keyNode, expected: keys, at: "defaults") else { continue }
            let context = "defaults, key \"\(key)\""
            switch key {
            case "timezone": if let zone = timeZone(value, context) { defaults.timeZone = zone }
            case "timeout": if let timeout = timeout(value, context) { defaults.timeout = timeout }
            case "overlap": if let overlap = overlap(value, context) { defaults.overlap = overlap }
            case "catchup": if let catchup = catchup(value, context) { defaults.catchup = catchup }
            case "retention": retention = readRetention(value)
            case "notify": defaults.notify = notify(value, context)
            case "repeat_after":
                if let repeatAfter = positiveDuration(value, context) { defaults.repeatAfter = repeatAfter }
            case "warn_after": defaults.warnAfter = positiveDuration(value, context)
            default: defaults.retries = retries(value, over: defaults.retries, context: "defaults")
            }
        }
        return defaults
    }

    private mutating func readJob(named name: String, keyNode: Node, _ node: Node, defaults: Defaults) -> Job? {
        guard let mapping = node.mapping else {
            error(at: node, "job \"\(name)\" must be a mapping with agent: or command:, and schedule:")
            return nil
        }
        let keys = [
            "agent", "command", "schedule", "timezone", "timeout", "overlap", "catchup", "retries", "with",
            "database", "ping_url", "env", "effects_scope", "notify", "repeat_after", "warn_after",
        ]
        var values: [String: Node] = [:]
        var keyNodes: [String: Node] = [:]
        for (childKey, value) in mapping {
            guard let key = self.name(of: childKey, expected: keys, at: "job \"\(name)\"") else { continue }
            values[key] = value
            keyNodes[key] = childKey
        }
        let before = diagnostics.count
        func context(_ key: String) -> String { "job \"\(name)\", key \"\(key)\"" }

        var action: Job.Action?
        switch (values["agent"], values["command"]) {
        case (nil, nil):
            error(at: keyNode, "job \"\(name)\" needs either agent: (one of \(agentList)) or command: [argv...]")
        case (.some, .some):
            error(at: keyNodes["command"]!, "job \"\(name)\" has both agent: and command:; keep one")
        case (let agentNode?, nil):
            if let (kind, types) = agent(agentNode, context("agent")) {
                action = .agent(kind, options(values["with"], for: kind, types: types, job: name))
            }
        case (nil, let commandNode?):
            if let with = keyNodes["with"] {
                error(at: with, "job \"\(name)\": with: holds agent options, and this is a command job")
            }
            if let argv = command(commandNode, context("command")) {
                action = .command(argv, written: commandNode.sequence?.compactMap { $0.scalar?.string } ?? argv)
            }
        }

        let zone = values["timezone"].flatMap { timeZone($0, context("timezone")) } ?? defaults.timeZone
        var schedule: Schedule?
        if let scheduleNode = values["schedule"] {
            schedule = self.schedule(scheduleNode, zone: zone, context("schedule"))
        } else {
            error(at: keyNode, "job \"\(name)\" needs schedule: (a cron expression such as \"*/30 * * * *\")")
        }
        let timeout = values["timeout"].flatMap { self.timeout($0, context("timeout")) } ?? defaults.timeout
        let overlap = values["overlap"].flatMap { self.overlap($0, context("overlap")) } ?? defaults.overlap
        let catchup = values["catchup"].flatMap { self.catchup($0, context("catchup")) } ?? defaults.catchup
        let retries = values["retries"].map { self.retries($0, over: defaults.retries, context: "job \"\(name)\"") }
        let database = values["database"].flatMap { string($0, context("database")) }
        let pingURL = values["ping_url"].flatMap { self.pingURL($0, context("ping_url")) }
        var effectsScope: String?
        if let scopeNode = values["effects_scope"] {
            if values["agent"] == nil {
                error(
                    at: keyNodes["effects_scope"]!,
                    "job \"\(name)\": effects_scope: names whose emails and alerts an agent job shares; this is a command job"
                )
            } else {
                effectsScope = self.effectsScope(scopeNode, context("effects_scope"))
            }
        }
        var commandEnvironment = CommandEnvironment()
        if let envNode = values["env"] {
            if values["agent"] != nil {
                error(
                    at: keyNodes["env"]!, "job \"\(name)\": env: sets a command's environment, and this is an agent job"
                )
            } else {
                commandEnvironment = environment(envNode, context("env"))
            }
        }

        let notify = values["notify"].map { self.notify($0, context("notify")) }
        let repeatAfter = values["repeat_after"].flatMap { positiveDuration($0, context("repeat_after")) }
        let warnAfter = values["warn_after"].flatMap { positiveDuration($0, context("warn_after")) }

        guard diagnostics.count == before, let action, let schedule else { return nil }
        var job = Job(
            name: name, action: action, schedule: schedule, timeout: timeout, overlap: overlap, catchup: catchup,
            retries: retries ?? defaults.retries, database: database?.isEmpty == false ? database : nil,
            pingURL: pingURL?.isEmpty == false ? pingURL : nil, line: keyNode.mark?.line ?? 1)
        job.environment = commandEnvironment
        job.effectsScope = effectsScope
        job.notify = notify ?? defaults.notify
        job.repeatAfter = repeatAfter ?? defaults.repeatAfter
        job.warnAfter = warnAfter ?? defaults.warnAfter
        return job
    }

    /// `effects_scope:`: letters, digits and `-_.@`, at most 64, so a scope is never a prefix
    /// of another's keys (a key is `scope:target`).
    private mutating func effectsScope(_ node: Node, _ context: String) -> String? {
        guard let value = string(node, context) else { return nil }
        guard !value.isEmpty, value.count <= 64,
            value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.@".contains($0)) })
        else {
            error(at: node, "\(context): expected 1 to 64 letters, digits or -_.@, got \"\(value)\"")
            return nil
        }
        return value
    }

    private var agentList: String {
        agents.names.map(\.rawValue).joined(separator: ", ")
    }

    // MARK: - Values

    private mutating func agent(_ node: Node, _ context: String) -> (AgentName, [String: AgentOptionType])? {
        guard let text = string(node, context) else { return nil }
        guard let types = agents.optionTypes(of: AgentName(text)) else {
            error(at: node, "unknown agent \"\(text)\" (expected one of \(agentList))")
            return nil
        }
        return (AgentName(text), types)
    }

    private mutating func options(
        _ node: Node?, for kind: AgentName, types: [String: AgentOptionType], job: String
    ) -> AgentOptions {
        guard let node, let mapping = mappingOrEmpty(node, what: "job \"\(job)\", with:") else { return AgentOptions() }
        var options = AgentOptions()
        for (keyNode, value) in mapping {
            guard
                let key = name(
                    of: keyNode, expected: types.keys.sorted(), at: "job \"\(job)\", with: (agent \(kind.rawValue))")
            else { continue }
            let context = "job \"\(job)\", key \"with.\(key)\""
            switch types[key]! {
            case .duration:
                if let duration = positiveDuration(value, context) { options.values[key] = .duration(duration) }
            case .string:
                if let text = string(value, context) { options.values[key] = .string(text) }
            case .emailAddresses:
                guard let text = string(value, context) else { continue }
                do {
                    options.values[key] = .addresses(try EmailAddress.list(parsing: text))
                } catch {
                    self.error(at: value, "\(context): \(error) (expected addresses separated by commas)")
                }
            case .positiveInteger:
                if let text = string(value, context) {
                    if let number = Int(text), number >= 1 {
                        options.values[key] = .integer(number)
                    } else {
                        error(at: value, "\(context): expected a whole number of at least 1, got \"\(text)\"")
                    }
                }
            }
        }
        return options
    }

    private mutating func command(_ node: Node, _ context: String) -> [String]? {
        guard let sequence = node.sequence else {
            error(
                at: node,
                "\(context): expected a list of arguments such as [\"psql\", \"-c\", \"VACUUM ANALYZE\"] "
                    + "(it runs without a shell)")
            return nil
        }
        var argv: [String] = []
        for item in sequence {
            guard let text = string(item, context) else { return nil }
            argv.append(text)
        }
        guard let program = argv.first, !program.isEmpty else {
            error(at: node, "\(context): the list is empty; name the program to run first")
            return nil
        }
        return argv
    }

    private mutating func schedule(_ node: Node, zone: TimeZone, _ context: String) -> Schedule? {
        guard let text = string(node, context) else { return nil }
        do {
            return try Schedule(parsing: text, timeZone: zone)
        } catch {
            self.error(at: node, "\(context): \"\(text)\": \(error.message)")
            return nil
        }
    }

    private mutating func timeZone(_ node: Node, _ context: String) -> TimeZone? {
        guard let text = string(node, context) else { return nil }
        guard let zone = TimeZone(identifier: text) else {
            error(at: node, "\(context): unknown time zone \"\(text)\" (expected an IANA name such as Europe/London)")
            return nil
        }
        return zone
    }

    private mutating func timeout(_ node: Node, _ context: String) -> Duration? {
        positiveDuration(node, context)
    }

    private mutating func catchup(_ node: Node, _ context: String) -> Duration? {
        guard let duration = positiveDuration(node, context) else { return nil }
        guard duration >= .seconds(60) else {
            error(at: node, "\(context): must be at least 1m, got \(DurationParser.format(duration))")
            return nil
        }
        return duration
    }

    private mutating func overlap(_ node: Node, _ context: String) -> Job.Overlap? {
        guard let text = string(node, context) else { return nil }
        guard let overlap = Job.Overlap(rawValue: text) else {
            error(at: node, "\(context): expected skip, allow or replace, got \"\(text)\"")
            return nil
        }
        return overlap
    }

    /// `retention: {runs: 90d, metrics: 30d, effects: 180d}`: each at least a day.
    private mutating func readRetention(_ node: Node) -> Retention {
        var retention = Retention()
        guard let mapping = mappingOrEmpty(node, what: "defaults, retention:") else { return retention }
        for (keyNode, value) in mapping {
            guard let key = name(of: keyNode, expected: ["runs", "metrics", "effects"], at: "defaults, retention:")
            else { continue }
            let context = "defaults, key \"retention.\(key)\""
            guard let duration = positiveDuration(value, context) else { continue }
            guard duration >= .seconds(86_400) else {
                error(at: value, "\(context): must be at least 1d, got \(DurationParser.format(duration))")
                continue
            }
            switch key {
            case "runs": retention.runs = duration
            case "metrics": retention.metrics = duration
            default: retention.effects = duration
            }
        }
        return retention
    }

    private mutating func retries(_ node: Node, over base: Job.Retries, context: String) -> Job.Retries {
        var retries = base
        guard let mapping = mappingOrEmpty(node, what: "\(context), retries:") else { return retries }
        for (keyNode, value) in mapping {
            guard let key = name(of: keyNode, expected: ["max", "backoff", "max_backoff"], at: "\(context), retries:")
            else { continue }
            let keyContext = "\(context), key \"retries.\(key)\""
            switch key {
            case "max":
                guard let text = string(value, keyContext) else { continue }
                if let number = Int(text), (0...100).contains(number) {
                    retries.max = number
                } else {
                    error(at: value, "\(keyContext): expected a whole number from 0 to 100, got \"\(text)\"")
                }
            case "backoff":
                if let duration = positiveDuration(value, keyContext) { retries.backoff = duration }
            default:
                if let duration = positiveDuration(value, keyContext) { retries.maxBackoff = duration }
            }
        }
        if retries.maxBackoff < retries.backoff {
            error(
                at: node,
                "\(context), retries: max_backoff \(DurationParser.format(retries.maxBackoff)) is shorter than "
                    + "backoff \(DurationParser.format(retries.backoff))")
        }
        return retries
    }

    /// `env: [NAME, OTHER: value]` or `env: {NAME: value}`: names to pass through, and values to set.
    private mutating func environment(_ node: Node, _ context: String) -> CommandEnvironment {
        var result = CommandEnvironment()
        func name(_ keyNode: Node) -> String? {
            guard let text = keyNode.scalar?.string,
                let first = text.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic),
                text.unicodeScalars.allSatisfy({
                    $0 == "_" || ($0.isASCII && $0.properties.isAlphabetic) || ("0"..."9").contains($0)
                })
            else {
                error(
                    at: keyNode,
                    "\(context): \"\(keyNode.scalar?.string ?? "")\" is not a variable name (letters, digits, _)")
                return nil
            }
            return text
        }
        func add(_ mapping: Node.Mapping) {
            for (keyNode, value) in mapping {
                if let key = name(keyNode), let text = string(value, context) { result.values[key] = text }
            }
        }
        if let mapping = node.mapping {
            add(mapping)
        } else if let sequence = node.sequence {
            for item in sequence {
                if let mapping = item.mapping {
                    add(mapping)
                } else if let key = name(item) {
                    result.passThrough.append(key)
                }
            }
        } else {
            error(
                at: node,
                "\(context): expected a list of names, NAME: value pairs, or both, such as [PGOPTIONS, MODE: fast]")
        }
        return result
    }

    /// `notify: [{slack: URL}, {webhook: URL, events: [failed, missed]}, {email: "a@x, b@y"}]`:
    /// each channel one of slack, webhook or email, with its events (default: failed, recovered,
    /// missed, timed_out). A channel whose URL or addresses expand to nothing (`${VAR:-}`) is
    /// left out, as an empty `alert_to` keeps drafts.
    private mutating func notify(_ node: Node, _ context: String) -> [NotifyChannel] {
        guard let items = node.sequence else {
            error(at: node, "\(context): expected a list of channels, such as [{slack: \"${SLACK_WEBHOOK_URL}\"}]")
            return []
        }
        var channels: [NotifyChannel] = []
        for item in items {
            guard let mapping = item.mapping else {
                error(at: item, "\(context): each channel is a mapping with one of slack, webhook or email")
                continue
            }
            var target: NotifyChannel.Target?
            var empty = false
            let before = diagnostics.count
            var events = NotifyEvent.standard
            for (keyNode, value) in mapping {
                guard let key = name(of: keyNode, expected: ["slack", "webhook", "email", "events"], at: context)
                else { continue }
                if key == "events" {
                    events = notifyEvents(value, "\(context), events")
                    continue
                }
                if target != nil || empty {
                    error(
                        at: keyNode,
                        "\(context): a channel names one of slack, webhook or email; make another for \(key)")
                    continue
                }
                guard let text = string(value, "\(context), \(key)") else { continue }
                if text.isEmpty {
                    empty = true
                    continue
                }
                switch key {
                case "email":
                    do {
                        target = .email(try EmailAddress.list(parsing: text))
                    } catch {
                        self.error(at: value, "\(context), email: \(error) (expected addresses separated by commas)")
                    }
                default:
                    guard text.hasPrefix("https://") || text.hasPrefix("http://") else {
                        error(at: value, "\(context), \(key): expected an http:// or https:// URL")
                        continue
                    }
                    target = key == "slack" ? .slack(text) : .webhook(text)
                }
            }
            if let target {
                channels.append(NotifyChannel(target, events: events))
            } else if !empty && diagnostics.count == before {
                error(at: item, "\(context): the channel names none of slack, webhook or email")
            }
        }
        return channels
    }

    private mutating func notifyEvents(_ node: Node, _ context: String) -> Set<NotifyEvent> {
        let names = NotifyEvent.allCases.map(\.rawValue).joined(separator: ", ")
        guard let items = node.sequence, !items.isEmpty else {
            error(at: node, "\(context): expected a list of events from \(names)")
            return []
        }
        var events: Set<NotifyEvent> = []
        for item in items {
            guard let text = string(item, context) else { continue }
            guard let event = NotifyEvent(rawValue: text) else {
                error(at: item, "\(context): unknown event \"\(text)\" (expected one of \(names))")
                continue
            }
            events.insert(event)
        }
        return events
    }

    private mutating func pingURL(_ node: Node, _ context: String) -> String? {
        guard let text = string(node, context) else { return nil }
        guard text.isEmpty || text.hasPrefix("https://") || text.hasPrefix("http://") else {
            error(at: node, "\(context): expected an http:// or https:// URL")
            return nil
        }
        return text
    }

    private mutating func positiveDuration(_ node: Node, _ context: String) -> Duration? {
        guard let text = string(node, context) else { return nil }
        let duration: Duration
        do {
            duration = try DurationParser.parse(text)
        } catch {
            self.error(
                at: node,
                error.tooLong
                    ? "\(context): \"\(text)\" is longer than 100 years"
                    : "\(context): \"\(text)\" is not a duration (expected forms such as 90s, 30m, 48h, 7d, 1h30m)")
            return nil
        }
        guard duration > .zero else {
            error(at: node, "\(context): must be greater than zero, got \"\(text)\"")
            return nil
        }
        return duration
    }

    /// A scalar's text with `${VAR}` expanded.
    private mutating func string(_ node: Node, _ context: String) -> String? {
        guard let scalar = node.scalar else {
            error(at: node, "\(context): expected a single value, found a \(node.mapping != nil ? "mapping" : "list")")
            return nil
        }
        do {
            return try environment.expand(scalar.string)
        } catch {
            switch error {
            case .unset(let variable):
                self.error(
                    at: node,
                    "\(context): environment variable \(variable) is not set "
                        + "(set it, or write ${\(variable):-} to allow it to be empty)")
            case .malformed(let problem):
                self.error(at: node, "\(context): \(problem)")
            }
            return nil
        }
    }

    /// A mapping, or nil after reporting; an empty value (`with:`) counts as an empty mapping.
    private mutating func mappingOrEmpty(_ node: Node, what: String) -> Node.Mapping? {
        if let mapping = node.mapping { return mapping }
        if let scalar = node.scalar, node.null != nil || scalar.string.isEmpty { return Node.Mapping([]) }
        error(at: node, "\(what) must be a mapping of keys to values")
        return nil
    }

    /// A key's name if it is one of `expected`; otherwise reports it and returns nil.
    private mutating func name(of keyNode: Node, expected: [String], at place: String) -> String? {
        let key = keyNode.string ?? ""
        if let duplicate = duplicates[key] {
            error(at: keyNode, "duplicate key \"\(duplicate.key)\" in \(place) (first at line \(duplicate.firstLine))")
            return nil
        }
        guard expected.contains(key) else {
            error(
                at: keyNode, "unknown key \"\(key)\" in \(place) (expected one of \(expected.joined(separator: ", ")))")
            return nil
        }
        return key
    }

    private mutating func error(at node: Node, _ message: String) {
        let mark = node.mark
        diagnostics.append(ConfigDiagnostic(line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }
}
