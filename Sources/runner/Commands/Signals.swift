import Dispatch
import Foundation

/// Calls `onSignal` once on SIGTERM or SIGINT instead of letting the process die, so the
/// run in progress can be stopped and recorded.
/// Dispatch sources are thread-safe; `sources` is set once in init and only cancelled after.
final class ShutdownSignals: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]

    init(onSignal: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: onSignal)
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    }
}
