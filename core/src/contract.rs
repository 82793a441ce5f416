//! The dbt source contract: parsing a dbt properties file or a compiled `manifest.json`.
//!
//! dbt's rules (see `shared/reference/dbt-sources.md`): a source's `schema` defaults to its
//! `name`; a table's `identifier` overrides its `name`; `config: {enabled: false}` (or the older
//! top-level `enabled: false`) removes a source or table; keys other than `sources:` and unknown
//! keys anywhere are ignored.
//!
//! Names are resolved exactly as dbt-postgres renders `source('s', 't')`: the schema and the
//! identifier are quoted (kept exactly) unless `quoting: {schema: false}` / `{identifier: false}`
//! on the table, or else the source, folds them (`quoting` under `config:` counts too, and wins);
//! in a manifest, a `null` in the node's `quoting` is that default. Columns fold as Postgres folds
//! unquoted identifiers unless the column has `quote: true`. Everything is cut at 63 bytes.
//!
//! drift_watch's own policy comes from `meta: {drift_watch: ...}` (see `policy`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_saphyr::Spanned;

use crate::diff::Change;
use crate::lineage::{self, Lineage, LineageEdge, LineageNode, Parent, Severity};
use crate::{ident, jinja};

mod policy;
use policy::{Level, YamlMeta};

/// A dbt properties file is a few hundred kilobytes in real projects; anything this large is a
/// mistake (or an attack) and is refused before parsing.
pub const MAX_YAML_BYTES: usize = 16 * 1024 * 1024;

/// Which kind of document a contract came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Yaml,
    Manifest,
    /// A model's `.sql` file: lineage only.
    Model,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Yaml => "yaml",
            DocumentKind::Manifest => "manifest",
            DocumentKind::Model => "model",
        }
    }
}

/// Everything one document contributes to the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    pub kind: DocumentKind,
    pub tables: Vec<ContractTable>,
    /// The dbt graph below the sources, as far as this document knows it.
    pub lineage: Lineage,
}

/// What a table's undocumented live columns (live, not in the contract) produce: dbt `meta:
/// {drift_watch: {undocumented: ...}}` on a source or table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Undocumented {
    /// Columns present when the table was first checked are `undocumented` (quiet); columns that
    /// appear later are `added`.
    #[default]
    Baseline,
    /// Every undocumented column is `added` (drift_watch's behaviour before policies).
    Alert,
    /// Columns present at the first check produce nothing; later arrivals are still `added`.
    Ignore,
}

impl Undocumented {
    pub const ALL: [Undocumented; 3] = [
        Undocumented::Baseline,
        Undocumented::Alert,
        Undocumented::Ignore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Undocumented::Baseline => "baseline",
            Undocumented::Alert => "alert",
            Undocumented::Ignore => "ignore",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

impl fmt::Display for Undocumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of change kinds (one bit per [`Change`]): what a `drift_watch` `ignore:` drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChangeSet(u8);

impl ChangeSet {
    pub const EMPTY: ChangeSet = ChangeSet(0);
    pub const ALL: ChangeSet = ChangeSet((1 << Change::ALL.len()) - 1);

    const fn bit(c: Change) -> u8 {
        1 << (c as u8)
    }

    pub fn contains(self, c: Change) -> bool {
        self.0 & Self::bit(c) != 0
    }

    pub fn insert(&mut self, c: Change) {
        self.0 |= Self::bit(c);
    }

    pub fn union(self, o: ChangeSet) -> ChangeSet {
        ChangeSet(self.0 | o.0)
    }

    pub fn intersection(self, o: ChangeSet) -> ChangeSet {
        ChangeSet(self.0 & o.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in the order of [`Change::ALL`] (`added` first).
    pub fn names(self) -> Vec<&'static str> {
        Change::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(Change::as_str)
            .collect()
    }

    /// The set of the named kinds; `Err` says which name is not a change kind.
    pub fn from_names<'a>(it: impl IntoIterator<Item = &'a str>) -> Result<ChangeSet, String> {
        let mut set = ChangeSet::EMPTY;
        for name in it {
            match Change::parse(name) {
                Some(c) => set.insert(c),
                None => return Err(unknown_change_kind(name)),
            }
        }
        Ok(set)
    }
}

impl FromIterator<Change> for ChangeSet {
    fn from_iter<I: IntoIterator<Item = Change>>(iter: I) -> Self {
        let mut set = ChangeSet::EMPTY;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

fn unknown_change_kind(name: &str) -> String {
    format!(
        "unknown change kind {} (expected {})",
        show(name),
        Change::ALL.map(Change::as_str).join(", ")
    )
}

/// A string quoted for a message, control characters escaped.
fn show(text: &str) -> String {
    format!("{:?}", text)
}

/// A table's drift_watch policy, source and table levels already merged (the table's
/// `undocumented` over the source's; `ignore` the union of both).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePolicy {
    pub undocumented: Undocumented,
    pub ignore: ChangeSet,
    /// `severity:` fixes every change's severity on this table.
    pub severity: Option<Severity>,
    /// Who owns the table: `drift_watch: {owner: ...}`, else the owner meta key (`owner`),
    /// the table's over the source's. An email or an Asana user gid.
    pub owner: Option<String>,
    /// `drift_watch: {target: ...}`: the foreign server whose check covers this table (SQL
    /// `map_sources` overrides), and `live_schema`: the schema it is read in there.
    pub target: Option<String>,
    pub live_schema: Option<String>,
}

/// One enabled source table, with names already resolved to what Postgres stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractTable {
    pub source_name: String,
    /// The dbt table name (`source('src', '<this>')`).
    pub table_name: String,
    pub database: Option<String>,
    /// The schema as Postgres stores it.
    pub schema: String,
    /// The relation name as Postgres stores it.
    pub identifier: String,
    /// Whether dbt quotes the schema (`quoting: {schema: ...}`, true by default): when false,
    /// `schema` is folded. Only explains a case-only mismatch; `schema` is what counts.
    pub schema_quoted: bool,
    /// Whether dbt quotes the identifier (`quoting: {identifier: ...}`, true by default).
    pub identifier_quoted: bool,
    /// Empty when the table lists no columns: then only its existence is checked.
    pub columns: Vec<ContractColumn>,
    /// `meta: {drift_watch: ...}` of the source and the table, merged.
    pub policy: TablePolicy,
}

/// One documented column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractColumn {
    /// The column name as Postgres stores it (shared: a contract repeats names across tables,
    /// and a live column of the same name reuses it).
    pub name: Arc<str>,
    /// `data_type` exactly as written; canonicalised later by the server's type parser.
    pub data_type: Option<Arc<str>>,
    pub quoted: bool,
    /// The column's own `drift_watch` `ignore:` (the diff adds the table's).
    pub ignore: ChangeSet,
}

/// A document that cannot become a contract, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ContractError {
    pub origin: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl ContractError {
    fn new(
        origin: &str,
        line: Option<u64>,
        column: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        // SECURITY: messages quote document text (Jinja expressions, parser diagnostics); no
        // control character may reach a log line or a client through them.
        let message = message.into();
        let message = match ident::escape_control_characters(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(escaped) => escaped,
        };
        Self {
            origin: origin.to_string(),
            line,
            column,
            message,
        }
    }
}

/// Refuses an origin (the caller's name for the document, usually its file path) that contains
/// a control character (U+0000–U+001F, U+007F, U+0080–U+009F). [`parse_document`] calls it first;
/// callers that take an origin without a document (forgetting one) call it themselves. The
/// error's `origin` is the given origin with its control characters escaped (`\u{0}`).
pub fn check_origin(origin: &str) -> Result<(), ContractError> {
    match ident::find_control_character(origin) {
        None => Ok(()),
        Some(c) => Err(ContractError::new(
            &ident::escape_control_characters(origin),
            None,
            None,
            format!(
                "the origin contains a control character ({}); an origin (the document's file \
                 path) may not contain control characters",
                code_point(c)
            ),
        )),
    }
}

/// Refuses a name, identifier or type spelling with a control character in it, at the
/// position of the value that carries it. `what` says which value it is ("column name").
fn check_value(
    origin: &str,
    what: &str,
    value: &str,
    line: Option<u64>,
    column: Option<u64>,
) -> Result<(), ContractError> {
    match ident::find_control_character(value) {
        None => Ok(()),
        Some(c) => Err(ContractError::new(
            origin,
            line,
            column,
            format!(
                "{what} contains a control character ({}); names, identifiers and data types \
                 may not contain control characters",
                code_point(c)
            ),
        )),
    }
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Parses one document. A JSON object with dbt's `metadata` or `nodes` keys is a manifest;
/// anything else is a dbt YAML properties file.
///
/// Every name the contract stores (source, table, schema, database, identifier, column) and
/// every `data_type` is refused if it holds a control character, after Jinja defaults are
/// resolved and JSON/YAML escapes decoded; so is an origin holding one ([`check_origin`]).
pub fn parse_document(origin: &str, document: &str) -> Result<Contract, ContractError> {
    parse_document_with(origin, document, &ParseOptions::default())
}

/// How documents are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// The `meta` key that names a source's or table's owner.
    pub owner_key: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            owner_key: "owner".into(),
        }
    }
}

/// [`parse_document`] with options. An origin ending in `.sql` is a model file of a pushed
/// project: it contributes lineage only.
pub fn parse_document_with(
    origin: &str,
    document: &str,
    options: &ParseOptions,
) -> Result<Contract, ContractError> {
    check_origin(origin)?;
    if origin.ends_with(".sql") {
        return parse_model(origin, document);
    }
    policy::with_owner_key(&options.owner_key, || parse_any(origin, document))
}

/// Refuses a document over `MAX_YAML_BYTES` before parsing it.
fn check_size(origin: &str, document: &str, what: &str, kind: &str) -> Result<(), ContractError> {
    if document.len() <= MAX_YAML_BYTES {
        return Ok(());
    }
    Err(ContractError::new(
        origin,
        None,
        None,
        format!(
            "{what} is {} bytes; {kind} is limited to {} bytes",
            document.len(),
            MAX_YAML_BYTES
        ),
    ))
}

fn parse_model(origin: &str, document: &str) -> Result<Contract, ContractError> {
    check_size(origin, document, "model file", "a model")?;
    if let Some(at) = document.find('\0') {
        let (line, column) = byte_location(document, at);
        return Err(ContractError::new(
            origin,
            Some(line),
            Some(column),
            "model SQL holds a NUL byte",
        ));
    }
    Ok(Contract {
        kind: DocumentKind::Model,
        tables: Vec::new(),
        lineage: lineage::model_document(origin, document),
    })
}

fn parse_any(origin: &str, document: &str) -> Result<Contract, ContractError> {
    let trimmed = document.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('{') {
        if let Some(contract) = parse_manifest(origin, document)? {
            return Ok(contract);
        }
    }
    parse_yaml(origin, document)
}

// ---------------------------------------------------------------------------------------------
// YAML properties files

#[derive(Deserialize)]
struct YamlFile {
    #[serde(default)]
    sources: Option<Vec<YamlSource>>,
    #[serde(default)]
    exposures: Option<Vec<YamlExposure>>,
}

/// An exposure (a dashboard, notebook or application that reads models).
#[derive(Deserialize)]
struct YamlExposure {
    name: Spanned<String>,
    #[serde(default, rename = "type")]
    exposure_type: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    owner: Option<ExposureOwner>,
    #[serde(default)]
    depends_on: Option<Vec<String>>,
    #[serde(default)]
    config: Option<Config>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
struct ExposureOwner {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct YamlSource {
    name: Spanned<String>,
    #[serde(default)]
    database: Option<Spanned<String>>,
    #[serde(default)]
    schema: Option<Spanned<String>>,
    #[serde(default)]
    quoting: Option<Quoting>,
    #[serde(default)]
    config: Option<Config>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    meta: Option<YamlMeta>,
    #[serde(default)]
    tables: Option<Vec<YamlTable>>,
}

#[derive(Deserialize)]
struct YamlTable {
    name: Spanned<String>,
    #[serde(default)]
    identifier: Option<Spanned<String>>,
    #[serde(default)]
    quoting: Option<Quoting>,
    #[serde(default)]
    config: Option<Config>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    meta: Option<YamlMeta>,
    #[serde(default)]
    columns: Option<Vec<YamlColumn>>,
}

#[derive(Deserialize)]
struct YamlColumn {
    name: Spanned<String>,
    #[serde(default)]
    data_type: Option<Spanned<String>>,
    #[serde(default)]
    quote: Option<bool>,
    #[serde(default)]
    meta: Option<YamlMeta>,
    #[serde(default)]
    config: Option<ColumnConfig>,
}

/// `quoting:` of a source or table. dbt-postgres quotes schema and identifier unless told not to
/// (dbt-adapters `Policy()` is all true, `PostgresRelation` keeps it, and since dbt 1.8 the
/// project-level `quoting:` does not reach sources). A `column` key exists in dbt's `Quoting`
/// but does not decide how a source column is spelled: that is the column's own `quote`.
#[derive(Deserialize, Default, Clone, Copy)]
struct Quoting {
    #[serde(default)]
    schema: Option<bool>,
    #[serde(default)]
    identifier: Option<bool>,
}

impl Quoting {
    /// `self` with each part `over` sets replaced.
    fn overridden_by(self, over: Option<Quoting>) -> Quoting {
        let over = over.unwrap_or_default();
        Quoting {
            schema: over.schema.or(self.schema),
            identifier: over.identifier.or(self.identifier),
        }
    }

    fn schema(self) -> bool {
        self.schema.unwrap_or(true)
    }

    fn identifier(self) -> bool {
        self.identifier.unwrap_or(true)
    }
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    enabled: Option<bool>,
    /// Newer dbt accepts `quoting` under `config:` too; it wins over the top-level one.
    #[serde(default)]
    quoting: Option<Quoting>,
    #[serde(default)]
    meta: Option<YamlMeta>,
}

#[derive(Deserialize, Default)]
struct ColumnConfig {
    #[serde(default)]
    meta: Option<YamlMeta>,
}

fn enabled(config: Option<bool>, legacy: Option<bool>) -> bool {
    config.or(legacy).unwrap_or(true)
}

fn parse_yaml(origin: &str, document: &str) -> Result<Contract, ContractError> {
    check_size(origin, document, "document", "a dbt properties file")?;
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let file: YamlFile = serde_saphyr::from_str_with_options(document, options).map_err(|e| {
        let location = e.location();
        ContractError::new(
            origin,
            location.map(|l| l.line()),
            location.map(|l| l.column()),
            format!(
                "not a valid dbt properties file: {}",
                yaml_message(&e.to_string())
            ),
        )
    })?;

    let mut builder = Builder::new(origin);
    for source in file.sources.unwrap_or_default() {
        let mut source_config = source.config.unwrap_or_default();
        if !enabled(source_config.enabled, source.enabled) {
            continue;
        }
        let source_name = render_name(origin, "sources[].name", "source name", &source.name)?;
        let schema_raw = match &source.schema {
            Some(s) => render_name(
                origin,
                &format!("sources[{source_name}].schema"),
                "schema",
                s,
            )?,
            None => source_name.clone(),
        };
        // The database is only recorded (the target decides where the tables are read), so a
        // template only a dbt run can resolve is kept as written instead of failing the load.
        let database = match &source.database {
            Some(d) => {
                let rendered = jinja::render(&d.value).unwrap_or_else(|_| d.value.clone());
                check_spanned(origin, "database", &rendered, d)?;
                Some(rendered)
            }
            None => None,
        };
        let source_quoting = source
            .quoting
            .unwrap_or_default()
            .overridden_by(source_config.quoting);
        let source_policy = policy::yaml_part(
            origin,
            source.meta,
            source_config.meta.take(),
            Level::Source,
        )?;
        for table in source.tables.unwrap_or_default() {
            let mut table_config = table.config.unwrap_or_default();
            if !enabled(table_config.enabled, table.enabled) {
                continue;
            }
            let key = format!("sources[{source_name}].tables[].name");
            let table_name = render_name(origin, &key, "table name", &table.name)?;
            let key = format!("sources[{source_name}].tables[{table_name}]");
            let identifier_raw = match &table.identifier {
                Some(i) => render_name(origin, &format!("{key}.identifier"), "identifier", i)?,
                None => table_name.clone(),
            };
            let quoting = source_quoting
                .overridden_by(table.quoting)
                .overridden_by(table_config.quoting);
            let table_policy =
                policy::yaml_part(origin, table.meta, table_config.meta.take(), Level::Table)?;
            let mut columns = Vec::new();
            for column in table.columns.unwrap_or_default() {
                let raw = render_name(
                    origin,
                    &format!("{key}.columns[].name"),
                    "column name",
                    &column.name,
                )?;
                let quoted = column.quote.unwrap_or(false);
                let data_type = match &column.data_type {
                    Some(t) => {
                        // Checked before the surrounding whitespace is trimmed: `trim` would
                        // silently drop a trailing tab, line break or U+001C–U+001F.
                        let rendered = render_name(
                            origin,
                            &format!("{key}.columns[{raw}].data_type"),
                            "data_type",
                            t,
                        )?;
                        non_blank(rendered)
                    }
                    None => None,
                };
                let ignore = policy::yaml_part(
                    origin,
                    column.meta,
                    column.config.and_then(|c| c.meta),
                    Level::Column,
                )?
                .ignore();
                columns.push(ContractColumn {
                    name: ident::resolve(&raw, quoted).into(),
                    data_type: data_type.map(Arc::from),
                    quoted,
                    ignore,
                });
            }
            builder.push(
                ContractTable {
                    source_name: source_name.clone(),
                    table_name: table_name.clone(),
                    database: database.clone(),
                    schema: ident::resolve(&schema_raw, quoting.schema()),
                    identifier: ident::resolve(&identifier_raw, quoting.identifier()),
                    schema_quoted: quoting.schema(),
                    identifier_quoted: quoting.identifier(),
                    columns: dedupe_columns(columns),
                    policy: policy::table_policy(source_policy.clone(), table_policy),
                },
                Some(table.name.referenced.line()),
            )?;
        }
    }
    let mut lineage = Lineage::default();
    let project = lineage::project_of(origin);
    for exposure in file.exposures.unwrap_or_default() {
        let config = exposure.config.unwrap_or_default();
        if !enabled(config.enabled, exposure.enabled) {
            continue;
        }
        let line = Some(exposure.name.referenced.line());
        let name = exposure.name.value.clone();
        let unique_id = format!("exposure.{project}.{name}");
        let owner = exposure.owner.unwrap_or_default();
        let node = LineageNode {
            unique_id: unique_id.clone(),
            resource_type: "exposure".into(),
            name,
            file_path: Some(
                origin
                    .strip_prefix(project)
                    .unwrap_or(origin)
                    .trim_start_matches('/')
                    .to_string(),
            ),
            exposure_type: exposure.exposure_type,
            url: exposure.url,
            owner_name: owner.name,
            owner_email: owner.email,
            ..Default::default()
        };
        check_node(origin, &node, line)?;
        let mut calls = Vec::new();
        for expr in exposure.depends_on.unwrap_or_default() {
            lineage::calls_in(&expr, &mut calls);
        }
        for call in calls {
            if let Some(parent) = call.parent(project) {
                lineage.edges.push(LineageEdge {
                    parent,
                    child: unique_id.clone(),
                });
            }
        }
        lineage.nodes.push(node);
    }
    Ok(Contract {
        kind: DocumentKind::Yaml,
        tables: builder.tables,
        lineage,
    })
}

/// Refuses a lineage node whose names hold a control character: they reach tasks and logs.
fn check_node(origin: &str, node: &LineageNode, line: Option<u64>) -> Result<(), ContractError> {
    let fields = [
        ("node id", Some(&node.unique_id)),
        ("node name", Some(&node.name)),
        ("file path", node.file_path.as_ref()),
        ("exposure type", node.exposure_type.as_ref()),
        ("exposure url", node.url.as_ref()),
        ("owner name", node.owner_name.as_ref()),
        ("owner email", node.owner_email.as_ref()),
    ];
    for (what, value) in fields {
        if let Some(value) = value {
            check_value(origin, what, value, line, None)?;
        }
    }
    Ok(())
}

fn render_spanned(
    origin: &str,
    key: &str,
    value: &Spanned<String>,
) -> Result<String, ContractError> {
    jinja::render(&value.value).map_err(|e| {
        ContractError::new(
            origin,
            Some(value.referenced.line()),
            Some(value.referenced.column()),
            format!("{key}: {}", e.0),
        )
    })
}

/// Renders a name (see [`render_spanned`]) and refuses it if it holds a control character.
fn render_name(
    origin: &str,
    key: &str,
    what: &str,
    value: &Spanned<String>,
) -> Result<String, ContractError> {
    let rendered = render_spanned(origin, key, value)?;
    check_spanned(origin, what, &rendered, value)?;
    Ok(rendered)
}

/// [`check_value`] at the position of the YAML value `text` was rendered from.
fn check_spanned(
    origin: &str,
    what: &str,
    text: &str,
    value: &Spanned<String>,
) -> Result<(), ContractError> {
    check_value(
        origin,
        what,
        text,
        Some(value.referenced.line()),
        Some(value.referenced.column()),
    )
}

fn non_blank(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// dbt keeps the last definition of a repeated column name; so does the contract.
fn dedupe_columns(columns: Vec<ContractColumn>) -> Vec<ContractColumn> {
    let mut seen = HashSet::new();
    let mut out: Vec<ContractColumn> = Vec::with_capacity(columns.len());
    for column in columns.into_iter().rev() {
        if seen.insert(column.name.clone()) {
            out.push(column);
        }
    }
    out.reverse();
    out
}

/// serde_json's message without its " at line L column C" suffix (kept in the error's fields).
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// serde-saphyr's message without its own "error: line L column C: " prefix (the location is
/// already in the error's own fields) and without the source snippet that follows.
fn yaml_message(rendered: &str) -> String {
    let message = strip_location(rendered);
    if message.starts_with("budget breached") {
        // Alias bombs and giant documents end here; say so in words.
        format!("{message} (the document expands beyond drift_watch's parsing limits)")
    } else {
        message.to_string()
    }
}

fn strip_location(rendered: &str) -> &str {
    let first = rendered.lines().next().unwrap_or(rendered);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.strip_prefix("line ") {
        Some(rest) => match rest.find(": ") {
            Some(at) if rest[..at].contains(" column ") => &rest[at + 2..],
            _ => first,
        },
        None => first,
    }
}

/// Collects tables and refuses a source table defined twice in one document, as dbt does.
struct Builder<'a> {
    origin: &'a str,
    seen: HashSet<(String, String)>,
    tables: Vec<ContractTable>,
}

impl<'a> Builder<'a> {
    fn new(origin: &'a str) -> Self {
        Self {
            origin,
            seen: HashSet::new(),
            tables: Vec::new(),
        }
    }

    fn push(&mut self, table: ContractTable, line: Option<u64>) -> Result<(), ContractError> {
        let key = (table.source_name.clone(), table.table_name.clone());
        if !self.seen.insert(key) {
            return Err(ContractError::new(
                self.origin,
                line,
                None,
                format!(
                    "source table '{}.{}' is defined twice",
                    table.source_name, table.table_name
                ),
            ));
        }
        self.tables.push(table);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// manifest.json

/// First pass over a JSON document: is it a manifest? `sources` is kept as raw text so that a
/// JSON properties file (where `sources` is a list) is not an error here.
#[derive(Deserialize)]
struct ManifestProbe<'a> {
    #[serde(default)]
    metadata: Option<IgnoredAny>,
    #[serde(default, borrow)]
    nodes: Option<&'a RawValue>,
    #[serde(default, borrow)]
    sources: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    exposures: Option<&'a RawValue>,
}

/// A model, snapshot or exposure of a manifest (every other node is skipped).
#[derive(Deserialize)]
struct ManifestNode<'a> {
    #[serde(default)]
    resource_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    original_file_path: Option<String>,
    #[serde(default, borrow)]
    raw_code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    raw_sql: Option<&'a RawValue>,
    #[serde(default, borrow)]
    compiled_code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    compiled_sql: Option<&'a RawValue>,
    #[serde(default)]
    depends_on: Option<DependsOn>,
    #[serde(default, rename = "type")]
    exposure_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    url: Option<&'a RawValue>,
    #[serde(default, borrow)]
    owner: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct DependsOn {
    #[serde(default)]
    nodes: Vec<String>,
}

/// The values the contract stores are kept as their JSON text (`&RawValue`, a slice of the
/// document) and decoded by [`ManifestText`], so that a refused value is reported at its own
/// line and column even in dbt's single-line manifest.
#[derive(Deserialize)]
struct ManifestSource<'a> {
    #[serde(default)]
    resource_type: Option<String>,
    #[serde(borrow)]
    source_name: &'a RawValue,
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(default, borrow)]
    identifier: Option<&'a RawValue>,
    #[serde(borrow)]
    schema: &'a RawValue,
    #[serde(default, borrow)]
    database: Option<&'a RawValue>,
    #[serde(default)]
    quoting: Option<Quoting>,
    #[serde(default, borrow)]
    config: Option<ManifestConfig<'a>>,
    /// The source's `meta` (the table's is `meta`).
    #[serde(default, borrow)]
    source_meta: Option<&'a RawValue>,
    #[serde(default, borrow)]
    meta: Option<&'a RawValue>,
    #[serde(default, borrow)]
    columns: Option<Ordered<ManifestColumn<'a>>>,
}

#[derive(Deserialize, Default)]
struct ManifestConfig<'a> {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    quoting: Option<Quoting>,
    #[serde(default, borrow)]
    meta: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ManifestColumn<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(default, borrow)]
    data_type: Option<&'a RawValue>,
    #[serde(default)]
    quote: Option<bool>,
    #[serde(default, borrow)]
    meta: Option<&'a RawValue>,
    #[serde(default, borrow)]
    config: Option<ManifestConfig<'a>>,
}

/// Decodes the JSON strings of one manifest source node and locates its errors.
struct ManifestText<'a> {
    origin: &'a str,
    document: &'a str,
    unique_id: &'a str,
}

impl ManifestText<'_> {
    /// The string `raw` holds, refused (at the value's position) if it is not a string or
    /// holds a control character. `what` names the value in messages ("column name").
    fn string(&self, what: &str, raw: &RawValue) -> Result<String, ContractError> {
        let value = self.decode(what, raw)?;
        self.check(what, &value, raw.get())?;
        Ok(value)
    }

    /// The string `raw` holds, refused (at the value's position) if it is not a string.
    fn decode(&self, what: &str, raw: &RawValue) -> Result<String, ContractError> {
        let text = raw.get();
        // serde_json has already checked the text is a well-formed JSON value; a string
        // without escapes is its own content (raw control characters are invalid JSON).
        let value = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(plain) if !plain.contains('\\') => plain.to_string(),
            _ => serde_json::from_str::<String>(text).map_err(|e| {
                self.error(
                    text,
                    format!("not a valid dbt manifest: {what}: {}", json_message(&e)),
                )
            })?,
        };
        Ok(value)
    }

    /// Refuses `value` (decoded from the JSON text `text`) if it holds a control character.
    fn check(&self, what: &str, value: &str, text: &str) -> Result<(), ContractError> {
        if ident::find_control_character(value).is_none() {
            return Ok(());
        }
        let (line, column) = json_location(self.document, text);
        check_value(self.origin, what, value, Some(line), Some(column))
            .map_err(|e| self.with_unique_id(e))
    }

    fn error(&self, text: &str, message: String) -> ContractError {
        let (line, column) = json_location(self.document, text);
        self.with_unique_id(ContractError::new(
            self.origin,
            Some(line),
            Some(column),
            message,
        ))
    }

    /// Names the node, as dbt's `unique_id`, in the message of an error about it.
    fn with_unique_id(&self, e: ContractError) -> ContractError {
        ContractError {
            message: format!(
                "{} ({})",
                e.message,
                ident::escape_control_characters(self.unique_id)
            ),
            ..e
        }
    }
}

/// Line and column (both from 1) of `text`, a slice of the JSON `document`. Columns count
/// bytes, as serde_json's own error positions do. Only called on the error path: it scans the
/// document up to `text`.
fn json_location(document: &str, text: &str) -> (u64, u64) {
    let offset = (text.as_ptr() as usize)
        .saturating_sub(document.as_ptr() as usize)
        .min(document.len());
    byte_location(document, offset)
}

fn byte_location(document: &str, offset: usize) -> (u64, u64) {
    let before = &document.as_bytes()[..offset.min(document.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let line = before[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    (line as u64, (offset - line_start) as u64 + 1)
}

/// A JSON object read in document order (column order matters to people reading the results).
struct Ordered<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        deserializer.deserialize_any(OrderedVisitor(std::marker::PhantomData))
    }
}

/// `Ok(None)`: valid JSON that is not a manifest (it is then read as a properties file).
fn parse_manifest(origin: &str, document: &str) -> Result<Option<Contract>, ContractError> {
    // `start` is where (line, column) the parsed text begins in the document: errors inside
    // `sources` are reported at their place in the whole document.
    let json_error = |e: serde_json::Error, start: (u64, u64)| {
        let line = e.line() as u64;
        let column = e.column() as u64;
        let column = if line == 1 {
            column + start.1 - 1
        } else {
            column
        };
        ContractError::new(
            origin,
            Some(line + start.0 - 1),
            Some(column),
            format!("not a valid dbt manifest: {}", json_message(&e)),
        )
    };
    let probe: ManifestProbe = serde_json::from_str(document).map_err(|e| json_error(e, (1, 1)))?;
    if probe.metadata.is_none() && probe.nodes.is_none() {
        return Ok(None);
    }
    let sources: Ordered<ManifestSource> = match probe.sources {
        None => Ordered(Vec::new()),
        Some(raw) => {
            let text = raw.get();
            serde_json::from_str(text).map_err(|e| json_error(e, json_location(document, text)))?
        }
    };
    let mut builder = Builder::new(origin);
    let mut source_ids: HashMap<String, (String, String)> = HashMap::new();
    for (unique_id, node) in sources.0 {
        if node.resource_type.as_deref().is_some_and(|t| t != "source") {
            continue;
        }
        let config = node.config.unwrap_or_default();
        if !enabled(config.enabled, None) {
            continue;
        }
        let text = ManifestText {
            origin,
            document,
            unique_id: &unique_id,
        };
        let source_name = text.string("source name", node.source_name)?;
        let table_name = text.string("table name", node.name)?;
        source_ids.insert(unique_id.clone(), (source_name.clone(), table_name.clone()));
        let identifier = match node.identifier {
            Some(raw) => text.string("identifier", raw)?,
            None => table_name.clone(),
        };
        let schema = text.string("schema", node.schema)?;
        let database = match node.database {
            Some(raw) => Some(text.string("database", raw)?),
            None => None,
        };
        // dbt has merged the source's and the table's quoting into the node's (null: default).
        let quoting = node
            .quoting
            .unwrap_or_default()
            .overridden_by(config.quoting);
        let source_policy = policy::json_part(&text, &[node.source_meta], Level::Source)?;
        let table_policy = policy::json_part(&text, &[node.meta, config.meta], Level::Table)?;
        let mut columns = Vec::new();
        for (_, column) in node.columns.map(|c| c.0).unwrap_or_default() {
            let name = text.string("column name", column.name)?;
            let quoted = column.quote.unwrap_or(false);
            let column_meta = column.config.and_then(|c| c.meta);
            let ignore =
                policy::json_part(&text, &[column.meta, column_meta], Level::Column)?.ignore();
            let data_type = match column.data_type {
                // Checked before trimming, as for YAML.
                Some(raw) => non_blank(text.string("data_type", raw)?),
                None => None,
            };
            columns.push(ContractColumn {
                name: ident::resolve(&name, quoted).into(),
                data_type: data_type.map(Arc::from),
                quoted,
                ignore,
            });
        }
        builder
            .push(
                ContractTable {
                    source_name,
                    table_name,
                    database,
                    schema: ident::resolve(&schema, quoting.schema()),
                    identifier: ident::resolve(&identifier, quoting.identifier()),
                    schema_quoted: quoting.schema(),
                    identifier_quoted: quoting.identifier(),
                    columns: dedupe_columns(columns),
                    policy: policy::table_policy(source_policy, table_policy),
                },
                None,
            )
            .map_err(|e| text.with_unique_id(e))?;
    }
    let lineage = manifest_lineage(origin, document, &probe, &source_ids)?;
    Ok(Some(Contract {
        kind: DocumentKind::Manifest,
        tables: builder.tables,
        lineage,
    }))
}

/// The part of a manifest's graph below its enabled sources: every model, snapshot and exposure
/// reachable from one (through `depends_on`), the edges among them, and SQL for the direct
/// children of a source only.
fn manifest_lineage(
    origin: &str,
    document: &str,
    probe: &ManifestProbe<'_>,
    source_ids: &HashMap<String, (String, String)>,
) -> Result<Lineage, ContractError> {
    fn parse<'d>(
        origin: &str,
        document: &str,
        raw: Option<&'d RawValue>,
    ) -> Result<Vec<(String, ManifestNode<'d>)>, ContractError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let text = raw.get();
        let nodes: Ordered<ManifestNode> = serde_json::from_str(text).map_err(|e| {
            let (line, column) = json_location(document, text);
            ContractError::new(
                origin,
                Some(line),
                Some(column),
                format!("not a valid dbt manifest: nodes: {}", json_message(&e)),
            )
        })?;
        Ok(nodes.0)
    }
    let mut nodes = parse(origin, document, probe.nodes)?;
    nodes.retain(|(_, n)| matches!(n.resource_type.as_deref(), Some("model" | "snapshot")));
    let mut exposures = parse(origin, document, probe.exposures)?;
    exposures.retain(|(_, n)| n.resource_type.as_deref().is_none_or(|t| t == "exposure"));
    let all: Vec<(&str, &ManifestNode, bool)> = nodes
        .iter()
        .map(|(id, n)| (id.as_str(), n, false))
        .chain(exposures.iter().map(|(id, n)| (id.as_str(), n, true)))
        .collect();
    let index: HashMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| (*id, i))
        .collect();

    // children[i]: the nodes that depend on node i; direct[i]: node i reads a source.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); all.len()];
    let mut direct = vec![false; all.len()];
    let mut source_edges: Vec<(usize, &(String, String))> = Vec::new();
    for (child, (_, node, _)) in all.iter().enumerate() {
        for parent in node.depends_on.iter().flat_map(|d| d.nodes.iter()) {
            if let Some(source) = source_ids.get(parent) {
                direct[child] = true;
                source_edges.push((child, source));
            } else if let Some(&p) = index.get(parent.as_str()) {
                children[p].push(child);
            }
        }
    }
    let mut reached = direct.clone();
    let mut stack: Vec<usize> = (0..all.len()).filter(|&i| direct[i]).collect();
    while let Some(i) = stack.pop() {
        for &c in &children[i] {
            if !reached[c] {
                reached[c] = true;
                stack.push(c);
            }
        }
    }

    let mut lineage = Lineage::default();
    for (i, (unique_id, node, is_exposure)) in all.iter().enumerate() {
        if !reached[i] {
            continue;
        }
        let t = ManifestText {
            origin,
            document,
            unique_id,
        };
        let decode =
            |what: &str, raw: Option<&RawValue>| -> Result<Option<String>, ContractError> {
                match raw {
                    Some(raw) if raw.get().starts_with('"') => Ok(Some(t.decode(what, raw)?)),
                    _ => Ok(None),
                }
            };
        let (code, compiled) = if direct[i] && !is_exposure {
            match decode("compiled SQL", node.compiled_code.or(node.compiled_sql))? {
                Some(code) => (Some(code), true),
                None => (decode("SQL", node.raw_code.or(node.raw_sql))?, false),
            }
        } else {
            (None, false)
        };
        if let Some(code) = &code {
            if code.contains('\0') {
                return Err(t.with_unique_id(ContractError::new(
                    origin,
                    None,
                    None,
                    "the node's SQL holds a NUL byte",
                )));
            }
        }
        let mut out = LineageNode {
            unique_id: unique_id.to_string(),
            resource_type: node
                .resource_type
                .clone()
                .unwrap_or_else(|| "exposure".into()),
            name: node.name.clone().unwrap_or_default(),
            file_path: node.original_file_path.clone(),
            code,
            compiled,
            ..Default::default()
        };
        if *is_exposure {
            out.exposure_type = decode("exposure type", node.exposure_type)?;
            out.url = decode("exposure url", node.url)?;
            if let Some(owner) = node.owner {
                #[derive(Deserialize, Default)]
                struct Owner {
                    #[serde(default)]
                    name: Option<String>,
                    #[serde(default)]
                    email: Option<String>,
                }
                let owner: Owner = serde_json::from_str(owner.get()).unwrap_or_default();
                out.owner_name = owner.name;
                out.owner_email = owner.email;
            }
        }
        check_node(origin, &out, None).map_err(|e| t.with_unique_id(e))?;
        lineage.nodes.push(out);
        for &c in &children[i] {
            lineage.edges.push(LineageEdge {
                parent: Parent::Node(unique_id.to_string()),
                child: all[c].0.to_string(),
            });
        }
    }
    for (child, (source_name, table_name)) in source_edges {
        lineage.edges.push(LineageEdge {
            parent: Parent::Source {
                source_name: source_name.clone(),
                table_name: table_name.clone(),
            },
            child: all[child].0.to_string(),
        });
    }
    lineage.edges.sort();
    lineage.edges.dedup();
    Ok(lineage)
}

#[cfg(test)]
mod tests;
