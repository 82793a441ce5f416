-- drift_watch: the stored dbt source contract.
-- Everything lives in the extension's fixed schema `drift_watch`; see sql/public_api.sql for the
-- forwarding functions that make `SELECT * FROM drift_diff()` work on the default search_path.

-- One row per loaded document (a dbt YAML properties file or a manifest.json).
CREATE TABLE drift_watch.contract_origin (
    origin        text PRIMARY KEY CHECK (origin <> ''),
    document_kind text NOT NULL CHECK (document_kind IN ('yaml', 'manifest')),
    loaded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    loaded_by     name NOT NULL DEFAULT current_user
);

-- One row per enabled dbt source table; names are stored as Postgres stores them
-- (folded unless quoted), so matching against the catalog is exact.
CREATE TABLE drift_watch.contract_table (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin        text NOT NULL REFERENCES drift_watch.contract_origin ON DELETE CASCADE,
    table_no      integer NOT NULL,
    source_name   text NOT NULL,
    table_name    text NOT NULL,
    database_name text,
    schema_name   text NOT NULL,
    identifier    text NOT NULL,
    UNIQUE (origin, table_no),
    -- dbt itself refuses two definitions of source('s', 't'); so does the contract.
    CONSTRAINT contract_table_source_table_key UNIQUE (source_name, table_name)
);
CREATE INDEX contract_table_relation_idx ON drift_watch.contract_table (schema_name, identifier);

-- Documented columns; a table with none is only checked for existence.
CREATE TABLE drift_watch.contract_column (
    table_id    bigint NOT NULL REFERENCES drift_watch.contract_table ON DELETE CASCADE,
    position    integer NOT NULL,
    column_name text NOT NULL,
    data_type   text,
    quoted      boolean NOT NULL,
    PRIMARY KEY (table_id, position)
);

-- pg_dump keeps the contract (it is user data, not extension code).
SELECT pg_catalog.pg_extension_config_dump('drift_watch.contract_origin', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.contract_table', '');
SELECT pg_catalog.pg_extension_config_dump('drift_watch.contract_column', '');

-- The contract as a person reads it.
CREATE VIEW drift_watch.contract AS
SELECT t.origin, t.source_name, t.table_name, t.schema_name, t.identifier,
       c.column_name, c.data_type, c.quoted
FROM drift_watch.contract_table t
LEFT JOIN drift_watch.contract_column c ON c.table_id = t.id
ORDER BY t.source_name, t.table_name, c.position;
