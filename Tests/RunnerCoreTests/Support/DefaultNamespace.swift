@testable import Engine
@testable import PostgresClient
@testable import JobTable
@testable import Ledger

/// Tests that are not about namespaces speak for the default one, as a table without
/// `namespace:` does.
extension Ledger {
    init(connection: PostgresConnection) {
        self.init(connection: connection, namespace: JobTable.defaultNamespace)
    }
}

extension Effects {
    init(connection: PostgresConnection) {
        self.init(connection: connection, namespace: JobTable.defaultNamespace)
    }
}
