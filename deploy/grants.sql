-- Least-privilege access for the service's database role (a Databricks service principal on
-- Lakebase: its application id), so the service need not be a superuser as in the seed.
--
-- Run as an admin (the schema owner), with psql variables for the schema and the role:
--   psql "$ADMIN_URL" -v schema=agent_memory -v role='<service-principal-application-id>' -f deploy/grants.sql
--
-- Two ways to run the service; pick one:
--  * The admin creates the tables once (`DB_SCHEMA=agent_memory lakebase-memory-agent
--    load-sample-data` with admin credentials), then runs this file, and the service runs with
--    DB_MIGRATE=false: the role can read and write rows and nothing else.
--  * Or the service creates and upgrades its own tables at start (DB_MIGRATE=true, the default):
--    also run the last, commented statement to let the role create tables in the schema.

CREATE SCHEMA IF NOT EXISTS :"schema";

GRANT USAGE ON SCHEMA :"schema" TO :"role";

-- Rows of every table the service uses: the checkpointer's (checkpoints, checkpoint_blobs,
-- checkpoint_writes, checkpoint_migrations), its own (lma_*), and the demo's sample tables.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO :"role";

-- Tables an admin adds later (a new release's migration) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"role";

-- Only if the service should create/upgrade its own tables (DB_MIGRATE=true):
-- GRANT CREATE ON SCHEMA :"schema" TO :"role";
