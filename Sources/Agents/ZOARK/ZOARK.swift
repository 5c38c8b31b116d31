import Engine

/// ZOARK, the project-ops suite: its background agents, as the runner registers them.
public enum ZOARK {
    public static let agents: [AgentRegistration] = [
        AgentRegistration(TaskMonitor.self),
        AgentRegistration(ApprovalNudger.self),
        AgentRegistration(TimesheetDrafter.self),
    ]
}
