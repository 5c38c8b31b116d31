import CCrypto
import Foundation

/// The signature of a webhook delivery, the scheme Stripe and Slack use: HMAC-SHA256 under
/// `WEBHOOK_SECRET` of `TIMESTAMP.BODY`, hex, sent as `X-Runner-Signature: sha256=HEX` beside
/// `X-Runner-Timestamp: TIMESTAMP` (Unix seconds). The event is inside the signed body. A receiver
/// checks the signature and refuses a timestamp older than a few minutes, so a delivery someone
/// captured cannot be replayed later.
public enum WebhookSignature {
    public static let header = "X-Runner-Signature"
    public static let timestampHeader = "X-Runner-Timestamp"

    /// `sha256=` and the lower-case hex HMAC-SHA256 of `TIMESTAMP.` and `body` under `secret`
    /// (OpenSSL's libcrypto).
    public static func sign(_ body: Data, secret: String, timestamp: Int64) -> String {
        var signed = Data("\(timestamp).".utf8)
        signed.append(body)
        return hmac(signed, secret: secret)
    }

    package static func hmac(_ body: Data, secret: String) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let key = Array(secret.utf8)
        body.withUnsafeBytes { bytes in
            _ = HMAC(
                EVP_sha256(), key, Int32(key.count), bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count,
                &digest, &length)
        }
        return "sha256=" + digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }
}
