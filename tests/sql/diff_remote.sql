-- drift_diff(target) reads a second, real cluster through a foreign server and the caller's
-- user mapping (tests/fixtures/app.sql holds its schema). Types that exist only there (enums,
-- domains, a type in another schema) are resolved there.
SET client_min_messages = warning;
SELECT load_contract('models/app.yml', $yaml$
sources:
  - name: public
    tables:
      - name: customers
        columns:
          - {name: id, data_type: int8}
          - {name: email, data_type: varchar(320)}
          - {name: full_name, data_type: text}
          - {name: tags, data_type: "text[]"}
          - {name: created_at, data_type: timestamptz}
      - name: orders
        columns:
          - {name: id, data_type: bigint}
          - {name: customer_id, data_type: bigint}
          - {name: status, data_type: order_status}
          - {name: total, data_type: money_cents}
          - {name: amount, data_type: numeric}
          - {name: placed_at, data_type: timestamp}
      - name: active_customers
      - name: daily_totals
        columns: [{name: day, data_type: int}, {name: total, data_type: numeric}]
  - name: billing
    tables:
      - name: subscriptions
        columns:
          - {name: id, data_type: integer}
          - {name: plan, data_type: plan}
          - {name: Seats, quote: true, data_type: int2}
$yaml$);
-- postgres_fdw server, superuser mapping: no drift.
SELECT * FROM drift_diff('app');
-- dblink_fdw server, mapped to a role with no grants on the app tables: same answer.
SELECT * FROM drift_diff('app_dblink');
-- This database has none of those tables: reading it instead reports every one missing.
SELECT change, count(*) FROM drift_diff() GROUP BY change;

-- Identifiers with quotes, semicolons, unicode and mixed case are data, never SQL.
SELECT load_contract('models/weird.yml', $yaml$
sources:
  - name: weird
    schema: "Weird; Schema"
    quoting: {schema: true, identifier: true}
    tables:
      - name: t
        identifier: "Tab'le \"x\"; DROP TABLE customers; --"
        columns:
          - {name: "col'; DROP TABLE customers; --", quote: true, data_type: "int4"}
          - {name: "Ünïcødé Column", quote: true}
          - {name: MiXeD}
          - {name: "x'); DROP TABLE customers; --", quote: true, data_type: "text'); DROP TABLE customers; --"}
$yaml$);
SELECT source_name, schema_name, table_name, column_name, change, contract_type, live_type
  FROM drift_diff('app') WHERE source_name = 'weird';
-- Nothing was executed on the app side: customers is still there.
SELECT * FROM dblink('app', 'SELECT to_regclass(''public.customers'')::text') AS t(still_there text);

-- A target that cannot be read is an error naming it, never an empty result.
SELECT * FROM drift_diff('app_down');
SELECT * FROM drift_diff('no_such_server');
SELECT * FROM drift_diff('app_unmapped');
SELECT * FROM drift_diff('');

SELECT forget_contract(origin) FROM drift_watch.contract_origin;
