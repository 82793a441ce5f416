-- drift_diff() against the current database: every change kind, type spellings compared through
-- Postgres's own type parser, relation kinds, and an ad-hoc run that changes nothing.
SET client_min_messages = warning;
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN public.year AS integer CHECK (VALUE BETWEEN 1901 AND 2155);
CREATE TABLE shop.spellings (
    a integer, b character varying(255), c timestamp with time zone, d integer[],
    e public.year, f shop.mood, g numeric(10,2), h timestamp(6) without time zone,
    i character(1), j text, dropped text
);
ALTER TABLE shop.spellings DROP COLUMN dropped;
CREATE TABLE shop.events (id bigint, payload jsonb) PARTITION BY HASH (id);
CREATE VIEW shop.v_events AS SELECT id FROM shop.events;
CREATE MATERIALIZED VIEW shop.mv AS SELECT 1 AS one;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE FOREIGN TABLE shop.ft (x int) SERVER app_down;
CREATE TABLE shop.wide (a int, b int, c int);

-- Every accepted spelling of the same types: no drift at all.
SELECT load_contract('models/shop.yml', $yaml$
sources:
  - name: shop
    tables:
      - name: spellings
        columns:
          - {name: a, data_type: int}
          - {name: b, data_type: varchar(255)}
          - {name: c, data_type: timestamptz}
          - {name: d, data_type: "_int4"}
          - {name: e, data_type: year}
          - {name: f, data_type: mood}
          - {name: g, data_type: numeric}
          - {name: h, data_type: timestamp}
          - {name: i, data_type: char}
          - {name: j, data_type: TEXT}
      - name: events
        columns: [{name: id, data_type: int8}, {name: payload, data_type: jsonb}]
      - name: v_events
        columns: [{name: id, data_type: bigint}]
      - name: mv
        columns: [{name: one, data_type: int4}]
      - name: ft
        columns: [{name: x, data_type: integer}]
      - name: wide
$yaml$);
SELECT * FROM drift_diff();

-- The same spellings, in other words.
SELECT load_contract('models/shop.yml', $yaml$
sources:
  - name: shop
    tables:
      - name: spellings
        columns:
          - {name: a, data_type: int4}
          - {name: b, data_type: character varying(255)}
          - {name: c, data_type: timestamp with time zone}
          - {name: d, data_type: "int[]"}
          - {name: e, data_type: public.year}
          - {name: f, data_type: shop.mood}
          - {name: g, data_type: "numeric(10,2)"}
          - {name: h, data_type: timestamp(6) without time zone}
          - {name: i, data_type: character(1)}
          - {name: j, data_type: text}
$yaml$);
SELECT * FROM drift_diff();

-- A modifier in the contract must match; a wrong type, an unknown type and an unparseable one
-- are each reported on their own row, never an error.
SELECT load_contract('models/shop.yml', $yaml$
sources:
  - name: shop
    tables:
      - name: spellings
        columns:
          - {name: a, data_type: bigint}
          - {name: b, data_type: varchar(100)}
          - {name: c, data_type: timestamp}
          - {name: d, data_type: "text[]"}
          - {name: e, data_type: no_such_type}
          - {name: f, data_type: "varchar(("}
          - {name: g, data_type: "numeric(10,2)"}
$yaml$);
SELECT * FROM drift_diff();

-- Migrations: a rename (one missing, one new of the same type), an added column, a dropped
-- one, a dropped table; columns of a table listed without columns are not reported.
SELECT load_contract('models/shop.yml', $yaml$
sources:
  - name: shop
    tables:
      - name: customers
        columns:
          - {name: id, data_type: bigint}
          - {name: email, data_type: text}
          - {name: phone, data_type: text}
      - name: orders
        columns: [{name: id, data_type: bigint}, {name: note}, {name: legacy_flag}]
      - name: wide
      - name: gone
$yaml$);
CREATE TABLE shop.customers (id bigint, email text, phone text);
CREATE TABLE shop.orders (id bigint, note text, legacy_flag boolean);
ALTER TABLE shop.wide ADD COLUMN d int;
SELECT * FROM drift_diff();
ALTER TABLE shop.customers RENAME COLUMN email TO email_address;
ALTER TABLE shop.orders ADD COLUMN shipped_at timestamptz, ADD COLUMN "Carrier" text,
                        DROP COLUMN legacy_flag;
SELECT * FROM drift_diff();

-- Unquoted contract names fold; a live column differing only in case says how to fix it.
CREATE TABLE shop."Invoices" ("InvoiceId" int, total numeric);
SELECT load_contract('models/shop.yml', $yaml$
sources:
  - name: shop
    quoting: {identifier: true}
    tables:
      - name: Invoices
        columns:
          - {name: InvoiceId}
          - {name: Total}
$yaml$);
SELECT * FROM drift_diff();

-- An ad-hoc run changes nothing it does not own: the contract and the caller's search_path are
-- as before, and a read-only transaction can run it.
SET search_path = shop, public;
BEGIN TRANSACTION READ ONLY;
SELECT count(*) AS deltas FROM drift_diff();
SELECT count(*) AS deltas_via_schema FROM drift_watch.drift_diff();
COMMIT;
SHOW search_path;
RESET search_path;
SELECT count(*) AS contract_columns FROM drift_watch.contract;

-- A role with the default search_path calls it as written.
CREATE ROLE analyst;
GRANT drift_watch_checker TO analyst;
SET ROLE analyst;
SHOW search_path;
SELECT change, count(*) FROM drift_diff() GROUP BY change ORDER BY change;
RESET ROLE;
REVOKE drift_watch_checker FROM analyst;
DROP ROLE analyst;

SELECT forget_contract(origin) FROM drift_watch.contract_origin;
DROP SCHEMA shop CASCADE;
DROP DOMAIN public.year;
