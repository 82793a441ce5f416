//! Recording one check run, as the extension's owner (see `runs`): the baselines, the delta
//! records, the outbox and the NOTIFY, from a live read the caller made. `drift_watch._finish_check`
//! (sql/checks.sql) wraps this in a savepoint so that a failure marks the run failed and changes
//! nothing else. This module is the only writer of run state.

use std::sync::Arc;

use drift_watch_core::{
    baselines_without_columns, check, Baseline, Baselines, ContractTable, Delta, FxHashSet,
    LiveCatalog, LiveColumn,
};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog::LiveRead;
use crate::error::DriftError;
use crate::spi_rows::{self, ty};
use crate::store;

/// What a run recorded.
struct Counts {
    /// Drift found (undocumented columns are coverage, counted apart).
    found: i64,
    new: i64,
    resolved: i64,
    open: i64,
    undocumented: i64,
}

pub fn record(
    run_id: i64,
    target: Option<&str>,
    contract: &[drift_watch_core::ContractTable],
    live: LiveRead,
) -> Result<(), DriftError> {
    let key = target.unwrap_or("");
    Spi::connect_mut(|client| {
        let baselines = read_baselines(client, key, contract, &live.catalog)?;
        let outcome = check(contract, &live.catalog, &live.types, &baselines);
        write_baselines(client, key, run_id, &outcome.baselines, contract)?;
        let counts = record_deltas(client, run_id, key, &outcome.deltas)?;
        announce(client, run_id, key, &counts)
    })
}

/// The stored baselines of `target`, as a check of `contract` against `live` needs them: the
/// columns of an exact baseline that the diff would not read are left out (see
/// `baselines_without_columns`).
pub fn read_baselines(
    client: &SpiClient<'_>,
    target: &str,
    contract: &[ContractTable],
    live: &LiveCatalog,
) -> Result<Baselines, DriftError> {
    // Computed at the first stored baseline (there may be none).
    let mut unread = None;
    let mut out = Baselines::new();
    let mut spellings: FxHashSet<Arc<str>> = FxHashSet::default();
    let mut spelling = move |t: &str| store::intern(&mut spellings, t);
    spi_rows::for_each_saved(
        client,
        "SELECT schema_name, identifier, rel_oid, contract_fingerprint, attnums, column_names,
                type_oids, typmods, type_names
           FROM drift_watch.snapshot WHERE target = $1",
        &[target.into()],
        &[
            ty::TEXT,
            ty::TEXT,
            ty::INT8,
            ty::TEXT,
            ty::INT4_ARRAY,
            ty::TEXT_ARRAY,
            ty::INT8_ARRAY,
            ty::INT4_ARRAY,
            ty::TEXT_ARRAY,
        ],
        |row| {
            let key = (
                row.text(0).unwrap_or_default(),
                row.text(1).unwrap_or_default(),
            );
            let rel_oid = row.int8(2).unwrap_or_default() as u32;
            let contract_fingerprint = row.text(3).unwrap_or_default();
            if unread
                .get_or_insert_with(|| baselines_without_columns(contract, live))
                .get(&key)
                .is_some_and(|(oid, f)| *oid == rel_oid && *f == contract_fingerprint)
            {
                out.insert(
                    key,
                    Baseline {
                        rel_oid,
                        contract_fingerprint,
                        columns: Vec::new(),
                    },
                );
                return Ok(());
            }
            // Arrays are walked in place, and the few type spellings share an allocation each.
            let attnums = row.int4_array_iter(4);
            let mut columns = Vec::with_capacity(attnums.len());
            columns.extend(
                attnums
                    .zip(row.str_array(5))
                    .zip(row.int8_array_iter(6))
                    .zip(row.int4_array_iter(7))
                    .zip(row.str_array(8))
                    .filter_map(|((((attnum, name), oid), typmod), type_name)| {
                        Some(LiveColumn {
                            attnum: attnum?,
                            name: Arc::from(name?.as_ref()),
                            type_oid: oid? as u32,
                            typmod: typmod?,
                            type_name: spelling(&type_name?),
                        })
                    }),
            );
            out.insert(
                key,
                Baseline {
                    rel_oid,
                    contract_fingerprint,
                    columns,
                },
            );
            Ok(())
        },
    )?;
    Ok(out)
}

/// Stores new or retaken baselines (one statement), and drops those of relations no longer in
/// the contract.
fn write_baselines(
    client: &mut SpiClient<'_>,
    target: &str,
    run_id: i64,
    baselines: &[((String, String), Baseline)],
    contract: &[drift_watch_core::ContractTable],
) -> Result<(), DriftError> {
    let schemas: Vec<&str> = contract.iter().map(|t| t.schema.as_str()).collect();
    let identifiers: Vec<&str> = contract.iter().map(|t| t.identifier.as_str()).collect();
    client.update(
        "DELETE FROM drift_watch.snapshot s
          WHERE s.target = $1
            AND (s.schema_name, s.identifier) NOT IN
                (SELECT * FROM unnest($2::text[], $3::text[]))",
        None,
        &[target.into(), schemas.into(), identifiers.into()],
    )?;
    if baselines.is_empty() {
        return Ok(());
    }
    let mut rel = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut col = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (n, ((schema, identifier), b)) in baselines.iter().enumerate() {
        let n = n as i32 + 1;
        rel.0.push(n);
        rel.1.push(schema.as_str());
        rel.2.push(identifier.as_str());
        rel.3.push(i64::from(b.rel_oid));
        rel.4.push(b.contract_fingerprint.as_str());
        for c in &b.columns {
            col.0.push(n);
            col.1.push(c.attnum);
            col.2.push(&*c.name);
            col.3.push(i64::from(c.type_oid));
            col.4.push(c.typmod);
            col.5.push(&*c.type_name);
        }
    }
    client.update(
        "INSERT INTO drift_watch.snapshot AS s
                (target, schema_name, identifier, rel_oid, contract_fingerprint, taken_run,
                 attnums, column_names, type_oids, typmods, type_names)
         SELECT $1, r.schema_name, r.identifier, r.rel_oid, r.fingerprint, $2,
                COALESCE(c.attnums, '{}'), COALESCE(c.names, '{}'), COALESCE(c.oids, '{}'),
                COALESCE(c.typmods, '{}'), COALESCE(c.type_names, '{}')
           FROM unnest($3::int4[], $4::text[], $5::text[], $6::int8[], $7::text[])
                AS r(n, schema_name, identifier, rel_oid, fingerprint)
           LEFT JOIN (SELECT n, array_agg(attnum ORDER BY attnum) AS attnums,
                             array_agg(name ORDER BY attnum) AS names,
                             array_agg(oid ORDER BY attnum) AS oids,
                             array_agg(typmod ORDER BY attnum) AS typmods,
                             array_agg(type_name ORDER BY attnum) AS type_names
                        FROM unnest($8::int4[], $9::int4[], $10::text[], $11::int8[], $12::int4[],
                                    $13::text[]) AS c(n, attnum, name, oid, typmod, type_name)
                       GROUP BY n) c USING (n)
         ON CONFLICT (target, schema_name, identifier) DO UPDATE
            SET rel_oid = EXCLUDED.rel_oid, contract_fingerprint = EXCLUDED.contract_fingerprint,
                taken_run = EXCLUDED.taken_run, attnums = EXCLUDED.attnums,
                column_names = EXCLUDED.column_names, type_oids = EXCLUDED.type_oids,
                typmods = EXCLUDED.typmods, type_names = EXCLUDED.type_names",
        None,
        &[
            target.into(),
            run_id.into(),
            rel.0.into(),
            rel.1.into(),
            rel.2.into(),
            rel.3.into(),
            rel.4.into(),
            col.0.into(),
            col.1.into(),
            col.2.into(),
            col.3.into(),
            col.4.into(),
            col.5.into(),
        ],
    )?;
    Ok(())
}

/// Turns this run's deltas into records: seen again (last seen moves), new (a record), or gone
/// (resolved). Ignore rules apply first. One statement.
fn record_deltas(
    client: &mut SpiClient<'_>,
    run_id: i64,
    target: &str,
    deltas: &[Delta],
) -> Result<Counts, DriftError> {
    let field = |f: fn(&Delta) -> Option<&str>| deltas.iter().map(f).collect::<Vec<_>>();
    let table = client
        .update(
            "WITH found AS (
               SELECT f.*,
                      md5(concat_ws(chr(31), $2, f.source_name, f.schema_name, f.table_name,
                                    coalesce(f.column_name, ''), f.change,
                                    coalesce(f.contract_type, ''), coalesce(f.live_type, ''),
                                    coalesce(f.renamed_from, ''))) AS fingerprint
                 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::text[])
                      AS f(source_name, schema_name, table_name, column_name, change,
                           contract_type, live_type, detail, renamed_from)
                WHERE NOT drift_watch._ignored($2, f.source_name, f.schema_name, f.table_name,
                                               f.column_name, f.change)),
             seen AS (
               UPDATE drift_watch.delta d
                  SET last_seen_run = $1, last_seen_at = now(), detail = f.detail
                 FROM found f
                WHERE d.target = $2 AND d.resolved_run IS NULL AND d.fingerprint = f.fingerprint
               RETURNING d.fingerprint),
             new AS (
               INSERT INTO drift_watch.delta
                      (target, fingerprint, source_name, schema_name, table_name, column_name,
                       change, contract_type, live_type, detail, renamed_from, first_seen_run,
                       last_seen_run, first_seen_at, last_seen_at)
               SELECT $2, f.fingerprint, f.source_name, f.schema_name, f.table_name,
                      f.column_name, f.change, f.contract_type, f.live_type, f.detail,
                      f.renamed_from, $1, $1, now(), now()
                 FROM found f
                WHERE f.fingerprint NOT IN (SELECT fingerprint FROM seen)
               RETURNING change),
             gone AS (
               UPDATE drift_watch.delta d
                  SET resolved_run = $1, resolved_at = now()
                WHERE d.target = $2 AND d.resolved_run IS NULL
                  AND d.fingerprint NOT IN (SELECT fingerprint FROM found)
               RETURNING d.change)
             SELECT (SELECT count(*) FROM found WHERE change <> 'undocumented'),
                    (SELECT count(*) FROM new WHERE change <> 'undocumented'),
                    (SELECT count(*) FROM gone WHERE change <> 'undocumented'),
                    (SELECT count(*) FROM found WHERE change = 'undocumented')",
            None,
            &[
                run_id.into(),
                target.into(),
                field(|d| Some(d.source_name.as_str())).into(),
                field(|d| Some(d.schema_name.as_str())).into(),
                field(|d| Some(d.table_name.as_str())).into(),
                field(|d| d.column_name.as_deref()).into(),
                field(|d| Some(d.change.as_str())).into(),
                field(|d| d.contract_type.as_deref()).into(),
                field(|d| d.live_type.as_deref()).into(),
                field(|d| d.detail.as_deref()).into(),
                field(|d| d.renamed_from.as_deref()).into(),
            ],
        )?
        .first();
    let count = |i: usize| -> Result<i64, DriftError> { Ok(table.get::<i64>(i)?.unwrap_or(0)) };
    let (found, new, resolved, undocumented) = (count(1)?, count(2)?, count(3)?, count(4)?);
    Ok(Counts {
        found,
        new,
        resolved,
        // Every drift found now is open after this run (new or seen again).
        open: found,
        undocumented,
    })
}

/// Outbox rows for what is new or resolved, the run's row, and the wake-up NOTIFY (only a
/// small summary: the records are the truth, and a payload is limited to 8000 bytes).
fn announce(
    client: &mut SpiClient<'_>,
    run_id: i64,
    target: &str,
    counts: &Counts,
) -> Result<(), DriftError> {
    if counts.new > 0 {
        // Severity, owner and impact of what is new, from the lineage as it stands now.
        client.update(
            "UPDATE drift_watch.delta d
                SET severity = i.severity, owner = i.owner, impact = i.impact
               FROM drift_watch._impact(ARRAY(
                        SELECT id FROM drift_watch.delta
                         WHERE target = $2 AND first_seen_run = $1)) i
              WHERE d.id = i.delta_id",
            None,
            &[run_id.into(), target.into()],
        )?;
        // One item per owner (NULL: unowned), carrying its most urgent severity.
        client.update(
            "WITH new AS (
               SELECT id, owner, severity FROM drift_watch.delta
                WHERE target = $2 AND first_seen_run = $1 AND change <> 'undocumented'),
             o AS (
               INSERT INTO drift_watch.outbox (run_id, kind, target, owner, severity)
               SELECT $1, 'new_deltas', $2, owner,
                      (ARRAY['breaking', 'risky', 'info'])[
                          min(coalesce(array_position(ARRAY['breaking', 'risky', 'info'], severity), 2))]
                 FROM new GROUP BY owner ORDER BY owner NULLS LAST
               RETURNING id, owner)
             UPDATE drift_watch.delta d SET announce_outbox_id = o.id
               FROM new JOIN o ON o.owner IS NOT DISTINCT FROM new.owner
              WHERE d.id = new.id",
            None,
            &[run_id.into(), target.into()],
        )?;
    }
    if counts.resolved > 0 {
        // One follow-up per earlier announcement that had deltas resolved now.
        client.update(
            "WITH parents AS (
               SELECT DISTINCT announce_outbox_id AS parent_id FROM drift_watch.delta
                WHERE target = $2 AND resolved_run = $1 AND announce_outbox_id IS NOT NULL),
             o AS (
               INSERT INTO drift_watch.outbox (run_id, kind, target, parent_id)
               SELECT $1, 'resolved', $2, parent_id FROM parents RETURNING id, parent_id)
             UPDATE drift_watch.delta d SET resolve_outbox_id = o.id FROM o
              WHERE d.target = $2 AND d.resolved_run = $1 AND d.announce_outbox_id = o.parent_id",
            None,
            &[run_id.into(), target.into()],
        )?;
    }
    let notify = counts.new > 0 || counts.resolved > 0;
    client.update(
        "UPDATE drift_watch.check_run
            SET status = 'succeeded', finished_at = clock_timestamp(), deltas_found = $2,
                deltas_new = $3, deltas_resolved = $4, deltas_open = $5, notified = $6,
                deltas_undocumented = $7
          WHERE id = $1",
        None,
        &[
            run_id.into(),
            (counts.found as i32).into(),
            (counts.new as i32).into(),
            (counts.resolved as i32).into(),
            (counts.open as i32).into(),
            notify.into(),
            (counts.undocumented as i32).into(),
        ],
    )?;
    if notify {
        client.update(
            "SELECT pg_notify('drift_watch', json_build_object(
                 'run_id', $1, 'target', NULLIF($2, ''), 'status', 'succeeded',
                 'new', $3, 'resolved', $4, 'open', $5)::text)",
            None,
            &[
                run_id.into(),
                target.into(),
                counts.new.into(),
                counts.resolved.into(),
                counts.open.into(),
            ],
        )?;
    }
    Ok(())
}
