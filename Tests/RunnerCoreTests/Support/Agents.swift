@testable import JobTable
import Engine
@testable import ZOARK
@testable import VectorOS

/// The agents the tests run with: the runner's own list (`Sources/runner/Agents.swift`).
extension AgentRegistry {
    static let standard = AgentRegistry(ZOARK.agents + VectorOS.agents)
}

extension AgentCatalogue {
    static let standard = AgentRegistry.standard.catalogue
}
