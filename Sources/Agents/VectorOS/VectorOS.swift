import Engine

/// VectorOS, the sales pipeline: its background agents, as the runner registers them.
public enum VectorOS {
    public static let agents: [AgentRegistration] = [
        AgentRegistration(InsightGenerator.self)
    ]
}
