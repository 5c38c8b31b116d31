/// VectorOS's tables as Prisma creates them (SCHEMAS.md), for tests and `runner demo`.
/// The runner reads `workspaces` and `deals` and inserts into `insights`; it creates none of
/// them in production.
public enum VectorOSSchema {
    public static let sql = """
        CREATE TABLE IF NOT EXISTS users (
            "id" TEXT NOT NULL PRIMARY KEY,
            "email" TEXT NOT NULL,
            "name" TEXT,
            "passwordHash" TEXT,
            "clerkId" TEXT,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS "users_email_key" ON users("email");
        CREATE UNIQUE INDEX IF NOT EXISTS "users_clerkId_key" ON users("clerkId");

        CREATE TABLE IF NOT EXISTS workspaces (
            "id" TEXT NOT NULL PRIMARY KEY,
            "name" TEXT NOT NULL,
            "slug" TEXT NOT NULL,
            "tier" TEXT NOT NULL DEFAULT 'starter',
            "ownerId" TEXT NOT NULL REFERENCES users("id") ON DELETE RESTRICT ON UPDATE CASCADE,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS "workspaces_slug_key" ON workspaces("slug");

        CREATE TABLE IF NOT EXISTS deals (
            "id" TEXT NOT NULL PRIMARY KEY,
            "title" TEXT NOT NULL,
            "value" DOUBLE PRECISION,
            "stage" TEXT NOT NULL,
            "probability" INTEGER,
            "closeDate" TIMESTAMP(3),
            "contactName" TEXT,
            "contactEmail" TEXT,
            "company" TEXT,
            "source" TEXT,
            "externalId" TEXT,
            "workspaceId" TEXT NOT NULL REFERENCES workspaces("id") ON DELETE RESTRICT ON UPDATE CASCADE,
            "assignedToId" TEXT REFERENCES users("id") ON DELETE SET NULL ON UPDATE CASCADE,
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );

        CREATE TABLE IF NOT EXISTS insights (
            "id" TEXT NOT NULL PRIMARY KEY,
            "type" TEXT NOT NULL,
            "title" TEXT NOT NULL,
            "description" TEXT NOT NULL,
            "priority" TEXT NOT NULL DEFAULT 'medium',
            "confidence" DOUBLE PRECISION NOT NULL,
            "data" JSONB,
            "actions" JSONB,
            "workspaceId" TEXT NOT NULL REFERENCES workspaces("id") ON DELETE RESTRICT ON UPDATE CASCADE,
            "dealId" TEXT REFERENCES deals("id") ON DELETE CASCADE ON UPDATE CASCADE,
            "userId" TEXT REFERENCES users("id") ON DELETE SET NULL ON UPDATE CASCADE,
            "status" TEXT NOT NULL DEFAULT 'new',
            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMP(3) NOT NULL
        );
        """
}
