/// Product rows the agents' tests and the command-line tests both load (`NOW` is replaced by
/// the caller's instant).
package enum Seeds {
    /// Steps overdue by 0, 1, 2, 3, 4, 7 and 8 whole days (plus a few hours), one approved,
    /// one not yet due, one nudged an hour ago.
    package static let approvalNudger = """
        INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Harbor <Renovation>', NOW);
        INSERT INTO "Invoice" ("id", "projectId", "amount", "updatedAt") VALUES
            ('i1', 'p1', 25000, NOW), ('i2', 'p1', 1234567.891, NOW);
        INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "status", "deadline",
                                    "lastNudgedAt", "updatedAt") VALUES
            ('s0', 'i1', 'LEGAL_REVIEW', '{"Signed contract","W-9"}', 'd0@example.com', 'PENDING', NOW - interval '3 hours', NULL, NOW),
            ('s1', 'i1', 'FINANCE_CHECK', '{}', 'd1@example.com', 'PENDING', NOW - interval '1 day 3 hours', NULL, NOW),
            ('s2', 'i1', 'MANAGER_APPROVAL', NULL, 'd2@example.com', 'PENDING', NOW - interval '2 days 3 hours', NULL, NOW),
            ('s3', 'i1', 'FINANCE_CHECK', '{}', 'd3@example.com', 'PENDING', NOW - interval '3 days 23 hours', NULL, NOW),
            ('s4', 'i1', 'FINANCE_CHECK', '{}', 'd4@example.com', 'PENDING', NOW - interval '4 days 1 hour', NULL, NOW),
            ('s7', 'i1', 'FINANCE_CHECK', '{}', 'd7@example.com', 'PENDING', NOW - interval '7 days 23 hours', NULL, NOW),
            ('s8', 'i2', 'EXECUTIVE_APPROVAL', '{}', 'd8@example.com', 'PENDING', NOW - interval '8 days 1 hour', NULL, NOW),
            ('done', 'i1', 'LEGAL_REVIEW', '{}', 'x@example.com', 'APPROVED', NOW - interval '9 days', NULL, NOW),
            ('future', 'i1', 'LEGAL_REVIEW', '{}', 'x@example.com', 'PENDING', NOW + interval '1 day', NULL, NOW),
            ('cooling', 'i1', 'LEGAL_REVIEW', '{}', 'x@example.com', 'PENDING', NOW - interval '5 days', NOW - interval '1 hour', NOW);
        """

    package static let taskMonitor = """
        INSERT INTO "Project" ("id", "name", "updatedAt") VALUES ('p1', 'Apollo', NOW), ('p2', 'Borealis & Co', NOW);
        INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt") VALUES
            ('t-47h', 'p1', 'Fresh enough', 'ACTIVE', NOW - interval '47 hours', NOW),
            ('t-49h', 'p1', 'Write the spec', 'ACTIVE', NOW - interval '49 hours', NOW),
            ('t-10d', 'p2', '<script>alert(1)</script> & more', 'ACTIVE', NOW - interval '10 days 5 hours', NOW),
            ('t-done', 'p1', 'Finished long ago', 'DONE', NOW - interval '30 days', NOW),
            ('t-backlog', 'p2', 'Someday', 'BACKLOG', NOW - interval '30 days', NOW);
        """
}
