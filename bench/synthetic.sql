-- drift_watch benchmark fixture (run by bench/run.sh in a throwaway database).
-- A synthetic warehouse catalog: 5 schemas x 1,000 tables x 30 columns (150,000 columns), plus
-- helpers in schema `bench` that write the dbt contract for 1,000 of those tables, introduce drift
-- and spell out the catalog query drift_diff() issues (so the raw query can be timed alone).

CREATE SCHEMA bench;

-- The live type of each column and the ways a dbt author might spell it in `data_type`.
CREATE TABLE bench.type_mix (k int PRIMARY KEY, ddl text NOT NULL, spellings text[] NOT NULL);
INSERT INTO bench.type_mix VALUES
  (0,  'integer',          '{int4,integer,int}'),
  (1,  'bigint',           '{int8,bigint}'),
  (2,  'text',             '{text}'),
  (3,  'varchar(255)',     '{varchar(255),"character varying(255)"}'),
  (4,  'numeric(12,2)',    '{"numeric(12,2)","decimal(12,2)"}'),
  (5,  'timestamptz',      '{timestamptz,"timestamp with time zone"}'),
  (6,  'boolean',          '{bool,boolean}'),
  (7,  'jsonb',            '{jsonb}'),
  (8,  'uuid',             '{uuid}'),
  (9,  'int[]',            '{int[],integer[],_int4}'),
  (10, 'smallint',         '{int2,smallint}'),
  (11, 'date',             '{date}'),
  (12, 'timestamp',        '{timestamp,"timestamp without time zone"}'),
  (13, 'double precision', '{float8,"double precision"}'),
  (14, 'varchar(64)',      '{varchar(64),"character varying(64)"}'),
  (15, 'char(2)',          '{char(2),character(2)}'),
  (16, 'text[]',           '{text[],_text}'),
  (17, 'real',             '{float4,real}'),
  (18, 'numeric',          '{numeric,decimal}'),
  (19, 'inet',             '{inet}'),
  (20, 'bytea',            '{bytea}'),
  (21, 'interval',         '{interval}'),
  (22, 'varchar',          '{varchar,"character varying"}'),
  (23, 'json',             '{json}');

-- Column j (1..30) of table t gets type ((7t + j) mod 24): every table has a different mix.
CREATE FUNCTION bench.col_type(t int, j int) RETURNS int LANGUAGE sql IMMUTABLE
AS $$ SELECT (7 * t + j) % 24 $$;

-- 5,000 CREATE TABLEs. One transaction per schema keeps the lock table (max_locks_per_transaction)
-- from overflowing: each new relation holds an AccessExclusiveLock until commit.
DO $$
DECLARE
  s int;
  t int;
BEGIN
  FOR s IN 1..5 LOOP
    EXECUTE format('CREATE SCHEMA %I', 'bench_s' || s);
    FOR t IN 1..1000 LOOP
      EXECUTE (
        SELECT format('CREATE TABLE %I.%I (%s)', 'bench_s' || s, format('t%s', lpad(t::text, 4, '0')),
                      string_agg(format('c%s %s', lpad(j::text, 2, '0'), m.ddl), ', ' ORDER BY j))
          FROM generate_series(1, 30) j
          JOIN bench.type_mix m ON m.k = bench.col_type(t, j));
    END LOOP;
    COMMIT;
  END LOOP;
END
$$;

-- The contract: tables t0001..t0200 of each schema (1,000 tables, 30,000 columns), one dbt source
-- per schema, as a dbt YAML properties file. Names are JSON strings, which YAML reads as strings.
CREATE FUNCTION bench.contract_yaml() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT E'version: 2\nsources:\n' || string_agg(src, '' ORDER BY s)
    FROM (
      SELECT s, format(E'  - name: %s\n    schema: %s\n    tables:\n', to_json('src_s' || s),
                       to_json('bench_s' || s))
                || string_agg(tbl, '' ORDER BY t) AS src
        FROM (
          SELECT s, t, format(E'      - name: %s\n        columns:\n', to_json(format('t%s', lpad(t::text, 4, '0'))))
                       || string_agg(format(E'          - name: %s\n            data_type: %s\n',
                                            to_json('c' || lpad(j::text, 2, '0')),
                                            to_json(m.spellings[1 + (t + j) % cardinality(m.spellings)])),
                                     '' ORDER BY j) AS tbl
            FROM generate_series(1, 5) s CROSS JOIN generate_series(1, 200) t CROSS JOIN generate_series(1, 30) j
            JOIN bench.type_mix m ON m.k = bench.col_type(t, j)
           GROUP BY s, t) tables
       GROUP BY s) sources
$$;

-- Drift in 20 contracted tables: one column added, one dropped, one retyped. money and macaddr are
-- in no contract (no rename pairing, no match with an unmodified `varchar`): exactly 60 rows.
CREATE FUNCTION bench.make_drift() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  k int;
  rel text;
BEGIN
  FOR k IN 1..20 LOOP
    rel := format('%I.%I', 'bench_s' || (1 + k % 5), format('t%s', lpad((k * 9)::text, 4, '0')));
    EXECUTE format('ALTER TABLE %s ADD COLUMN extra_col money, DROP COLUMN c05, '
                   'ALTER COLUMN c07 TYPE macaddr USING NULL', rel);
  END LOOP;
END
$$;

-- The floor: the least any tool must ask of the catalog for the same relations, relation and
-- column names plus one format_type per column (oids = true: the type oid and typmod instead).
CREATE FUNCTION bench.minimal_query(oids boolean) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT format(
    'SELECT c.relname::text AS b, a.attname::text AS c, %s '
    'FROM unnest(ARRAY[%s]::name[], ARRAY[%s]::name[]) AS w(nsp, rel) '
    'JOIN pg_namespace n ON n.nspname = w.nsp '
    'JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel '
    'JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped',
    CASE WHEN oids THEN 'a.atttypid AS t, a.atttypmod AS m' ELSE 'format_type(a.atttypid, a.atttypmod) AS f' END,
    string_agg(quote_literal(schema_name), ',' ORDER BY schema_name COLLATE "C", identifier COLLATE "C"),
    string_agg(quote_literal(identifier), ',' ORDER BY schema_name COLLATE "C", identifier COLLATE "C"))
  FROM (SELECT DISTINCT schema_name, identifier FROM drift_watch.contract_table) r
$$;

-- What dbt's postgres adapter runs per relation (get_columns_in_relation), one query per table.
CREATE FUNCTION bench.information_schema_queries() RETURNS SETOF text LANGUAGE sql STABLE AS $$
  SELECT format('select column_name, data_type, character_maximum_length, numeric_precision, '
                'numeric_scale from information_schema.columns where table_name = %L '
                'and table_schema = %L order by ordinal_position;', identifier, schema_name)
    FROM drift_watch.contract_table ORDER BY id
$$;
