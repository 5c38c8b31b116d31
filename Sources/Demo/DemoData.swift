import Foundation

/// Sample ZOARK OS data for `runner demo`: projects, tasks stuck for 2 to 10 days, approval
/// steps 0 to 12 days overdue, users with and without GitHub names. Timestamps are relative to
/// the first load; loading again changes nothing (fixed ids, ON CONFLICT DO NOTHING).
public enum DemoData {
    public static let jobs = """
        jobs:
          stuck-tasks:
            agent: task-monitor
            schedule: "*/30 * * * *"
            with: {stuck_after: 48h, alert_to: "${ALERT_EMAIL:-}"}
          approval-nudges:
            agent: approval-nudger
            schedule: "0 * * * *"
            with: {cooldown: 24h, escalate_to: "cfo@zoark.example"}
          timesheet-reminders:
            agent: timesheet-drafter
            schedule: "0 16 * * FRI"
            timezone: Europe/London
          deal-insights:
            agent: insight-generator
            schedule: "*/30 * * * *"
        """

    public static let zoark = """
        INSERT INTO "Project" ("id", "name", "description", "healthScore", "updatedAt") VALUES
            ('demo-p1', 'Harbor Renovation', 'Waterfront office refit', 72, NOW),
            ('demo-p2', 'Atlas ERP Rollout', 'Finance and inventory migration', 55, NOW),
            ('demo-p3', 'Nova Mobile App', 'Customer app, v2', 88, NOW),
            ('demo-p4', 'Quarry Road Warehouse', NULL, 40, NOW)
        ON CONFLICT DO NOTHING;

        INSERT INTO "Task" ("id", "projectId", "title", "status", "lastUpdated", "updatedAt") VALUES
            ('demo-t01', 'demo-p1', 'Confirm electrical permits', 'ACTIVE', NOW - interval '2 days 4 hours', NOW),
            ('demo-t02', 'demo-p1', 'Order glass partitions', 'ACTIVE', NOW - interval '4 days', NOW),
            ('demo-t03', 'demo-p2', 'Map legacy GL accounts', 'ACTIVE', NOW - interval '6 days 2 hours', NOW),
            ('demo-t04', 'demo-p2', 'Vendor data cleanup <phase 2>', 'ACTIVE', NOW - interval '10 days', NOW),
            ('demo-t05', 'demo-p3', 'Push-notification consent flow', 'ACTIVE', NOW - interval '3 days', NOW),
            ('demo-t06', 'demo-p3', 'App store screenshots', 'ACTIVE', NOW - interval '5 hours', NOW),
            ('demo-t07', 'demo-p4', 'Racking layout sign-off', 'ACTIVE', NOW - interval '1 day 20 hours', NOW),
            ('demo-t08', 'demo-p4', 'Forklift safety training', 'BACKLOG', NOW - interval '20 days', NOW),
            ('demo-t09', 'demo-p1', 'Demolition complete', 'DONE', NOW - interval '2 days', NOW),
            ('demo-t10', 'demo-p2', 'Chart of accounts approved', 'DONE', NOW - interval '1 day', NOW),
            ('demo-t11', 'demo-p3', 'Login screen redesign', 'DONE', NOW - interval '3 days', NOW),
            ('demo-t12', 'demo-p3', 'Beta build 2.0.1', 'DONE', NOW - interval '12 days', NOW)
        ON CONFLICT DO NOTHING;

        INSERT INTO "User" ("id", "name", "email", "timesheetStatus", "githubUsername", "role", "updatedAt") VALUES
            ('demo-u1', 'Maya Chen', 'maya@zoark.example', 'pending', 'mayachen', 'lead', NOW),
            ('demo-u2', 'Omar Haddad', 'omar@zoark.example', 'draft', NULL, 'member', NOW),
            ('demo-u3', 'Lena Fischer', 'lena@zoark.example', 'completed', 'lenaf', 'member', NOW),
            ('demo-u4', 'Tomás Ruiz', 'tomas@zoark.example', 'pending', NULL, 'member', NOW)
        ON CONFLICT DO NOTHING;

        INSERT INTO "TeamMember" ("id", "name", "email", "role", "updatedAt") VALUES
            ('demo-m1', 'Maya Chen', 'maya@zoark.example', 'lead', NOW),
            ('demo-m2', 'Omar Haddad', 'omar@zoark.example', 'engineer', NOW)
        ON CONFLICT DO NOTHING;

        INSERT INTO "TaskAssignment" ("id", "taskId", "teamMemberId") VALUES
            ('demo-a1', 'demo-t09', 'demo-m1'), ('demo-a2', 'demo-t11', 'demo-m1'), ('demo-a3', 'demo-t10', 'demo-m2'),
            ('demo-a4', 'demo-t03', 'demo-m2')
        ON CONFLICT DO NOTHING;

        INSERT INTO "_ProjectToUser" ("A", "B") VALUES ('demo-p3', 'demo-u4'), ('demo-p1', 'demo-u4')
        ON CONFLICT DO NOTHING;

        INSERT INTO "Invoice" ("id", "projectId", "amount", "status", "updatedAt") VALUES
            ('demo-i1', 'demo-p1', 25000, 'PENDING', NOW),
            ('demo-i2', 'demo-p2', 148500.5, 'PENDING', NOW),
            ('demo-i3', 'demo-p3', 7800, 'PENDING', NOW),
            ('demo-i4', 'demo-p4', 312000, 'PENDING', NOW)
        ON CONFLICT DO NOTHING;

        INSERT INTO "ApprovalStep" ("id", "invoiceId", "stage", "requiredDocs", "assigneeEmail", "status", "deadline",
                                    "updatedAt") VALUES
            ('demo-s1', 'demo-i1', 'LEGAL_REVIEW', '{"Signed contract"}', 'legal@zoark.example', 'PENDING', NOW - interval '5 hours', NOW),
            ('demo-s2', 'demo-i1', 'FINANCE_CHECK', '{"W-9","Purchase order"}', 'finance@zoark.example', 'PENDING', NOW - interval '2 days 6 hours', NOW),
            ('demo-s3', 'demo-i2', 'MANAGER_APPROVAL', '{}', 'maya@zoark.example', 'PENDING', NOW - interval '5 days', NOW),
            ('demo-s4', 'demo-i3', 'FINANCE_CHECK', '{"Receipt"}', 'finance@zoark.example', 'PENDING', NOW + interval '2 days', NOW),
            ('demo-s5', 'demo-i4', 'EXECUTIVE_APPROVAL', '{"Board minutes","Budget memo"}', 'ceo@zoark.example', 'PENDING', NOW - interval '12 days', NOW),
            ('demo-s6', 'demo-i2', 'LEGAL_REVIEW', '{}', 'legal@zoark.example', 'APPROVED', NOW - interval '9 days', NOW)
        ON CONFLICT DO NOTHING;
        """
        .replacingOccurrences(of: "NOW", with: "(now() AT TIME ZONE 'UTC')")

    /// Sample VectorOS data: three workspaces, 300 deals across the stages, some with no value,
    /// probability or close date.
    public static let vectorOS = """
        INSERT INTO users ("id", "email", "name", "updatedAt") VALUES ('demo-owner', 'owner@vector.example', 'Ana Lopez', NOW)
        ON CONFLICT DO NOTHING;
        INSERT INTO workspaces ("id", "name", "slug", "ownerId", "updatedAt") VALUES
            ('demo-w1', 'Northwind Sales', 'northwind', 'demo-owner', NOW),
            ('demo-w2', 'Contoso Partners', 'contoso', 'demo-owner', NOW),
            ('demo-w3', 'Fabrikam Enterprise', 'fabrikam', 'demo-owner', NOW)
        ON CONFLICT DO NOTHING;
        INSERT INTO deals ("id", "title", "value", "stage", "probability", "closeDate", "company", "workspaceId",
                           "createdAt", "updatedAt")
        SELECT 'demo-d' || lpad(g::text, 3, '0'),
               (ARRAY['Renewal', 'Expansion', 'New logo', 'Pilot', 'Upsell'])[g % 5 + 1] || ' — '
                   || (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Soylent', 'Vandelay'])[g % 7 + 1] || ' #' || g,
               CASE WHEN g % 9 = 0 THEN NULL ELSE ((g * 37) % 60 + 1) * 500 END,
               (ARRAY['lead', 'qualified', 'proposal', 'negotiation', 'won', 'lost'])[g % 6 + 1],
               CASE WHEN g % 8 = 0 THEN NULL ELSE (g * 17) % 100 END,
               CASE WHEN g % 3 = 0 THEN NOW + ((g % 25) - 3) * interval '1 day' + interval '2 hours' END,
               (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Soylent', 'Vandelay'])[g % 7 + 1],
               'demo-w' || (g % 3 + 1),
               NOW - (g % 50) * interval '1 day' - interval '3 hours',
               NOW - (g % 18) * interval '1 day' - interval '3 hours'
        FROM generate_series(1, 300) g
        ON CONFLICT DO NOTHING;
        """
        .replacingOccurrences(of: "NOW", with: "(now() AT TIME ZONE 'UTC')")
}
