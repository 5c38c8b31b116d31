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

    /// Every key `with:` may hold for this agent, and its type: the agent's own declaration.
    public var optionTypes: [String: OptionType] {
        switch self {
        case .taskMonitor: return TaskMonitor.Options.types
        case .approvalNudger: return ApprovalNudger.Options.types
        case .timesheetDrafter: return TimesheetDrafter.Options.types
        case .insightGenerator: return InsightGenerator.Options.types
        }
    }
}

/// A validated value of one agent option.
public enum AgentOptionValue: Equatable, Sendable {
    case duration(Duration)
    case string(String)
    case integer(Int)
    case addresses([EmailAddress])
}

/// The options of one agent job as the job table wrote them, already type-checked against the
/// agent's declaration; the agent receives them as its own ``AgentOptionSet``.
public struct AgentOptions: Equatable, Sendable {
    public var values: [String: AgentOptionValue]

    public init(_ values: [String: AgentOptionValue] = [:]) {
        self.values = values
    }
}

/// An agent's options: one struct whose properties' initial values are the defaults, and whose
/// `fields` name each `with:` key, its type and the property it sets.
public protocol AgentOptionSet: Sendable, Equatable {
    init()
    static var fields: [OptionField<Self>] { get }
}

extension AgentOptionSet {
    /// The defaults, with every key the table set.
    public init(_ options: AgentOptions) {
        self.init()
        for field in Self.fields {
            if let value = options.values[field.key] { field.apply(&self, value) }
        }
    }

    static var types: [String: AgentKind.OptionType] {
        Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0.type) })
    }
}

/// One `with:` key of an agent: its name, its type, and where its value goes.
public struct OptionField<Options>: Sendable {
    public let key: String
    public let type: AgentKind.OptionType
    let apply: @Sendable (inout Options, AgentOptionValue) -> Void

    public static func duration(_ key: String, _ path: WritableKeyPath<Options, Duration> & Sendable) -> Self {
        Self(key: key, type: .duration) { options, value in
            if case .duration(let duration) = value { options[keyPath: path] = duration }
        }
    }

    public static func duration(_ key: String, _ path: WritableKeyPath<Options, Duration?> & Sendable) -> Self {
        Self(key: key, type: .duration) { options, value in
            if case .duration(let duration) = value { options[keyPath: path] = duration }
        }
    }

    /// An empty string leaves the default.
    public static func string(_ key: String, _ path: WritableKeyPath<Options, String> & Sendable) -> Self {
        Self(key: key, type: .string) { options, value in
            if case .string(let text) = value, !text.isEmpty { options[keyPath: path] = text }
        }
    }

    public static func positiveInteger(_ key: String, _ path: WritableKeyPath<Options, Int> & Sendable) -> Self {
        Self(key: key, type: .positiveInteger) { options, value in
            if case .integer(let number) = value { options[keyPath: path] = number }
        }
    }

    public static func emailAddresses(_ key: String, _ path: WritableKeyPath<Options, [EmailAddress]> & Sendable)
        -> Self
    {
        Self(key: key, type: .emailAddresses) { options, value in
            if case .addresses(let addresses) = value { options[keyPath: path] = addresses }
        }
    }
}
