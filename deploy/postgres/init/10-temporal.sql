-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- The AINS registry database/user (ains/ains) come from POSTGRES_DB/POSTGRES_USER.
-- Temporal gets its own role and its two databases; temporal auto-setup runs with
-- SKIP_DB_CREATE=true and only installs/upgrades the schemas.
CREATE ROLE temporal WITH LOGIN PASSWORD 'temporal';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

-- The visibility schema uses btree_gin; create it as superuser up front.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
