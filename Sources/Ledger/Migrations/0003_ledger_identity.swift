extension Migration {
    /// A random id per ledger, for Message-IDs and provider idempotency keys (two ledgers on one
    /// provider account must never share one), and the `unknown` effect status: an attempt that
    /// may have been performed (a timeout after the request left, or a process that died mid-send).
    package static let v0003LedgerIdentity = Migration(
        version: 3,
        name: "ledger identity and unknown effects",
        sql: """
            CREATE TABLE runner.ledger (
                id          text PRIMARY KEY DEFAULT replace(gen_random_uuid()::text, '-', ''),
                created_at  timestamptz NOT NULL DEFAULT now(),
                one_row     boolean NOT NULL DEFAULT true UNIQUE CHECK (one_row)
            );
            INSERT INTO runner.ledger DEFAULT VALUES;
            ALTER TABLE runner.effects DROP CONSTRAINT effects_status_check;
            ALTER TABLE runner.effects ADD CONSTRAINT effects_status_check
                CHECK (status IN ('pending', 'sent', 'draft', 'failed', 'unknown'));
            UPDATE runner.effects SET status = 'unknown'
            WHERE status = 'failed' AND last_error LIKE 'outcome unknown:%';
            """)
}
