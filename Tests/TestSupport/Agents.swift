import JobTable
import Engine
import ZOARK
import VectorOS

/// The agents the tests run with: the runner's own list (`Sources/runner/Agents.swift`).
extension AgentRegistry {
    package static let standard = AgentRegistry(ZOARK.agents + VectorOS.agents)
}

extension AgentCatalogue {
    package static let standard = AgentRegistry.standard.catalogue
}
