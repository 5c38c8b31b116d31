import JobTable
import Engine
import VectorOS
import ZOARK

/// The agents this runner is built with, for the command line and the tests alike: each product
/// registers its own list; a new agent is one line there. The order is the one `runner check`
/// names them in.
extension AgentRegistry {
    public static let standard = AgentRegistry(ZOARK.agents + VectorOS.agents)
}

extension AgentCatalogue {
    public static let standard = AgentRegistry.standard.catalogue
}
