import CCrypto
import Foundation

/// The signature of a webhook body: HMAC-SHA256 under `WEBHOOK_SECRET`, hex, sent as
/// `X-Runner-Signature: sha256=HEX` so a receiver can check the body came from this runner.
public enum WebhookSignature {
    public static let header = "X-Runner-Signature"

    /// `sha256=` and the lower-case hex HMAC-SHA256 of `body` under `secret` (OpenSSL's libcrypto).
    public static func sign(_ body: Data, secret: String) -> String {
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
