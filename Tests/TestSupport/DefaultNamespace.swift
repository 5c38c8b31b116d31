import Engine
import PostgresClient
import JobTable
import Ledger

/// Tests that are not about namespaces speak for the default one, as a table without
/// `namespace:` does.
extension Ledger {
    package init(connection: PostgresConnection) {
        self.init(connection: connection, namespace: JobTable.defaultNamespace)
    }
}

extension Effects {
    package init(connection: PostgresConnection) {
        self.init(connection: connection, namespace: JobTable.defaultNamespace)
    }
}
