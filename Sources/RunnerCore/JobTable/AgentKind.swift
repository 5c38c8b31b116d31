/// The agents the runner knows, and the options each accepts under `with:`.
public enum AgentKind: String, Sendable, CaseIterable {
    case taskMonitor = "task-monitor"
    case approvalNudger = "approval-nudger"
    case timesheetDrafter = "timesheet-drafter"
    case insightGenerator = "insight-generator"

    public enum OptionType: Sendable {
        case duration, string, positiveInteger
        /// Comma-separated email addresses, each parsed by ``EmailAddress``; may be empty.
        case emailAddresses
    }

    /// Every key `with:` may hold for this agent, and its type.
    public var optionTypes: [String: OptionType] {
        switch self {
        case .taskMonitor:
            return ["stuck_after": .duration, "realert_after": .duration, "alert_to": .emailAddresses]
        case .approvalNudger:
            return ["cooldown": .duration, "escalate_to": .emailAddresses]
        case .timesheetDrafter:
            return ["lookback": .duration]
        case .insightGenerator:
            return [
                "model": .string, "max_concurrency": .positiveInteger, "quiet_period": .duration,
                "request_timeout": .duration, "page_size": .positiveInteger, "write_concurrency": .positiveInteger,
            ]
        }
    }
}

/// A validated value of one agent option.
public enum AgentOptionValue: Equatable, Sendable {
    case duration(Duration)
    case string(String)
    case integer(Int)
}

/// The options of one agent job, already type-checked against ``AgentKind/optionTypes``.
public struct AgentOptions: Equatable, Sendable {
    public var values: [String: AgentOptionValue]

    public init(_ values: [String: AgentOptionValue] = [:]) {
        self.values = values
    }

    public func duration(_ key: String, default fallback: Duration) -> Duration {
        if case .duration(let value) = values[key] { return value }
        return fallback
    }

    public func duration(_ key: String) -> Duration? {
        if case .duration(let value) = values[key] { return value }
        return nil
    }

    public func string(_ key: String) -> String? {
        if case .string(let value) = values[key] { return value }
        return nil
    }

    public func integer(_ key: String, default fallback: Int) -> Int {
        if case .integer(let value) = values[key] { return value }
        return fallback
    }
}
