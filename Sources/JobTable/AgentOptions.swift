/// The name a job table gives an agent (`agent: task-monitor`): one that the catalogue given to
/// the loader holds. The job table knows agents only by these names and their option types.
public struct AgentName: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }

    public var description: String { rawValue }
}

/// The type of one `with:` key.
public enum AgentOptionType: Sendable {
    case duration, string, positiveInteger
    /// Comma-separated email addresses, each parsed by ``EmailAddress``; may be empty.
    case emailAddresses
}

/// The agents a job table may name, in the order an error lists them, each with every key its
/// `with:` may hold: the agents' own declarations, registered by whoever builds the runner.
public struct AgentCatalogue: Sendable {
    public struct Entry: Sendable {
        public let name: AgentName
        public let optionTypes: [String: AgentOptionType]

        public init(name: AgentName, optionTypes: [String: AgentOptionType]) {
            self.name = name
            self.optionTypes = optionTypes
        }
    }

    public let entries: [Entry]

    public init(_ entries: [Entry]) { self.entries = entries }

    public func optionTypes(of name: AgentName) -> [String: AgentOptionType]? {
        entries.first { $0.name == name }?.optionTypes
    }

    public var names: [AgentName] { entries.map(\.name) }
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

    public static var types: [String: AgentOptionType] {
        Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0.type) })
    }
}

/// One `with:` key of an agent: its name, its type, and where its value goes.
public struct OptionField<Options>: Sendable {
    public let key: String
    public let type: AgentOptionType
    package let apply: @Sendable (inout Options, AgentOptionValue) -> Void

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
