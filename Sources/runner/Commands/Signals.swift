import Dispatch
import Foundation

/// Calls `onSignal` on each of `numbers` (by default SIGTERM and SIGINT) instead of letting the
/// process die, so the run in progress can be stopped and recorded, or the table reloaded.
/// Dispatch sources are thread-safe; `sources` is set once in init and only cancelled after.
final class Signals: @unchecked Sendable {
    private let numbers: [Int32]
    private let sources: [DispatchSourceSignal]

    /// `counting`: a handler call per signal Dispatch merged (a stop's second signal must not
    /// be lost); otherwise one per event (two SIGHUPs merged are one reload).
    init(_ numbers: [Int32] = [SIGTERM, SIGINT], counting: Bool = true, onSignal: @escaping @Sendable () -> Void) {
        self.numbers = numbers
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            // Signals that come before the handler runs are merged into one event: `data` counts
            // them, so two quick SIGINTs are still two.
            // The cycle (source, handler) ends with `cancel()`: Dispatch releases a cancelled source's handler.
            source.setEventHandler {
                for _ in 0..<(counting ? max(1, source.data) : 1) { onSignal() }
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        for number in numbers { signal(number, SIG_DFL) }
    }
}
