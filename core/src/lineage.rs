//! What a source change breaks downstream: the dbt graph below each source table, and whether a
//! model's SQL reads a given column.
//!
//! Lineage comes from two places. A `manifest.json` holds the whole graph (`depends_on` of every
//! node and exposure); only the part below the contract's sources is kept, with SQL only for
//! the direct children of a source (the only SQL a column-level question needs). A pushed YAML
//! project holds model `.sql` files (their `{{ source() }}` and `{{ ref() }}` calls are the
//! edges) and `exposures:` in properties files.
//!
//! [`column_references`] answers "does this SQL read that column": identifier-aware (word
//! boundaries, `"quoted"` names exact, unquoted names case-insensitive as both Postgres and
//! Snowflake fold them), outside comments, string literals and Jinja, with `select *` /
//! `t.*` / `dbt_utils.star()` noted as reading every column.

use std::fmt;

/// How much a change matters, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Removed, renamed, retyped or missing, and read downstream or feeding an exposure.
    Breaking,
    /// The same kinds, but nothing downstream is known to read it.
    Risky,
    /// Added or undocumented columns.
    Info,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Breaking, Severity::Risky, Severity::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Breaking => "breaking",
            Severity::Risky => "risky",
            Severity::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The dbt graph a document contributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    pub nodes: Vec<LineageNode>,
    pub edges: Vec<LineageEdge>,
}

impl Lineage {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.edges.is_empty()
    }
}

/// A model, snapshot or exposure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineageNode {
    /// dbt's `unique_id` (`model.<package>.<name>`, `exposure.<package>.<name>`).
    pub unique_id: String,
    /// `model`, `snapshot` or `exposure`.
    pub resource_type: String,
    pub name: String,
    /// The file in the dbt project (`original_file_path`).
    pub file_path: Option<String>,
    /// The node's SQL: compiled when the manifest has it, raw otherwise. Kept only for the
    /// direct children of a source.
    pub code: Option<String>,
    pub compiled: bool,
    /// Exposures: `type` (dashboard, notebook, application, ...), `url` and `owner`.
    pub exposure_type: Option<String>,
    pub url: Option<String>,
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
}

/// What a node reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parent {
    /// `source('source_name', 'table_name')`.
    Source {
        source_name: String,
        table_name: String,
    },
    /// Another node, by `unique_id`.
    Node(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineageEdge {
    pub parent: Parent,
    pub child: String,
}

/// The dbt package a pushed document belongs to: the first part of its origin
/// (`<project>/models/...`, as `drift-notifier contract push` names documents), or "" without one.
pub fn project_of(origin: &str) -> &str {
    origin.split_once('/').map_or("", |(p, _)| p)
}

/// A model `.sql` file of a pushed project: the model (named after the file, as dbt names it)
/// and an edge for every `source()` / `ref()` call in its Jinja.
pub fn model_document(origin: &str, code: &str) -> Lineage {
    let project = project_of(origin);
    let file_path = origin
        .strip_prefix(project)
        .map_or(origin, |p| p.trim_start_matches('/'));
    let stem = file_path
        .rsplit('/')
        .next()
        .unwrap_or(file_path)
        .trim_end_matches(".sql");
    let unique_id = format!("model.{project}.{stem}");
    let mut edges: Vec<LineageEdge> = jinja_calls(code)
        .into_iter()
        .filter_map(|call| {
            Some(LineageEdge {
                parent: call.parent(project)?,
                child: unique_id.clone(),
            })
        })
        .collect();
    edges.sort();
    edges.dedup();
    Lineage {
        nodes: vec![LineageNode {
            unique_id,
            resource_type: "model".into(),
            name: stem.to_string(),
            file_path: Some(file_path.to_string()),
            code: Some(code.to_string()),
            compiled: false,
            ..Default::default()
        }],
        edges,
    }
}

/// A `source(...)` or `ref(...)` call with string arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JinjaCall {
    pub function: &'static str,
    pub args: Vec<String>,
}

impl JinjaCall {
    /// The node this call reads, inside package `project`.
    pub fn parent(&self, project: &str) -> Option<Parent> {
        match (self.function, self.args.as_slice()) {
            ("source", [s, t]) => Some(Parent::Source {
                source_name: s.clone(),
                table_name: t.clone(),
            }),
            ("ref", [m]) => Some(Parent::Node(format!("model.{project}.{m}"))),
            ("ref", [p, m]) => Some(Parent::Node(format!("model.{p}.{m}"))),
            _ => None,
        }
    }
}

/// Every `source('s', 't')` and `ref('m')` / `ref('pkg', 'm')` inside `{{ }}` or `{% %}` in
/// `text` (keyword arguments such as `v=2` are skipped).
pub fn jinja_calls(text: &str) -> Vec<JinjaCall> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open + 1..];
        let close = match after.as_bytes().first() {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        calls_in(&body[..end], &mut out);
        rest = &body[(end + close.len()).min(body.len())..];
    }
    out
}

/// Also used on exposures' `depends_on` entries (`"ref('m')"`), which are bare expressions.
pub fn calls_in(expr: &str, out: &mut Vec<JinjaCall>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident_start(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident_byte(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let preceded_by_dot = start > 0 && bytes[start - 1] == b'.';
        let function = match word {
            "source" if !preceded_by_dot => "source",
            "ref" if !preceded_by_dot => "ref",
            _ => continue,
        };
        let mut j = i;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'(') {
            continue;
        }
        if let Some((args, end)) = string_args(expr, j + 1) {
            out.push(JinjaCall { function, args });
            i = end;
        }
    }
}

/// Positional string-literal arguments from `from` (just after `(`) to the closing `)`;
/// `name=value` keyword arguments are skipped. `None` if an argument is not a literal.
fn string_args(expr: &str, from: usize) -> Option<(Vec<String>, usize)> {
    let bytes = expr.as_bytes();
    let mut i = from;
    let mut args = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        match *bytes.get(i)? {
            b')' => return Some((args, i + 1)),
            b',' => i += 1,
            q @ (b'\'' | b'"') => {
                let close = expr[i + 1..].find(q as char)? + i + 1;
                args.push(expr[i + 1..close].to_string());
                i = close + 1;
            }
            c if is_ident_start(c) => {
                // `v=2`, `version=2`, `package='p'`: skip to the next `,` or `)`.
                while i < bytes.len() && !matches!(bytes[i], b',' | b')') {
                    i += 1;
                }
            }
            _ => return None,
        }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Where a SQL text reads a column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnReferences {
    /// Lines (from 1) that name the column.
    pub lines: Vec<u32>,
    /// Lines with a `select *`, `t.*` or `star()`: they read every column.
    pub star_lines: Vec<u32>,
}

impl ColumnReferences {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.star_lines.is_empty()
    }
}

/// Where `code` names `column` (as Postgres stores it) or reads every column. Comments,
/// string literals and Jinja (`{{ }}`, `{% %}`, `{# #}`) are skipped, except that a
/// `star(...)` macro call in Jinja counts as reading every column.
pub fn column_references(code: &str, column: &str) -> ColumnReferences {
    let mut out = ColumnReferences::default();
    let bytes = code.as_bytes();
    let mut line: u32 = 1;
    let mut i = 0;
    // The previous significant token, for `*`: `select`/`distinct`/`,` before it, or `.`.
    #[derive(PartialEq)]
    enum Prev {
        Other,
        SelectLike,
        Comma,
        Dot,
    }
    let mut prev = Prev::Other;
    let push = |v: &mut Vec<u32>, line: u32| {
        if v.last() != Some(&line) {
            v.push(line);
        }
    };
    let count_lines = |s: &[u8]| s.iter().filter(|&&b| b == b'\n').count() as u32;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = find(bytes, i + 2, b"*/").map_or(bytes.len(), |e| e + 2);
                line += count_lines(&bytes[i..end]);
                i = end;
            }
            b'{' if matches!(bytes.get(i + 1), Some(b'{' | b'%' | b'#')) => {
                let close: &[u8] = match bytes[i + 1] {
                    b'{' => b"}}",
                    b'%' => b"%}",
                    _ => b"#}",
                };
                let end = find(bytes, i + 2, close).map_or(bytes.len(), |e| e + 2);
                let inner = &code[i + 2..end.saturating_sub(2).max(i + 2)];
                if bytes[i + 1] == b'{' && contains_star_macro(inner) {
                    push(&mut out.star_lines, line);
                }
                line += count_lines(&bytes[i..end]);
                prev = Prev::Other;
                i = end;
            }
            b'\'' => {
                // '...' with '' as an escaped quote.
                let mut j = i + 1;
                while j < bytes.len() {
                    if bytes[j] == b'\'' {
                        if bytes.get(j + 1) == Some(&b'\'') {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                let end = (j + 1).min(bytes.len());
                line += count_lines(&bytes[i..end]);
                prev = Prev::Other;
                i = end;
            }
            b'"' | b'`' => {
                let q = b;
                let mut name: Vec<u8> = Vec::new();
                let mut j = i + 1;
                while j < bytes.len() {
                    if bytes[j] == q {
                        if bytes.get(j + 1) == Some(&q) {
                            name.push(q);
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    name.push(bytes[j]);
                    j += 1;
                }
                let end = (j + 1).min(bytes.len());
                if name == column.as_bytes() {
                    push(&mut out.lines, line);
                }
                line += count_lines(&bytes[i..end]);
                prev = Prev::Other;
                i = end;
            }
            b'*' => {
                if matches!(prev, Prev::SelectLike | Prev::Comma | Prev::Dot) {
                    push(&mut out.star_lines, line);
                }
                prev = Prev::Other;
                i += 1;
            }
            b',' => {
                prev = Prev::Comma;
                i += 1;
            }
            b'.' => {
                prev = Prev::Dot;
                i += 1;
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < bytes.len() && is_ident_byte(bytes[i]) {
                    i += 1;
                }
                let word = &code[start..i];
                if word.eq_ignore_ascii_case(column) {
                    push(&mut out.lines, line);
                }
                prev = if word.eq_ignore_ascii_case("select")
                    || word.eq_ignore_ascii_case("distinct")
                {
                    Prev::SelectLike
                } else {
                    Prev::Other
                };
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                prev = Prev::Other;
                i += 1;
            }
        }
    }
    out
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// `dbt_utils.star(...)` or a bare `star(...)` in a Jinja expression.
fn contains_star_macro(inner: &str) -> bool {
    let bytes = inner.as_bytes();
    let mut at = 0;
    while let Some(p) = inner[at..].find("star") {
        let s = at + p;
        let before_ok = s == 0 || !is_ident_byte(bytes[s - 1]);
        let rest = inner[s + 4..].trim_start();
        if before_ok && rest.starts_with('(') {
            return true;
        }
        at = s + 4;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_ref_calls_are_found_in_jinja_only() {
        let sql = "-- {{ source('not', 'this') }} is still Jinja\n\
                   with a as (select * from {{ source('shop', 'customers') }}),\n\
                   b as (select * from {{ ref(\"stg_orders\") }} join {{ ref('pkg', 'm', v=2) }})\n\
                   {% set x = source( 'pay' , \"payments\" ) %}\n\
                   select 'source(''a'',''b'')' from a";
        let calls = jinja_calls(sql);
        let shown: Vec<String> = calls
            .iter()
            .map(|c| format!("{}:{}", c.function, c.args.join("/")))
            .collect();
        assert_eq!(
            shown,
            [
                "source:not/this",
                "source:shop/customers",
                "ref:stg_orders",
                "ref:pkg/m",
                "source:pay/payments"
            ]
        );
        assert_eq!(
            calls[2].parent("proj"),
            Some(Parent::Node("model.proj.stg_orders".into()))
        );
        assert_eq!(
            calls[3].parent("proj"),
            Some(Parent::Node("model.pkg.m".into()))
        );
    }

    #[test]
    fn a_model_document_is_named_after_its_file() {
        let l = model_document(
            "shop_analytics/models/staging/stg_customers.sql",
            "select id from {{ source('shop', 'customers') }} join {{ ref('x') }}",
        );
        assert_eq!(l.nodes[0].unique_id, "model.shop_analytics.stg_customers");
        assert_eq!(
            l.nodes[0].file_path.as_deref(),
            Some("models/staging/stg_customers.sql")
        );
        assert_eq!(l.edges.len(), 2);
        assert!(l.edges.contains(&LineageEdge {
            parent: Parent::Source {
                source_name: "shop".into(),
                table_name: "customers".into()
            },
            child: "model.shop_analytics.stg_customers".into()
        }));
    }

    #[test]
    fn column_references_respect_words_quotes_comments_and_strings() {
        let sql = "select\n  id,\n  phone_number, -- phone is gone\n  \"phone\" as p2,\n  'phone' as lit,\n  c.Phone\nfrom {{ source('shop','customers') }} c /* phone\n */ where x = 1";
        let r = column_references(sql, "phone");
        assert_eq!(r.lines, vec![4, 6]);
        assert!(r.star_lines.is_empty());
        // A quoted name is exact.
        assert_eq!(
            column_references("select \"Phone\" from t", "phone").lines,
            Vec::<u32>::new()
        );
        assert_eq!(
            column_references("select \"Phone\" from t", "Phone").lines,
            vec![1]
        );
        assert_eq!(
            column_references("select \"a\"\"b\" from t", "a\"b").lines,
            vec![1]
        );
    }

    #[test]
    fn stars_are_noted_but_not_multiplication_or_count() {
        let star = |s: &str| column_references(s, "zzz").star_lines;
        assert_eq!(star("select * from t"), vec![1]);
        assert_eq!(star("SELECT DISTINCT *\nfrom t"), vec![1]);
        assert_eq!(star("select a,\n t.* from t"), vec![2]);
        assert_eq!(star("select count(*), a * b from t"), Vec::<u32>::new());
        assert_eq!(
            star("select\n{{ dbt_utils.star(from=source('a','b'), except=['x']) }}\nfrom t"),
            vec![2]
        );
        assert_eq!(
            star("select {{ starts_with('x') }} from t"),
            Vec::<u32>::new()
        );
    }
}
