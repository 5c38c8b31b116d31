import CCurl
import Foundation
import PostgresClient
import RunnerSupport

/// One libcurl transfer (HTTP request or SMTP submission), performed synchronously on the
/// calling thread. Callers run it on a thread of their own (see ``CurlClient``).
package struct CurlTransfer {
    package struct Response: Sendable {
        package let status: Int
        package let headers: [String: String]
        package let body: Data
    }

    /// A failure before any response: connect, TLS, timeout, cancelled.
    package struct Failure: Error, CustomStringConvertible, Sendable {
        package let code: Int
        package let message: String
        /// The protocol response code, when the server answered (SMTP 4xx/5xx, say).
        package let responseCode: Int
        /// Whether the request (an HTTP request, or an SMTP message's content after DATA) had
        /// started to leave: after that, the server may have acted on it.
        package var requestSent = false
        package var description: String { message }
    }

    package var url: String
    package var method = "GET"
    package var headers: [String] = []
    package var body: Data?
    package var mailFrom: String?
    package var mailRecipients: [String] = []
    /// `CURLUSESSL_ALL` for STARTTLS that must succeed.
    package var requireTLS = false
    package var username: String?
    package var password: String?
    /// CA certificates to trust instead of the system's (a private relay's own CA).
    package var caFile: String?
    package var timeout: Duration = .seconds(30)
    package var connectTimeout: Duration = .seconds(10)
    /// A response body past this size aborts the transfer with a clear error.
    package var maxResponseBytes = 1 << 20

    package init(url: String) {
        self.url = url
    }

    private static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        // With CURLOPT_NOSIGNAL libcurl leaves SIGPIPE alone, and a write to a connection the
        // server closed (a kept SMTP session it timed out, a TLS close on cleanup) can still raise
        // it: the default action would end the process without a word. Ignored, the write fails
        // with EPIPE and the transfer reports it.
        signal(SIGPIPE, SIG_IGN)
    }()

    package static func newHandle() throws(Failure) -> UnsafeMutableRawPointer {
        _ = Self.globalInit
        guard let handle = curl_easy_init() else {
            throw Failure(code: -1, message: "curl_easy_init failed", responseCode: 0)
        }
        return handle
    }

    /// Performs the transfer on a handle of its own, closed after.
    package func perform(cancel: CancelFlag = CancelFlag()) throws(Failure) -> Response {
        let handle = try Self.newHandle()
        defer { curl_easy_cleanup(handle) }
        return try perform(on: handle, cancel: cancel)
    }

    /// Performs the transfer on `handle`, whose open connection (and TLS session) the previous
    /// transfer to the same server left is used again: an SMTP server sees one session with
    /// several messages, an HTTP server one keep-alive connection.
    package func perform(on handle: UnsafeMutableRawPointer, cancel: CancelFlag) throws(Failure) -> Response {
        // Forgets this transfer's options when it ends, keeping its live connections and caches:
        // the kept handle must not point at this transfer's state or error buffer once they are
        // freed (closing a kept SMTP session on cleanup calls the header callback with the reply).
        defer { curl_easy_reset(handle) }
        let state = TransferState(upload: body ?? Data(), limit: maxResponseBytes, cancel: cancel)
        let context = Unmanaged.passRetained(state)
        defer { context.release() }

        runner_curl_setopt_string(handle, CURLOPT_URL, url)
        runner_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        // Milliseconds, at least 1: libcurl reads 0 as no timeout at all.
        runner_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout))
        runner_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(connectTimeout))
        runner_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque())
        runner_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, curlWrite)
        runner_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context.toOpaque())
        runner_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, curlHeader)
        // Called about once a second even while waiting: a cancelled run aborts its transfer.
        runner_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        runner_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context.toOpaque())
        runner_curl_setopt_progress_callback(handle, curlProgress)
        if let username { runner_curl_setopt_string(handle, CURLOPT_USERNAME, username) }
        if let password { runner_curl_setopt_string(handle, CURLOPT_PASSWORD, password) }
        if requireTLS { runner_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_ALL.rawValue)) }
        if let caFile { runner_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }

        var headerList: UnsafeMutablePointer<curl_slist>?
        var recipientList: UnsafeMutablePointer<curl_slist>?
        defer {
            curl_slist_free_all(headerList)
            curl_slist_free_all(recipientList)
        }
        if let mailFrom {
            runner_curl_setopt_string(handle, CURLOPT_MAIL_FROM, mailFrom)
            for recipient in mailRecipients { recipientList = curl_slist_append(recipientList, recipient) }
            runner_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipientList)
            runner_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            runner_curl_setopt_pointer(handle, CURLOPT_READDATA, context.toOpaque())
            runner_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, curlRead)
            runner_curl_setopt_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(state.upload.count))
        } else {
            for header in headers { headerList = curl_slist_append(headerList, header) }
            runner_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
            if method != "GET" { runner_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method) }
            if let body {
                runner_curl_setopt_long(handle, CURLOPT_POST, 1)
                runner_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                runner_curl_setopt_pointer(handle, CURLOPT_READDATA, context.toOpaque())
                runner_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, curlRead)
            }
        }

        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code = errorBuffer.withUnsafeMutableBufferPointer { buffer -> CURLcode in
            runner_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            return curl_easy_perform(handle)
        }
        var responseCode = 0
        runner_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &responseCode)
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            var message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            if state.overflowed { message = "the response is larger than \(maxResponseBytes) bytes; not read" }
            if cancel.isSet { message = "stopped: the run is stopping" }
            var requestSize = 0
            runner_curl_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &requestSize)
            var failure = Failure(code: Int(code.rawValue), message: message, responseCode: responseCode)
            failure.requestSent = mailFrom == nil ? requestSize > 0 || state.uploadOffset > 0 : state.uploadOffset > 0
            throw failure
        }
        return Response(status: responseCode, headers: state.headers, body: state.received)
    }
}

extension CurlTransfer {
    package static func milliseconds(_ duration: Duration) -> Int {
        let value = duration.milliseconds.rounded(.up)
        return value.isFinite ? Int(min(max(value, 1), 86_400_000)) : 86_400_000
    }
}

/// What the C callbacks read from and write to; owned by one transfer on one thread.
private final class TransferState {
    package let upload: Data
    package let limit: Int
    package let cancel: CancelFlag
    package var uploadOffset = 0
    package var received = Data()
    package var overflowed = false
    package var headers: [String: String] = [:]

    package init(upload: Data, limit: Int, cancel: CancelFlag) {
        self.upload = upload
        self.limit = limit
        self.cancel = cancel
    }
}

private func curlWrite(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
)
    -> Int
{
    guard let data, let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    guard state.received.count + size * count <= state.limit else {
        // Returning less than was given aborts the transfer.
        state.overflowed = true
        return 0
    }
    state.received.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: size * count)
    return size * count
}

private func curlHeader(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
)
    -> Int
{
    guard let data, let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
    if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        state.headers[name] = value
    }
    return size * count
}

private func curlProgress(
    _ context: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloaded: curl_off_t,
    _ uploadTotal: curl_off_t, _ uploaded: curl_off_t
) -> Int32 {
    guard let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    // A stopping run aborts a transfer only while nothing of its content has left: one cut off
    // mid-content would be of unknown outcome. One under way finishes within its own timeout.
    return state.cancel.isSet && state.uploadOffset == 0 ? 1 : 0
}

private func curlRead(
    _ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
)
    -> Int
{
    guard let buffer, let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    let remaining = state.upload.count - state.uploadOffset
    let length = min(remaining, size * count)
    guard length > 0 else { return 0 }
    state.upload.withUnsafeBytes { bytes in
        UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + state.uploadOffset, byteCount: length)
    }
    state.uploadOffset += length
    return length
}

/// Runs libcurl transfers on a thread of their own, never on the cooperative pool, one at a
/// time over one easy handle: a transfer to the server the last one reached reuses its
/// connection.
public actor CurlClient {
    private let executor = QueueExecutor(label: "runner.curl")
    /// Owned by this actor alone; freed in the isolated deinit.
    private var handle: UnsafeMutableRawPointer?

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    public init() {}

    isolated deinit {
        if let handle { curl_easy_cleanup(handle) }
    }

    /// Performs the transfer on this client's thread; cancelling the awaiting task aborts it.
    package nonisolated func perform(_ transfer: CurlTransfer) async throws(CurlTransfer.Failure) -> CurlTransfer.Response {
        let cancel = CancelFlag()
        let result = await withTaskCancellationHandler {
            await performNow(transfer, cancel: cancel)
        } onCancel: {
            cancel.set()
        }
        return try result.get()
    }

    private func performNow(_ transfer: CurlTransfer, cancel: CancelFlag) -> Result<
        CurlTransfer.Response, CurlTransfer.Failure
    > {
        if Task.isCancelled { cancel.set() }
        do throws(CurlTransfer.Failure) {
            let handle: UnsafeMutableRawPointer
            if let existing = self.handle {
                handle = existing
            } else {
                handle = try CurlTransfer.newHandle()
                self.handle = handle
            }
            return .success(try transfer.perform(on: handle, cancel: cancel))
        } catch {
            return .failure(error)
        }
    }
}

/// A flag set from any thread (a cancellation handler) and read by a transfer's callbacks.
package struct CancelFlag: Sendable {
    private let value = Locked(false)

    package var isSet: Bool { value.withLock { $0 } }
    package func set() { value.withLock { $0 = true } }
}

/// A fixed number of ``CurlClient``s, each keeping its own connection: up to that many
/// transfers run at once, and each reuses the connection its client opened last.
public actor CurlPool {
    private var idle: [CurlClient]
    private var waiting: [CheckedContinuation<CurlClient, Never>] = []
    public nonisolated let size: Int

    public init(_ clients: [CurlClient]) {
        idle = clients.isEmpty ? [CurlClient()] : clients
        size = idle.count
    }

    public init(size: Int) {
        self.init((0..<max(1, size)).map { _ in CurlClient() })
    }

    /// `size` clients, the first of them `first` (a caller's own, say a test's).
    public init(first: CurlClient, size: Int) {
        self.init([first] + (1..<max(1, size)).map { _ in CurlClient() })
    }

    /// Performs the transfer on a free client, waiting for one if all are busy.
    package nonisolated func perform(_ transfer: CurlTransfer) async throws(CurlTransfer.Failure) -> CurlTransfer.Response {
        let client = await take()
        let result: Result<CurlTransfer.Response, CurlTransfer.Failure>
        do throws(CurlTransfer.Failure) {
            result = .success(try await client.perform(transfer))
        } catch {
            result = .failure(error)
        }
        await give(client)
        return try result.get()
    }

    private func take() async -> CurlClient {
        if let client = idle.popLast() { return client }
        return await withCheckedContinuation { waiting.append($0) }
    }

    private func give(_ client: CurlClient) {
        if waiting.isEmpty {
            idle.append(client)
        } else {
            waiting.removeFirst().resume(returning: client)
        }
    }
}
