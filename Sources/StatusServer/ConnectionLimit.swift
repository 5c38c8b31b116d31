import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Processes
import Engine
import RunnerSupport

#if canImport(Glibc)
    import Glibc
#endif

/// How many connections the status server holds, from the open-file limit: job processes and
/// the ledger's connections keep the rest. Past ``soft`` a connection is answered 503 and closed
/// at once; at ``hard`` no more are accepted (they wait in the kernel's queue).
public struct ConnectionLimit: Sendable, Equatable {
    public let soft: Int
    public var hard: Int { soft + 32 }

    /// A quarter of the open-file limit, from 16 to 1,024: 256 under the 1,024 systemd and
    /// containerd give by default, leaving 736 descriptors for runs (three each) and the ledger.
    public init(fileLimit: Int) {
        soft = min(1024, max(16, fileLimit / 4))
    }

    /// Raises this process's soft open-file limit to its hard limit and returns the soft
    /// limit in force afterwards.
    public static func raiseFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        // Commands keep the limit they would have had (a program that walks every descriptor
        // or uses select() is not handed a million).
        CommandProcess.commandFileLimit.withLock { $0 = Int(clamping: limit.rlim_cur) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// The open connections of one server, across its event loops.
final class ConnectionCount: Sendable {
    private let open = Locked(0)

    func opened() -> Int { open.withLock { $0 += 1; return $0 } }
    func closed() { open.withLock { $0 -= 1 } }
    var current: Int { open.withLock { $0 } }
}

/// First in every connection's pipeline after the HTTP codec: counts the connection and, past
/// the soft limit, answers 503 at once and closes it, whatever the client sends (or never sends).
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let count: ConnectionCount
    private let limit: Int
    private var counted = false
    private var refused = false

    init(count: ConnectionCount, limit: Int) {
        (self.count, self.limit) = (count, limit)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        refused = count.opened() > limit
        if refused, context.channel.isActive { refuse(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if counted { count.closed() }
        counted = false
    }

    func channelActive(context: ChannelHandlerContext) {
        // A refused connection is closed here; the handlers after this one never see it.
        guard !refused else { return refuse(context) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection's request goes no further.
        guard !refused else { return }
        context.fireChannelRead(data)
    }

    private func refuse(_ context: ChannelHandlerContext) {
        let body = "too many connections; try again shortly\n"
        var head = HTTPResponse(status: .serviceUnavailable)
        head.headerFields = StatusServer.headers(contentType: "text/plain; charset=utf-8")
        head.headerFields[.connection] = "close"
        head.headerFields[.retryAfter] = "5"
        head.headerFields[.contentLength] = String(body.utf8.count)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(string: body))), promise: nil)
        // Closed once the answer is written, so the client reads it rather than a reset.
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
    }
}

/// A value computed at most once per `maxAge`, however many ask at once: callers within it get
/// the last value, callers during a computation wait for that one.
actor Memo<Value: Sendable> {
    private let maxAge: Duration
    private var last: (at: ContinuousClock.Instant, value: Value)?
    private var inFlight: Task<Value, any Error>?

    init(maxAge: Duration) { self.maxAge = maxAge }

    func value(_ compute: @escaping @Sendable () async throws -> Value) async throws -> Value {
        if let last, ContinuousClock.now - last.at < maxAge { return last.value }
        if let inFlight { return try await inFlight.value }
        let task = Task { try await compute() }
        inFlight = task
        defer { inFlight = nil }
        let value = try await task.value
        last = (.now, value)
        return value
    }
}
