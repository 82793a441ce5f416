//! What a person reads in Asana: pure functions from delta records to a task title, Asana rich
//! text (`html_notes`: well-formed XML, `<body>` root, only the tags Asana allows in tasks) and the
//! YAML to paste into the dbt sources file. No I/O here.

use std::collections::BTreeMap;
use std::fmt::Write;

use drift_watch_core::{Change, Severity};
use serde::Deserialize;

/// What a delta breaks downstream (`drift_watch.delta.impact`, from the dbt lineage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Impact {
    /// The source table's direct children (models, snapshots, exposures).
    #[serde(default)]
    pub direct: Vec<Child>,
    /// Models reachable from the table.
    #[serde(default)]
    pub models: i64,
    #[serde(default)]
    pub exposures: Vec<Exposure>,
    /// The column a column-level change concerns (the old name for a rename).
    #[serde(default)]
    pub column: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Child {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    /// Column-level changes: the lines that name the column, and those reading every column.
    #[serde(default)]
    pub lines: Option<Vec<u32>>,
    #[serde(default)]
    pub reads_all: Option<Vec<u32>>,
}

impl Child {
    /// Whether the child's SQL reads the column (by name, or through `select *`).
    pub fn reads(&self) -> bool {
        self.lines.as_ref().is_some_and(|l| !l.is_empty())
            || self.reads_all.as_ref().is_some_and(|l| !l.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Exposure {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// One delta record as the notifier reads it from `drift_watch.delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRow {
    pub source_name: String,
    pub schema_name: String,
    pub table_name: String,
    pub column_name: Option<String>,
    pub change: Change,
    pub contract_type: Option<String>,
    pub live_type: Option<String>,
    pub detail: Option<String>,
    /// When the drift was first seen, as the database formats it.
    pub first_seen_at: String,
    /// For a rename: the column's old name, as stored (never parsed out of `detail`).
    pub renamed_from: Option<String>,
    /// breaking / risky / info, decided when the delta was first seen.
    pub severity: Option<Severity>,
    pub impact: Option<Impact>,
}

/// A task to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDraft {
    pub name: String,
    pub html_notes: String,
    /// The most urgent severity in the task (tags, section and custom field follow it).
    pub severity: Option<Severity>,
    /// Asana user gid to assign (else the configured default assignee).
    pub assignee: Option<String>,
    /// Asana user gids to add as followers (owners of impacted exposures).
    pub followers: Vec<String>,
}

impl TaskDraft {
    pub fn new(name: String, html_notes: String) -> Self {
        TaskDraft {
            name,
            html_notes,
            severity: None,
            assignee: None,
            followers: Vec::new(),
        }
    }
}

/// The line that lets a later attempt find this task again (Asana has no idempotency keys).
pub fn marker_line(marker: &str) -> String {
    format!("drift_watch marker: {marker}")
}

const TITLE_TABLES: usize = 3;

/// The task for one run's new deltas: grouped by table, each with its YAML fix.
pub fn new_deltas_task(target: &str, marker: &str, deltas: &[DeltaRow]) -> TaskDraft {
    // Tables in the order their first delta comes: deltas come most severe first.
    type Group<'a> = ((&'a str, &'a str, &'a str), Vec<&'a DeltaRow>);
    let mut by_table: Vec<Group> = Vec::new();
    let mut index: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for d in deltas {
        let key = (
            d.source_name.as_str(),
            d.schema_name.as_str(),
            d.table_name.as_str(),
        );
        let i = *index.entry(key).or_insert_with(|| {
            by_table.push((key, Vec::new()));
            by_table.len() - 1
        });
        by_table[i].1.push(d);
    }
    let top = deltas.iter().filter_map(|d| d.severity).min();
    let tables: Vec<&str> = by_table.iter().map(|(k, _)| k.2).collect();
    let mut listed = tables
        .iter()
        .take(TITLE_TABLES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if tables.len() > TITLE_TABLES {
        let _ = write!(listed, " +{} more", tables.len() - TITLE_TABLES);
    }
    let name = format!(
        "{}dbt source drift on {}: {} change{} ({listed})",
        severity_prefix(top),
        target_label(target),
        deltas.len(),
        if deltas.len() == 1 { "" } else { "s" },
    );

    let mut html = String::from("<body>");
    let _ = writeln!(
        html,
        "The live schema of <strong>{}</strong> no longer matches the dbt source contract. \
         {} change{} in {} table{}; update the sources files (YAML below), then the next check \
         resolves them.",
        xml(target_label(target)),
        deltas.len(),
        if deltas.len() == 1 { "" } else { "s" },
        tables.len(),
        if tables.len() == 1 { "" } else { "s" },
    );
    for ((source, schema, table), rows) in &by_table {
        let (source, schema, table) = (*source, *schema, *table);
        let _ = write!(
            html,
            "<h2>{}.{} (source {})</h2><ul>",
            xml(schema),
            xml(table),
            xml(source)
        );
        for d in rows {
            html.push_str("<li>");
            html.push_str(&describe(d));
            html.push_str("</li>");
        }
        html.push_str("</ul>");
        let _ = write!(
            html,
            "<strong>YAML for the sources file</strong>\n<code>{}</code>\n",
            xml(&yaml_fix(source, table, rows))
        );
    }
    let _ = write!(html, "<hr/><em>{}</em></body>", xml(&marker_line(marker)));
    let mut task = TaskDraft::new(name, html);
    task.severity = top;
    task
}

/// `[breaking] ` before the title of a task with a breaking change (each change's severity is in
/// the body; risky and info titles stay plain).
fn severity_prefix(top: Option<Severity>) -> String {
    match top {
        Some(Severity::Breaking) => "[breaking] ".into(),
        _ => String::new(),
    }
}

/// At most this many deltas are described in a task body; the rest are summarised by table and
/// change kind, and the complete list is attached as a CSV file.
pub const MAX_LISTED: usize = 300;
/// At most this many tables are named in a body's summary of the deltas not listed.
pub const MAX_SUMMARY_TABLES: usize = 50;
/// The most a task's name and rich text may take once JSON-encoded, so that the create request
/// stays under 128 KiB with its envelope.
pub const BODY_BUDGET: usize = 120 * 1024;

/// Bytes `s` takes as a JSON string (without the quotes), as serde_json writes it.
pub fn json_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

type TableKey = (String, String, String);

/// The change counts of one table, for the summary.
#[derive(Debug, Default)]
struct TableCounts {
    key: TableKey,
    counts: BTreeMap<Change, usize>,
}

/// Builds the task for one run's new deltas from a stream of them (in the order
/// `outbox_deltas` gives), holding at most `MAX_LISTED` of them: whatever the run's size, the
/// body stays within `BODY_BUDGET`.
#[derive(Debug)]
pub struct NewDeltasTask {
    target: String,
    marker: String,
    first: Vec<DeltaRow>,
    total: usize,
    tables: usize,
    title_tables: Vec<String>,
    last_key: Option<TableKey>,
    /// The deltas past the first MAX_LISTED, by table (at most MAX_SUMMARY_TABLES + 1 kept).
    rest: Vec<TableCounts>,
    /// Deltas in tables past those.
    rest_more_changes: usize,
    /// The most urgent severity pushed.
    top: Option<Severity>,
}

impl NewDeltasTask {
    pub fn new(target: &str, marker: &str) -> Self {
        NewDeltasTask {
            target: target.into(),
            marker: marker.into(),
            first: Vec::new(),
            total: 0,
            tables: 0,
            title_tables: Vec::new(),
            last_key: None,
            rest: Vec::new(),
            rest_more_changes: 0,
            top: None,
        }
    }

    /// The deltas listed so far (the first `MAX_LISTED`).
    pub fn listed(&self) -> &[DeltaRow] {
        &self.first
    }

    /// How many deltas were pushed.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether the body cannot hold every delta (the complete list goes in an attachment).
    pub fn is_truncated(&self) -> bool {
        self.total > MAX_LISTED
    }

    pub fn push(&mut self, d: DeltaRow) {
        self.total += 1;
        self.top = match (self.top, d.severity) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let key = (
            d.source_name.clone(),
            d.schema_name.clone(),
            d.table_name.clone(),
        );
        if self.last_key.as_ref() != Some(&key) {
            self.tables += 1;
            if self.title_tables.len() < TITLE_TABLES {
                self.title_tables.push(d.table_name.clone());
            }
            self.last_key = Some(key.clone());
        }
        if self.first.len() < MAX_LISTED {
            self.first.push(d);
            return;
        }
        let full = self.rest.len() > MAX_SUMMARY_TABLES;
        match self.rest.last_mut() {
            Some(t) if t.key == key => *t.counts.entry(d.change).or_default() += 1,
            _ if full => self.rest_more_changes += 1,
            _ => {
                let mut t = TableCounts {
                    key,
                    ..Default::default()
                };
                t.counts.insert(d.change, 1);
                self.rest.push(t);
            }
        }
    }

    /// The task. `attachment` names the file the complete list goes to, when truncated.
    pub fn finish(mut self, attachment: Option<&str>) -> TaskDraft {
        if !self.is_truncated() {
            let task = new_deltas_task(&self.target, &self.marker, &self.first);
            if json_len(&task.name) + json_len(&task.html_notes) <= BODY_BUDGET {
                return task;
            }
        }
        let mut listed = self.title_tables.join(", ");
        if self.tables > TITLE_TABLES {
            let _ = write!(listed, " +{} more", self.tables - TITLE_TABLES);
        }
        let name = format!(
            "{}dbt source drift on {}: {} change{} ({listed})",
            severity_prefix(self.top),
            target_label(&self.target),
            self.total,
            if self.total == 1 { "" } else { "s" },
        );
        // The summary and the footer fit in this; blocks take the rest of the budget.
        const RESERVE: usize = 24 * 1024;
        let budget = BODY_BUDGET.saturating_sub(RESERVE + json_len(&name));
        let mut blocks = String::new();
        let mut shown = 0;
        let first = std::mem::take(&mut self.first);
        let mut groups: Vec<&[DeltaRow]> = Vec::new();
        let mut start = 0;
        for i in 1..=first.len() {
            if i == first.len()
                || (
                    first[i].source_name.as_str(),
                    first[i].schema_name.as_str(),
                    first[i].table_name.as_str(),
                ) != (
                    first[start].source_name.as_str(),
                    first[start].schema_name.as_str(),
                    first[start].table_name.as_str(),
                )
            {
                groups.push(&first[start..i]);
                start = i;
            }
        }
        let mut unlisted: Vec<TableCounts> = Vec::new();
        for rows in groups {
            let block = table_block(rows);
            if unlisted.is_empty() && json_len(&blocks) + json_len(&block) <= budget {
                blocks.push_str(&block);
                shown += rows.len();
            } else {
                let mut t = TableCounts {
                    key: (
                        rows[0].source_name.clone(),
                        rows[0].schema_name.clone(),
                        rows[0].table_name.clone(),
                    ),
                    ..Default::default()
                };
                for d in rows {
                    *t.counts.entry(d.change).or_default() += 1;
                }
                unlisted.push(t);
            }
        }
        // The deltas not listed, by table: those that did not fit, then the rest of the stream.
        let mut summary: Vec<TableCounts> = unlisted;
        for t in std::mem::take(&mut self.rest) {
            match summary.last_mut() {
                Some(last) if last.key == t.key => {
                    for (c, n) in t.counts {
                        *last.counts.entry(c).or_default() += n;
                    }
                }
                _ => summary.push(t),
            }
        }
        let not_listed = self.total - shown;
        let mut html = String::from("<body>");
        let _ = writeln!(
            html,
            "The live schema of <strong>{}</strong> no longer matches the dbt source contract. \
             {} change{} in {} table{}; update the sources files (YAML below), then the next check \
             resolves them.",
            xml(target_label(&self.target)),
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.tables,
            if self.tables == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            html,
            "The first {shown} are listed below; the other {not_listed} are summarised by table at the end. \
             The complete list is attached to this task{} (as comments if the attachment was refused).",
            attachment
                .map(|a| format!(" as <code>{}</code>", xml(a)))
                .unwrap_or_default()
        );
        html.push_str(&blocks);
        let _ = write!(
            html,
            "<h2>Not listed above: {not_listed} change{}</h2><ul>",
            if not_listed == 1 { "" } else { "s" }
        );
        let mut more_changes = self.rest_more_changes;
        for (i, t) in summary.iter().enumerate() {
            let n: usize = t.counts.values().sum();
            if i >= MAX_SUMMARY_TABLES {
                more_changes += n;
                continue;
            }
            let counts = t
                .counts
                .iter()
                .map(|(c, n)| format!("{n} {}", c.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                html,
                "<li>{}.{} (source {}): {counts}</li>",
                xml(&t.key.1),
                xml(&t.key.2),
                xml(&t.key.0)
            );
        }
        if more_changes > 0 {
            let _ = write!(
                html,
                "<li>and {more_changes} change{} in further tables</li>",
                if more_changes == 1 { "" } else { "s" }
            );
        }
        html.push_str("</ul>");
        let _ = write!(
            html,
            "<hr/><em>{}</em></body>",
            xml(&marker_line(&self.marker))
        );
        let mut task = TaskDraft::new(name, html);
        task.severity = self.top;
        task
    }
}

/// One table's deltas as rich text, with the YAML fix.
fn table_block(rows: &[DeltaRow]) -> String {
    let d0 = &rows[0];
    let mut html = format!(
        "<h2>{}.{} (source {})</h2><ul>",
        xml(&d0.schema_name),
        xml(&d0.table_name),
        xml(&d0.source_name)
    );
    for d in rows {
        html.push_str("<li>");
        html.push_str(&describe(d));
        html.push_str("</li>");
    }
    html.push_str("</ul>");
    let refs: Vec<&DeltaRow> = rows.iter().collect();
    let _ = write!(
        html,
        "<strong>YAML for the sources file</strong>\n<code>{}</code>\n",
        xml(&yaml_fix(&d0.source_name, &d0.table_name, &refs))
    );
    html
}

/// The header of the complete list of deltas, as CSV.
pub const CSV_HEADER: &str =
    "source,schema,table,column,change,contract_type,live_type,detail,first_seen\r\n";

/// One delta as a CSV record (RFC 4180: fields with a comma, quote or line break are quoted,
/// quotes doubled), CRLF-terminated.
pub fn csv_record(d: &DeltaRow) -> String {
    let fields = [
        d.source_name.as_str(),
        d.schema_name.as_str(),
        d.table_name.as_str(),
        d.column_name.as_deref().unwrap_or(""),
        d.change.as_str(),
        d.contract_type.as_deref().unwrap_or(""),
        d.live_type.as_deref().unwrap_or(""),
        d.detail.as_deref().unwrap_or(""),
        d.first_seen_at.as_str(),
    ];
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(f);
        }
    }
    line.push_str("\r\n");
    line
}

/// The task for a check run that could not read its target.
/// `error` is the first line of the run's error only: the whole text (which may name hosts or
/// carry a server's detail) stays in the audit database, where the task points.
pub fn failure_task(target: &str, marker: &str, run_id: i64, error: &str, at: &str) -> TaskDraft {
    let first_line = error.lines().next().unwrap_or("unknown error");
    TaskDraft::new(
        format!("dbt source drift check failing on {}", target_label(target)),
        format!(
            "<body>The drift_watch check of <strong>{}</strong> failed at {} and compared \
             nothing; open drift stays open until a check succeeds.\n<code>{}</code>\n\
             The whole error is in the audit database: \
             <code>SELECT * FROM drift_watch.runs WHERE run_id = {run_id};</code>\n\
             This task is filed once per outage.<hr/><em>{}</em></body>",
            xml(target_label(target)),
            xml(at),
            xml(first_line),
            xml(&marker_line(marker))
        ),
    )
}

/// The comment that closes a failure task once a check of its target succeeds again.
pub fn recovery_comment(target: &str, at: &str) -> String {
    format!(
        "The check of {} succeeds again (run finished {at}): the live schema is being compared \
         with the contract as usual. Drift found meanwhile is filed in its own task. Closing this one.",
        target_label(target)
    )
}

/// `schema.table[.column]: change`, as a plain-text comment lists a delta.
fn change_line(d: &DeltaRow) -> String {
    let column = d.column_name.as_deref().map(|c| format!(".{c}"));
    format!(
        "{}.{}{}: {}",
        d.schema_name,
        d.table_name,
        column.unwrap_or_default(),
        d.change.as_str()
    )
}

/// The comment for deltas resolved since the task was filed: `total` of them, `resolved` the
/// first (at most `MAX_LISTED` are listed).
pub fn resolution_comment(resolved: &[DeltaRow], total: usize, all_resolved: bool) -> String {
    let total = total.max(resolved.len());
    let mut text = format!(
        "{} of the changes in this task {} resolved: the live schema and the dbt contract agree \
         again (the contract was updated or the migration reverted).\n",
        total,
        if total == 1 { "is" } else { "are" }
    );
    for d in resolved {
        let _ = writeln!(text, "- {}", change_line(d));
    }
    if total > resolved.len() {
        let _ = writeln!(text, "- and {} more", total - resolved.len());
    }
    if all_resolved {
        text.push_str("Everything in this task is resolved; closing it.");
    } else {
        text.push_str("Other changes in this task are still open.");
    }
    text
}

/// The week's digest task for a target's info-only runs: found again by its marker.
pub fn digest_task(target: &str, week: &str, marker: &str) -> TaskDraft {
    let mut task = TaskDraft::new(
        format!(
            "[info] dbt source drift digest for {}: week of {week}",
            target_label(target)
        ),
        format!(
            "<body>Added and undocumented columns on <strong>{}</strong> in the week of {}, one \
             comment per check run. They break no dbt model; document them in the sources files \
             when they are wanted.<hr/><em>{}</em></body>",
            xml(target_label(target)),
            xml(week),
            xml(&marker_line(marker))
        ),
    );
    task.severity = Some(Severity::Info);
    task
}

/// One info-only run's changes, as a digest comment.
pub fn digest_comment(rows: &[DeltaRow], total: usize, run_ended: &str) -> String {
    let total = total.max(rows.len());
    let mut text = format!(
        "Check finished {run_ended}: {total} new change{} (info).\n",
        if total == 1 { "" } else { "s" }
    );
    for d in rows {
        let live = d.live_type.as_deref().map(|t| format!(" ({t})"));
        let _ = writeln!(text, "- {}{}", change_line(d), live.unwrap_or_default());
    }
    if total > rows.len() {
        let _ = writeln!(text, "- and {} more", total - rows.len());
    }
    text.trim_end().to_string()
}

/// The Monday (YYYY-MM-DD) of the week holding `date` (which starts with YYYY-MM-DD).
pub fn week_of(date: &str) -> String {
    let parse = |r: std::ops::Range<usize>| date.get(r).and_then(|x| x.parse::<i64>().ok());
    let (Some(y), Some(m), Some(d)) = (parse(0..4), parse(5..7), parse(8..10)) else {
        return date.to_string();
    };
    // Days since 1970-01-01 (civil calendar), and back (H. Hinnant's algorithms).
    let days_from_civil = |y: i64, m: i64, d: i64| {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    };
    let z = days_from_civil(y, m, d);
    let monday = z - (z + 3).rem_euclid(7);
    let z = monday + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The owner line of a task: who it is for, and whether Asana knows them.
pub fn owner_note(owner: &str, known: bool) -> String {
    if known {
        format!(
            "<strong>Owner</strong>: {} (from these sources' dbt meta).",
            xml(owner)
        )
    } else {
        format!(
            "<strong>Owner</strong>: {} (from dbt meta) is not an Asana user in this workspace; \
             the task went to the default assignee.",
            xml(owner)
        )
    }
}

/// `note` as the first line of a task body.
pub fn with_note(html: &str, note: &str) -> String {
    match html.strip_prefix("<body>") {
        Some(rest) => format!("<body>{note}\n{rest}"),
        None => html.to_string(),
    }
}

fn target_label(target: &str) -> &str {
    if target.is_empty() {
        "the audit database"
    } else {
        target
    }
}

/// One delta as rich text: column, change, contract type -> live type, detail, detection time.
fn describe(d: &DeltaRow) -> String {
    let mut s = String::new();
    if let Some(sev) = d.severity {
        let _ = write!(s, "<em>[{}]</em> ", sev.as_str());
    }
    match &d.column_name {
        Some(c) => {
            let _ = write!(
                s,
                "<code>{}</code> <strong>{}</strong>",
                xml(c),
                d.change.as_str()
            );
        }
        None => {
            let _ = write!(s, "<strong>{}</strong>", d.change.as_str());
        }
    }
    match (&d.contract_type, &d.live_type) {
        (Some(c), Some(l)) => {
            let _ = write!(s, ": <code>{}</code> → <code>{}</code>", xml(c), xml(l));
        }
        (None, Some(l)) => {
            let _ = write!(s, ": live <code>{}</code>", xml(l));
        }
        (Some(c), None) => {
            let _ = write!(s, ": contract <code>{}</code>", xml(c));
        }
        (None, None) => {}
    }
    if let Some(detail) = &d.detail {
        let _ = write!(s, " — {}", xml(detail));
    }
    let _ = write!(s, " <em>(detected {})</em>", xml(&d.first_seen_at));
    // What it breaks (an added or undocumented column breaks nothing).
    if let Some(impact) = &d.impact {
        if !matches!(d.change, Change::Added | Change::Undocumented) {
            s.push_str(&impact_list(d, impact));
        }
    }
    s
}

/// Children listed per delta at most; the rest are counted.
const MAX_CHILDREN: usize = 12;

/// What a delta breaks, as a nested list: the direct children (for a column-level change,
/// whether and where each reads the column), the models downstream, the exposures.
fn impact_list(d: &DeltaRow, impact: &Impact) -> String {
    let mut s = String::from("<ul>");
    let column_level = impact.column.is_some();
    if impact.direct.is_empty() {
        s.push_str("<li>No dbt model reads this table.</li>");
    } else if column_level {
        let column = impact.column.as_deref().unwrap_or_default();
        let (reading, other): (Vec<&Child>, Vec<&Child>) =
            impact.direct.iter().partition(|c| c.reads());
        if reading.is_empty() {
            let _ = write!(
                s,
                "<li>Not read by its {} direct child{}: none of their SQL names <code>{}</code>.</li>",
                other.len(),
                if other.len() == 1 { "" } else { "ren" },
                xml(column)
            );
        } else {
            let _ = write!(s, "<li>Read by: ");
            let shown: Vec<String> = reading
                .iter()
                .take(MAX_CHILDREN)
                .map(|c| {
                    let file = c.file.as_deref().unwrap_or("?");
                    let mut at: Vec<String> = c
                        .lines
                        .iter()
                        .flatten()
                        .map(|l| format!("{file}:{l}"))
                        .collect();
                    let mut text = format!("<strong>{}</strong>", xml(&c.name));
                    if !at.is_empty() {
                        at.truncate(5);
                        let _ = write!(text, " (<code>{}</code>)", xml(&at.join(", ")));
                    }
                    if let Some(star) = c.reads_all.as_ref().and_then(|l| l.first()) {
                        let _ = write!(
                            text,
                            " reads every column (<code>select *</code> at <code>{}</code>)",
                            xml(&format!("{file}:{star}"))
                        );
                    }
                    text
                })
                .collect();
            s.push_str(&shown.join("; "));
            if reading.len() > MAX_CHILDREN {
                let _ = write!(s, "; and {} more", reading.len() - MAX_CHILDREN);
            }
            s.push_str("</li>");
            if !other.is_empty() {
                let names: Vec<String> = other
                    .iter()
                    .take(MAX_CHILDREN)
                    .map(|c| xml(&c.name))
                    .collect();
                let _ = write!(
                    s,
                    "<li>Not read by: {}{}</li>",
                    names.join(", "),
                    if other.len() > MAX_CHILDREN {
                        format!(" and {} more", other.len() - MAX_CHILDREN)
                    } else {
                        String::new()
                    }
                );
            }
        }
    } else {
        let names: Vec<String> = impact
            .direct
            .iter()
            .take(MAX_CHILDREN)
            .map(|c| match &c.file {
                Some(f) => format!(
                    "<strong>{}</strong> (<code>{}</code>)",
                    xml(&c.name),
                    xml(f)
                ),
                None => format!("<strong>{}</strong>", xml(&c.name)),
            })
            .collect();
        let _ = write!(
            s,
            "<li>{} by: {}{}</li>",
            if d.change == Change::TableMissing {
                "Breaks its direct children, read"
            } else {
                "Read"
            },
            names.join(", "),
            if impact.direct.len() > MAX_CHILDREN {
                format!(" and {} more", impact.direct.len() - MAX_CHILDREN)
            } else {
                String::new()
            }
        );
    }
    let _ = write!(
        s,
        "<li>{} model{} downstream</li>",
        impact.models,
        if impact.models == 1 { "" } else { "s" }
    );
    if !impact.exposures.is_empty() {
        let shown: Vec<String> = impact
            .exposures
            .iter()
            .take(MAX_CHILDREN)
            .map(|e| {
                let mut t = format!("<strong>{}</strong>", xml(&e.name));
                let mut about = Vec::new();
                if let Some(k) = &e.kind {
                    about.push(xml(k));
                }
                if let Some(o) = e.owner.as_ref().or(e.email.as_ref()) {
                    about.push(format!("owner {}", xml(o)));
                }
                if !about.is_empty() {
                    let _ = write!(t, " ({})", about.join(", "));
                }
                t
            })
            .collect();
        let _ = write!(
            s,
            "<li>Exposures: {}{}</li>",
            shown.join(", "),
            if impact.exposures.len() > MAX_CHILDREN {
                format!(" and {} more", impact.exposures.len() - MAX_CHILDREN)
            } else {
                String::new()
            }
        );
    }
    s.push_str("</ul>");
    s
}

/// The sources-file YAML that brings the contract in line with the live table.
pub fn yaml_fix(source: &str, table: &str, rows: &[&DeltaRow]) -> String {
    let mut y = format!(
        "sources:\n  - name: {}\n    tables:\n      - name: {}\n",
        yaml_scalar(source),
        yaml_scalar(table)
    );
    if rows.iter().any(|d| d.change == Change::TableMissing) {
        y.push_str(
            "        # this relation no longer exists: remove the table, or fix its identifier\n",
        );
        return y;
    }
    y.push_str("        columns:\n");
    for d in rows {
        let column = d.column_name.as_deref().unwrap_or_default();
        let quote = column != column.to_lowercase();
        match d.change {
            Change::Removed => {
                let _ = writeln!(
                    y,
                    "          # remove column {} (dropped)",
                    yaml_scalar(column)
                );
            }
            _ => {
                if d.change == Change::Renamed {
                    if let Some(from) = d.renamed_from.as_deref() {
                        let _ = writeln!(
                            y,
                            "          # renamed from {}: replace that entry",
                            yaml_scalar(from)
                        );
                    }
                }
                let _ = writeln!(y, "          - name: {}", yaml_scalar(column));
                if quote {
                    y.push_str("            quote: true\n");
                }
                if let Some(t) = &d.live_type {
                    let _ = writeln!(y, "            data_type: {}", yaml_scalar(t));
                }
            }
        }
    }
    y
}

/// A YAML scalar: plain when safe, double-quoted (JSON rules) otherwise.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.chars().next().is_some_and(|c| c.is_ascii_digit());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Text for an XML text node: escapes `& < >`, and replaces characters XML 1.0 does not allow,
/// so any identifier renders as valid rich text. (Never used for attribute values.)
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A Markdown cell: pipes, backticks and line breaks would break the table.
fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "\\`")
        .replace(['\n', '\r'], " ")
}

/// `contract check --format markdown`: a pull request comment. `left` and `fixed` rows are
/// (source, table, column, change, contract type, live type, detail).
pub fn gate_markdown(
    target: &str,
    left: &[&[String; 7]],
    fixed: &[&[String; 7]],
    introduced: usize,
    undocumented: usize,
) -> String {
    let mut out = String::new();
    let verdict = if left.is_empty() {
        "✅ no drift".to_string()
    } else {
        format!(
            "❌ {} change{} left",
            left.len(),
            if left.len() == 1 { "" } else { "s" }
        )
    };
    let _ = writeln!(
        out,
        "### drift_watch: {verdict} against `{}` after merging\n",
        md_cell(target)
    );
    let _ = writeln!(
        out,
        "{introduced} introduced by this change · {} fixed by it · {undocumented} undocumented column{} (not drift)\n",
        fixed.len(),
        if undocumented == 1 { "" } else { "s" }
    );
    let table = |out: &mut String, title: &str, rows: &[&[String; 7]]| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "**{title}**\n");
        let _ = writeln!(
            out,
            "| source | table | column | change | contract type | live type | detail |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    };
    table(&mut out, "Left after merging", left);
    table(&mut out, "Fixed by merging", fixed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(
        table: &str,
        column: Option<&str>,
        change: &str,
        c: Option<&str>,
        l: Option<&str>,
    ) -> DeltaRow {
        DeltaRow {
            source_name: "shop".into(),
            schema_name: "public".into(),
            table_name: table.into(),
            column_name: column.map(Into::into),
            change: Change::parse(change).unwrap(),
            contract_type: c.map(Into::into),
            live_type: l.map(Into::into),
            detail: (change == "renamed").then(|| "renamed from phone".into()),
            first_seen_at: "2026-11-24 06:00:01+00".into(),
            renamed_from: (change == "renamed").then(|| "phone".into()),
            severity: None,
            impact: None,
        }
    }

    #[test]
    fn weeks_start_on_monday() {
        assert_eq!(week_of("2026-11-25 06:00 UTC"), "2026-11-23");
        assert_eq!(week_of("2026-11-23"), "2026-11-23");
        assert_eq!(week_of("2026-11-22"), "2026-11-16");
        assert_eq!(week_of("2024-03-01"), "2024-02-26");
        assert_eq!(week_of("2027-01-01"), "2026-12-28");
    }

    #[test]
    fn impact_is_listed_under_each_delta_with_file_and_line() {
        let mut d = delta(
            "customers",
            Some("phone_number"),
            "renamed",
            None,
            Some("text"),
        );
        d.severity = Some(Severity::Breaking);
        d.impact = Some(
            serde_json::from_str(
                r#"{"direct": [{"name": "stg_customers", "type": "model", "file": "models/stg_customers.sql", "lines": [4], "reads_all": []},
                               {"name": "base_customers", "type": "model", "file": "models/base.sql", "lines": [], "reads_all": [2]},
                               {"name": "emails", "type": "model", "file": "models/emails.sql", "lines": [], "reads_all": []}],
                    "models": 5, "exposures": [{"name": "weekly_revenue", "type": "dashboard", "owner": "Carol"}], "column": "phone"}"#,
            )
            .unwrap(),
        );
        let task = new_deltas_task("app", "m1", &[d]);
        assert!(
            task.name.starts_with("[breaking] dbt source drift on app"),
            "{}",
            task.name
        );
        assert_eq!(task.severity, Some(Severity::Breaking));
        let h = &task.html_notes;
        assert!(
            h.contains(
                "Read by: <strong>stg_customers</strong> (<code>models/stg_customers.sql:4</code>)"
            ),
            "{h}"
        );
        assert!(h.contains("<strong>base_customers</strong> reads every column (<code>select *</code> at <code>models/base.sql:2</code>)"), "{h}");
        assert!(h.contains("Not read by: emails"), "{h}");
        assert!(h.contains("5 models downstream"), "{h}");
        assert!(
            h.contains("Exposures: <strong>weekly_revenue</strong> (dashboard, owner Carol)"),
            "{h}"
        );
        let noted = with_note(h, &owner_note("ana@example.com", false));
        assert!(noted.contains("is not an Asana user"));
        assert!(
            noted.starts_with("<body><strong>Owner</strong>: ana@example.com"),
            "{noted}"
        );
        assert!(noted.ends_with("</body>"));
    }

    #[test]
    fn the_title_says_target_count_and_tables() {
        let d = vec![
            delta("users", Some("a"), "added", None, Some("text")),
            delta(
                "orders",
                Some("total"),
                "retyped",
                Some("integer"),
                Some("bigint"),
            ),
        ];
        let t = new_deltas_task("app_replica", "m1", &d);
        // Tables in the order the database gives (most severe first, then by name).
        assert_eq!(
            t.name,
            "dbt source drift on app_replica: 2 changes (users, orders)"
        );
        let many: Vec<_> = (0..5)
            .map(|i| delta(&format!("t{i}"), Some("c"), "added", None, Some("int")))
            .collect();
        assert!(new_deltas_task("x", "m", &many)
            .name
            .ends_with("(t0, t1, t2 +2 more)"));
    }

    #[test]
    fn the_body_escapes_everything_and_carries_the_marker() {
        let d = vec![delta("a<b>&c", Some("x\"<y>"), "added", None, Some("text"))];
        let t = new_deltas_task("srv", "marker-123", &d);
        assert!(t.html_notes.starts_with("<body>") && t.html_notes.ends_with("</body>"));
        assert!(t.html_notes.contains("a&lt;b&gt;&amp;c"));
        assert!(!t.html_notes.contains("<y>"));
        assert!(t.html_notes.contains("drift_watch marker: marker-123"));
        for tag in ["<p>", "<br", "<div", "<span", "<table", "<pre"] {
            assert!(!t.html_notes.contains(tag), "{tag} is not allowed by Asana");
        }
    }

    #[test]
    fn the_yaml_fix_adds_new_columns_with_types_and_renames() {
        let rows = [
            delta(
                "users",
                Some("phone_number"),
                "renamed",
                Some("text"),
                Some("text"),
            ),
            delta(
                "users",
                Some("Carrier"),
                "added",
                None,
                Some("character varying(32)"),
            ),
            delta("users", Some("body"), "removed", Some("text"), None),
        ];
        let refs: Vec<&DeltaRow> = rows.iter().collect();
        let y = yaml_fix("shop", "users", &refs);
        assert!(
            y.contains("# renamed from phone: replace that entry\n          - name: phone_number")
        );
        assert!(y.contains("- name: Carrier\n            quote: true\n            data_type: \"character varying(32)\""));
        assert!(y.contains("# remove column body"));
        // The fix is itself valid YAML.
        let parsed: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(
            parsed["sources"][0]["tables"][0]["columns"][1]["name"],
            "Carrier"
        );
    }

    #[test]
    fn resolution_comments_say_whether_everything_is_resolved() {
        let d = vec![delta("users", Some("a"), "added", None, Some("text"))];
        assert!(resolution_comment(&d, 1, true).ends_with("closing it."));
        assert!(resolution_comment(&d, 1, false).contains("still open"));
        let many = resolution_comment(&d, 20_000, true);
        assert!(many.starts_with("20000 of the changes") && many.contains("- and 19999 more"));
    }

    #[test]
    fn gate_markdown_is_one_table_per_kind_with_cells_escaped() {
        let row = |c: &str, ch: &str| -> [String; 7] {
            [
                "shop".into(),
                "public.orders".into(),
                c.into(),
                ch.into(),
                "text".into(),
                "".into(),
                "a | b `x`".into(),
            ]
        };
        let left = [row("total", "removed")];
        let fixed = [row("phone", "renamed"), row("x", "added")];
        let md = gate_markdown(
            "app_replica",
            &left.iter().collect::<Vec<_>>(),
            &fixed.iter().collect::<Vec<_>>(),
            1,
            3,
        );
        assert!(
            md.starts_with("### drift_watch: ❌ 1 change left against `app_replica`"),
            "{md}"
        );
        assert!(md.contains("1 introduced by this change · 2 fixed by it · 3 undocumented columns"));
        assert!(
            md.contains("| shop | public.orders | total | removed | text |  | a \\| b \\`x\\` |"),
            "{md}"
        );
        assert_eq!(md.matches("|---|---|---|---|---|---|---|").count(), 2);
        let clean = gate_markdown("app_replica", &[], &[], 0, 0);
        assert!(clean.contains("✅ no drift"));
        assert!(!clean.contains("|---"));
    }
}
