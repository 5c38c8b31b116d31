import Testing

@testable import Ledger
@testable import Outbox
import TestSupport

/// The outbox's one state machine, with no database and no server: every channel's attempt
/// ends in one of these steps.
@Suite("Outbox state machine, pure")
struct EffectStateMachineTests {
    static let machine = EffectStateMachine(attempts: 3, backoff: .milliseconds(500))

    @Test("delivered is sent; refused is failed; maybe delivered is unknown and never repeated")
    func endings() {
        #expect(Self.machine.step(after: 1, nil) == .sent)
        #expect(Self.machine.step(after: 1, DeliveryError(.permanent, "550 no such user")) == .failed(error: "550 no such user"))
        let unknown = Self.machine.step(after: 1, DeliveryError(.unknown, "timed out after DATA"))
        #expect(unknown == .unknown(error: "outcome unknown: timed out after DATA; not repeated, to avoid a duplicate"))
        // Not even with attempts left: a second send could be a duplicate.
        #expect(unknown.status == .unknown)
        #expect(Self.machine.step(after: 3, nil).status == .sent)
    }

    @Test("transient: again after a doubling backoff, at least the provider's Retry-After, then pending")
    func transient() {
        let busy = DeliveryError(.transient, "451 try later")
        #expect(Self.machine.step(after: 1, busy) == .again(error: "451 try later", after: .milliseconds(500)))
        #expect(Self.machine.step(after: 2, busy) == .again(error: "451 try later", after: .seconds(1)))
        // The last attempt leaves it for the next run.
        #expect(Self.machine.step(after: 3, busy) == .pending(error: "451 try later"))
        var limited = DeliveryError(.transient, "HTTP 429")
        limited.retryAfter = .seconds(20)
        #expect(Self.machine.step(after: 1, limited) == .again(error: "HTTP 429", after: .seconds(20)))
        // A wait past the caller's deadline is not waited: pending now.
        #expect(Self.machine.step(after: 1, limited, timeLeft: .seconds(5)) == .pending(error: "HTTP 429"))
        #expect(Self.machine.step(after: 1, busy, timeLeft: .seconds(5)) == .again(error: "451 try later", after: .milliseconds(500)))
        // One attempt (the notifier's): a transient failure is pending at once.
        #expect(EffectStateMachine(attempts: 1).step(after: 1, busy) == .pending(error: "451 try later"))
        // However many attempts, the backoff does not overflow.
        let many = EffectStateMachine(attempts: 100, backoff: .seconds(1))
        if case .again(_, let wait) = many.step(after: 99, busy) { #expect(wait == .seconds(1 << 30)) } else {
            Issue.record("attempt 99 of 100 was not tried again")
        }
        #expect([Self.machine.step(after: 1, busy).status, Self.machine.step(after: 3, busy).status] == [.pending, .pending])
    }
}
