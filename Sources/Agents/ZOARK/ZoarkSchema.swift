/// ZOARK OS's tables as Prisma creates them (SCHEMAS.md), for tests and `runner demo`.
/// The runner never creates or alters these in production; it reads them and writes only
/// `"ApprovalStep"."lastNudgedAt"` and `"AgentLog"` rows.
public enum ZoarkSchema {
    public static let sql = """
        DO $$ BEGIN
            CREATE TYPE "TaskStatus" AS ENUM ('DONE', 'ACTIVE', 'BACKLOG', 'GAP');
            CREATE TYPE "InvoiceStatus" AS ENUM ('PENDING', 'APPROVED', 'REJECTED', 'PAID');
            CREATE TYPE "ApprovalStage" AS ENUM ('LEGAL_REVIEW', 'FINANCE_CHECK', 'MANAGER_APPROVAL', 'EXECUTIVE_APPROVAL');
            CREATE TYPE "ApprovalStatus" AS ENUM ('PENDING', 'APPROVED', 'REJECTED');
            CREATE TYPE "AgentAction" AS ENUM ('TASK_STUCK_ALERT', 'TIMESHEET_REMINDER', 'APPROVAL_NUDGE', 'EMAIL_PARSED',
                                               'INVOICE_PROCESSED');
            CREATE TYPE "AgentStatus" AS ENUM ('IN_PROGRESS', 'SUCCESS', 'FAILED');
            CREATE TYPE "ProcessStage" AS ENUM ('PLANNING', 'IN_PROGRESS', 'REVIEW', 'BLOCKED', 'COMPLETED');
            CREATE TYPE "HealthStatus" AS ENUM ('HEALTHY', 'AT_RISK', 'CRITICAL');
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$;

        CREATE TABLE IF NOT EXISTS "Project" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "name" TEXT NOT NULL,
            "description" TEXT,
            "healthScore" DOUBLE PRECISION NOT NULL DEFAULT 0,
            "velocity" DOUBLE PRECISION NOT NULL DEFAULT 0,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );

        CREATE TABLE IF NOT EXISTS "Task" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "projectId" TEXT NOT NULL REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE,
            "title" TEXT NOT NULL,
            "description" TEXT,
            "status" "TaskStatus" NOT NULL DEFAULT 'BACKLOG',
            "contactPerson" TEXT,
            "peopleCount" INTEGER NOT NULL DEFAULT 0,
            "processStage" "ProcessStage" NOT NULL DEFAULT 'PLANNING',
            "healthStatus" "HealthStatus" NOT NULL DEFAULT 'HEALTHY',
            "lastUpdated" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "Task_status_lastUpdated_idx" ON "Task"("status", "lastUpdated");

        CREATE TABLE IF NOT EXISTS "User" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "name" TEXT NOT NULL,
            "email" TEXT NOT NULL,
            "password" TEXT,
            "timesheetStatus" TEXT NOT NULL DEFAULT 'pending',
            "githubUsername" TEXT,
            "workingHours" TEXT,
            "role" TEXT NOT NULL DEFAULT 'member',
            "avatar" TEXT,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS "User_email_key" ON "User"("email");

        CREATE TABLE IF NOT EXISTS "Invoice" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "projectId" TEXT NOT NULL REFERENCES "Project"("id") ON DELETE RESTRICT ON UPDATE CASCADE,
            "amount" DOUBLE PRECISION NOT NULL,
            "status" "InvoiceStatus" NOT NULL DEFAULT 'PENDING',
            "pdfUrl" TEXT,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );

        CREATE TABLE IF NOT EXISTS "ApprovalStep" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "invoiceId" TEXT NOT NULL REFERENCES "Invoice"("id") ON DELETE CASCADE ON UPDATE CASCADE,
            "stage" "ApprovalStage" NOT NULL,
            "requiredDocs" TEXT[],
            "assigneeEmail" TEXT NOT NULL,
            "status" "ApprovalStatus" NOT NULL DEFAULT 'PENDING',
            "deadline" TIMESTAMP(3) NOT NULL,
            "lastNudgedAt" TIMESTAMP(3),
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "ApprovalStep_status_deadline_idx" ON "ApprovalStep"("status", "deadline");

        CREATE TABLE IF NOT EXISTS "AgentLog" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "action" "AgentAction" NOT NULL,
            "context" JSONB NOT NULL,
            "timestamp" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "status" "AgentStatus" NOT NULL DEFAULT 'IN_PROGRESS'
        );

        CREATE TABLE IF NOT EXISTS "TeamMember" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "name" TEXT NOT NULL,
            "email" TEXT NOT NULL,
            "workingHours" TEXT,
            "role" TEXT,
            "avatar" TEXT,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS "TeamMember_email_key" ON "TeamMember"("email");

        CREATE TABLE IF NOT EXISTS "TaskAssignment" (
            "id" TEXT NOT NULL PRIMARY KEY,
            "taskId" TEXT NOT NULL REFERENCES "Task"("id") ON DELETE RESTRICT ON UPDATE CASCADE,
            "teamMemberId" TEXT NOT NULL REFERENCES "TeamMember"("id") ON DELETE RESTRICT ON UPDATE CASCADE,
            "assignedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE UNIQUE INDEX IF NOT EXISTS "TaskAssignment_taskId_teamMemberId_key"
            ON "TaskAssignment"("taskId", "teamMemberId");

        CREATE TABLE IF NOT EXISTS "_ProjectToUser" (
            "A" TEXT NOT NULL REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE,
            "B" TEXT NOT NULL REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE
        );
        CREATE UNIQUE INDEX IF NOT EXISTS "_ProjectToUser_AB_unique" ON "_ProjectToUser"("A", "B");
        CREATE INDEX IF NOT EXISTS "_ProjectToUser_B_index" ON "_ProjectToUser"("B");
        """
}
