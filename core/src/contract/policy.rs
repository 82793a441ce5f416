//! drift_watch's own settings in dbt `meta`: `meta: {drift_watch: {undocumented: ..., ignore:
//! ...}}` (or the same under `config: {meta: ...}`) on a source, a table or a column.
//!
//! Both document kinds are first read into [`DriftWatch`] (values with their positions, `P`), then
//! checked by one function, so YAML and manifests accept and refuse exactly the same things with
//! the same messages.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_saphyr::Spanned;

use super::{ChangeSet, ContractError, ManifestText, Ordered, TablePolicy, Undocumented};
use crate::diff::Change;
use crate::lineage::Severity;

/// Where a `meta` sits: sources and tables take both keys, columns only `ignore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Source,
    Table,
    Column,
}

impl Level {
    fn expected(self) -> &'static str {
        match self {
            Level::Source | Level::Table => {
                "undocumented, ignore, severity, owner, target, live_schema"
            }
            Level::Column => "ignore",
        }
    }
}

/// One level's own settings; `None`: not set there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PolicyPart {
    pub undocumented: Option<Undocumented>,
    pub ignore: Option<ChangeSet>,
    pub severity: Option<Severity>,
    /// `drift_watch: {owner: ...}`, else the meta owner key (`owner` unless configured).
    pub owner: Option<String>,
    /// `drift_watch: {target: ..., live_schema: ...}`: the foreign server that checks these
    /// tables, and the schema they are read in there (SQL `map_sources` overrides).
    pub target: Option<String>,
    pub live_schema: Option<String>,
}

impl PolicyPart {
    /// `self` (from `meta:`) with each key that `config` (from `config: {meta: ...}`) sets
    /// replaced: dbt merges the two, `config` winning.
    pub fn overridden_by(self, config: PolicyPart) -> PolicyPart {
        PolicyPart {
            undocumented: config.undocumented.or(self.undocumented),
            ignore: config.ignore.or(self.ignore),
            severity: config.severity.or(self.severity),
            owner: config.owner.or(self.owner),
            target: config.target.or(self.target),
            live_schema: config.live_schema.or(self.live_schema),
        }
    }

    pub fn ignore(&self) -> ChangeSet {
        self.ignore.unwrap_or_default()
    }
}

/// A table's policy under its source's: the table's `undocumented` wins, `ignore` sets add up.
pub(super) fn table_policy(source: PolicyPart, table: PolicyPart) -> TablePolicy {
    TablePolicy {
        undocumented: table
            .undocumented
            .or(source.undocumented)
            .unwrap_or_default(),
        ignore: source.ignore().union(table.ignore()),
        severity: table.severity.or(source.severity),
        owner: table.owner.or(source.owner),
        target: table.target.or(source.target),
        live_schema: table.live_schema.or(source.live_schema),
    }
}

/// A value under `drift_watch`, with the position of every part.
pub(super) enum MetaValue<P> {
    Bool(bool),
    Str(String),
    List(Vec<(MetaValue<P>, P)>),
    /// Anything else, named for messages ("a number", "a mapping", "null").
    Other(&'static str),
}

impl<P> MetaValue<P> {
    /// How a refused value is shown in a message.
    fn shown(&self) -> String {
        match self {
            MetaValue::Bool(b) => b.to_string(),
            MetaValue::Str(s) => format!("{s:?}"),
            MetaValue::List(_) => "a list".into(),
            MetaValue::Other(what) => (*what).into(),
        }
    }
}

/// The value of `drift_watch:` itself.
pub(super) enum DriftWatch<P> {
    Map(Vec<Entry<P>>),
    Other(&'static str, P),
}

pub(super) struct Entry<P> {
    pub key: String,
    pub key_at: P,
    pub value: MetaValue<P>,
    pub value_at: P,
}

fn change_kinds() -> String {
    Change::ALL.map(Change::as_str).join(", ")
}

/// An owner as written, refused if it holds a control character (it reaches Asana and logs).
fn checked_owner<P: Copy>(
    owner: String,
    at: P,
    error: &dyn Fn(P, String) -> ContractError,
) -> Result<String, ContractError> {
    checked_text("owner", owner, at, error)
}

/// A meta value as text, refused (at its position) if it holds a control character.
fn checked_text<P: Copy>(
    what: &str,
    value: String,
    at: P,
    error: &dyn Fn(P, String) -> ContractError,
) -> Result<String, ContractError> {
    if let Some(c) = crate::ident::find_control_character(&value) {
        return Err(error(
            at,
            format!(
                "{what} {} holds the control character {}",
                crate::ident::escape_control_characters(&value),
                super::code_point(c)
            ),
        ));
    }
    Ok(value.trim().to_string())
}

/// The value of the project's own owner key (`meta: {owner: ...}`): a string, or the first
/// string of a list; anything else is the project's business and is not read.
fn meta_owner<P: Copy>(
    value: MetaValue<P>,
    at: P,
    error: &dyn Fn(P, String) -> ContractError,
) -> Result<Option<String>, ContractError> {
    let owner = match value {
        MetaValue::Str(s) => Some((s, at)),
        MetaValue::List(items) => items.into_iter().find_map(|(v, at)| match v {
            MetaValue::Str(s) => Some((s, at)),
            _ => None,
        }),
        _ => None,
    };
    match owner {
        Some((s, at)) if !s.trim().is_empty() => Ok(Some(checked_owner(s, at, error)?)),
        _ => Ok(None),
    }
}

thread_local! {
    /// The `meta` key that names an owner, for the document being parsed
    /// (`drift_watch.owner_meta_key`, `owner` by default).
    static OWNER_KEY: std::cell::RefCell<String> = std::cell::RefCell::new("owner".into());
}

/// Runs `f` with `key` as the owner meta key.
pub(super) fn with_owner_key<T>(key: &str, f: impl FnOnce() -> T) -> T {
    let previous = OWNER_KEY.with(|k| std::mem::replace(&mut *k.borrow_mut(), key.to_string()));
    let out = f();
    OWNER_KEY.with(|k| *k.borrow_mut() = previous);
    out
}

fn is_owner_key(key: &str) -> bool {
    OWNER_KEY.with(|k| *k.borrow() == key)
}

/// Checks one `drift_watch` value; `error` locates a message at a position.
pub(super) fn read<P: Copy>(
    drift_watch: DriftWatch<P>,
    level: Level,
    error: &dyn Fn(P, String) -> ContractError,
) -> Result<PolicyPart, ContractError> {
    let entries = match drift_watch {
        DriftWatch::Map(entries) => entries,
        DriftWatch::Other(what, at) => {
            return Err(error(
                at,
                format!(
                    "meta drift_watch must be a mapping (keys {}), not {what}",
                    level.expected()
                ),
            ))
        }
    };
    let mut part = PolicyPart::default();
    for entry in entries {
        match entry.key.as_str() {
            "undocumented" if level == Level::Column => {
                return Err(error(
                    entry.key_at,
                    format!(
                        "drift_watch meta key \"undocumented\" applies to sources and tables, \
                         not columns (expected {})",
                        level.expected()
                    ),
                ))
            }
            "undocumented" => {
                let parsed = match &entry.value {
                    MetaValue::Str(s) => Undocumented::parse(s),
                    _ => None,
                };
                let Some(parsed) = parsed else {
                    return Err(error(
                        entry.value_at,
                        format!(
                            "drift_watch undocumented must be baseline, alert or ignore, not {}",
                            entry.value.shown()
                        ),
                    ));
                };
                part.undocumented = Some(parsed);
            }
            "ignore" => {
                part.ignore = Some(match entry.value {
                    // `false` is refused rather than read as "nothing": sets add up from the
                    // source down to the column, so it could not undo an ignore above it.
                    MetaValue::Bool(true) => ChangeSet::ALL,
                    MetaValue::List(items) => {
                        let mut set = ChangeSet::EMPTY;
                        for (item, at) in items {
                            let change = match &item {
                                MetaValue::Str(s) => Change::parse(s),
                                _ => None,
                            };
                            let message = match (change, &item) {
                                (Some(c), _) => {
                                    set.insert(c);
                                    continue;
                                }
                                (None, MetaValue::Str(_)) => format!(
                                    "unknown change kind {} in drift_watch ignore (expected {})",
                                    item.shown(),
                                    change_kinds()
                                ),
                                (None, _) => format!(
                                    "drift_watch ignore must list change kinds ({}), not {}",
                                    change_kinds(),
                                    item.shown()
                                ),
                            };
                            return Err(error(at, message));
                        }
                        set
                    }
                    other => {
                        return Err(error(
                            entry.value_at,
                            format!(
                                "drift_watch ignore must be true or a list of change kinds ({}), \
                                 not {}",
                                change_kinds(),
                                other.shown()
                            ),
                        ))
                    }
                });
            }
            "severity" | "owner" | "target" | "live_schema" if level == Level::Column => {
                return Err(error(
                    entry.key_at,
                    format!(
                        "drift_watch meta key {:?} applies to sources and tables, not columns \
                         (expected {})",
                        entry.key,
                        level.expected()
                    ),
                ))
            }
            "severity" => {
                let parsed = match &entry.value {
                    MetaValue::Str(s) => Severity::parse(s),
                    _ => None,
                };
                let Some(parsed) = parsed else {
                    return Err(error(
                        entry.value_at,
                        format!(
                            "drift_watch severity must be breaking, risky or info, not {}",
                            entry.value.shown()
                        ),
                    ));
                };
                part.severity = Some(parsed);
            }
            "owner" => {
                let MetaValue::Str(owner) = entry.value else {
                    return Err(error(
                        entry.value_at,
                        format!(
                            "drift_watch owner must be an email or an Asana user gid, not {}",
                            entry.value.shown()
                        ),
                    ));
                };
                part.owner = Some(checked_owner(owner, entry.value_at, error)?);
            }
            "target" | "live_schema" => {
                let value = match entry.value {
                    MetaValue::Str(s) if !s.trim().is_empty() => s,
                    other => {
                        return Err(error(
                            entry.value_at,
                            format!(
                                "drift_watch {} must be a name (a foreign server for target, a \
                                 schema for live_schema), not {}",
                                entry.key,
                                other.shown()
                            ),
                        ))
                    }
                };
                let value = checked_text(&entry.key, value, entry.value_at, error)?;
                if entry.key == "target" {
                    part.target = Some(value);
                } else {
                    part.live_schema = Some(value);
                }
            }
            unknown => {
                return Err(error(
                    entry.key_at,
                    format!(
                        "unknown drift_watch meta key {unknown:?} (expected {})",
                        level.expected()
                    ),
                ))
            }
        }
    }
    Ok(part)
}

// ---------------------------------------------------------------------------------------------
// YAML

/// A `meta:` mapping: only `drift_watch` and the owner key are read, every other key is the
/// project's own.
#[derive(Default)]
pub(super) struct YamlMeta {
    drift_watch: Option<Spanned<YamlDriftWatch>>,
    owner: Option<Spanned<YamlValue>>,
}

impl<'de> Deserialize<'de> for YamlMeta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = YamlMeta;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlMeta, A::Error> {
                let mut meta = YamlMeta::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "drift_watch" {
                        meta.drift_watch = Some(map.next_value()?);
                    } else if is_owner_key(&key) {
                        meta.owner = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(meta)
            }
            fn visit_unit<E>(self) -> Result<YamlMeta, E> {
                Ok(YamlMeta::default())
            }
            fn visit_none<E>(self) -> Result<YamlMeta, E> {
                Ok(YamlMeta::default())
            }
        }
        deserializer.deserialize_any(V)
    }
}

pub(super) enum YamlDriftWatch {
    Map(Vec<(Spanned<String>, Spanned<YamlValue>)>),
    Other(&'static str),
}

pub(super) struct YamlValue(MetaValue<(u64, u64)>);

fn at<T>(spanned: &Spanned<T>) -> (u64, u64) {
    (spanned.referenced.line(), spanned.referenced.column())
}

/// What a value is, for messages.
mod kind {
    pub const NUMBER: &str = "a number";
    pub const NULL: &str = "null";
    pub const MAPPING: &str = "a mapping";
    pub const LIST: &str = "a list";
    pub const STRING: &str = "a string";
}

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = YamlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Bool(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Str(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Str(v)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NUMBER)))
            }
            fn visit_u64<E>(self, _: u64) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NUMBER)))
            }
            fn visit_i128<E>(self, _: i128) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NUMBER)))
            }
            fn visit_u128<E>(self, _: u128) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NUMBER)))
            }
            fn visit_f64<E>(self, _: f64) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NUMBER)))
            }
            fn visit_unit<E>(self) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NULL)))
            }
            fn visit_none<E>(self) -> Result<YamlValue, E> {
                Ok(YamlValue(MetaValue::Other(kind::NULL)))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YamlValue, D::Error> {
                YamlValue::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YamlValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<YamlValue>>()? {
                    let position = at(&item);
                    items.push((item.value.0, position));
                }
                Ok(YamlValue(MetaValue::List(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(YamlValue(MetaValue::Other(kind::MAPPING)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for YamlDriftWatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = YamlDriftWatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(YamlDriftWatch::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(YamlDriftWatch::Other(kind::LIST))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(YamlDriftWatch::Other(if v { "true" } else { "false" }))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(YamlDriftWatch::Other(kind::STRING))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(YamlDriftWatch::Other(kind::NUMBER))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(YamlDriftWatch::Other(kind::NUMBER))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(YamlDriftWatch::Other(kind::NUMBER))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The settings of one YAML level: `meta:` overridden by `config: {meta: ...}`.
pub(super) fn yaml_part(
    origin: &str,
    meta: Option<YamlMeta>,
    config_meta: Option<YamlMeta>,
    level: Level,
) -> Result<PolicyPart, ContractError> {
    let error = |(line, column): (u64, u64), message: String| {
        ContractError::new(origin, Some(line), Some(column), message)
    };
    let read_one = |meta: Option<YamlMeta>| -> Result<PolicyPart, ContractError> {
        let Some(meta) = meta else {
            return Ok(PolicyPart::default());
        };
        let owner = match meta.owner {
            Some(o) => {
                let position = at(&o);
                meta_owner(o.value.0, position, &error)?
            }
            None => None,
        };
        let Some(drift_watch) = meta.drift_watch else {
            return Ok(PolicyPart {
                owner,
                ..PolicyPart::default()
            });
        };
        let drift_watch_at = at(&drift_watch);
        let value = match drift_watch.value {
            YamlDriftWatch::Other(what) => DriftWatch::Other(what, drift_watch_at),
            YamlDriftWatch::Map(entries) => DriftWatch::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| Entry {
                        key_at: at(&key),
                        key: key.value,
                        value_at: at(&value),
                        value: value.value.0,
                    })
                    .collect(),
            ),
        };
        let mut part = read(value, level, &error)?;
        part.owner = part.owner.or(owner);
        Ok(part)
    };
    Ok(read_one(meta)?.overridden_by(read_one(config_meta)?))
}

// ---------------------------------------------------------------------------------------------
// manifest.json

/// The settings of one manifest level: each of `metas` (in order, later ones winning per key)
/// is the JSON text of a `meta` object, or absent. Positions are byte offsets in the document,
/// turned into line and column only for an error.
pub(super) fn json_part(
    text: &ManifestText<'_>,
    metas: &[Option<&RawValue>],
    level: Level,
) -> Result<PolicyPart, ContractError> {
    let error = |offset: usize, message: String| {
        let (line, column) = super::byte_location(text.document, offset);
        text.with_unique_id(ContractError::new(
            text.origin,
            Some(line),
            Some(column),
            message,
        ))
    };
    let mut part = PolicyPart::default();
    for meta in metas.iter().flatten() {
        let probe: Option<Ordered<&RawValue>> = serde_json::from_str(meta.get()).map_err(|e| {
            text.error(
                meta.get(),
                format!(
                    "not a valid dbt manifest: meta: {}",
                    super::json_message(&e)
                ),
            )
        })?;
        let mut this = PolicyPart::default();
        let mut owner = None;
        for (key, value) in probe.map(|p| p.0).unwrap_or_default() {
            if key == "drift_watch" {
                this = read(json_drift_watch(text, value)?, level, &error)?;
            } else if is_owner_key(&key) && level != Level::Column {
                owner = meta_owner(json_value(text, value)?, offset(text, value), &error)?;
            }
        }
        this.owner = this.owner.or(owner);
        part = part.overridden_by(this);
    }
    Ok(part)
}

fn offset(text: &ManifestText<'_>, raw: &RawValue) -> usize {
    (raw.get().as_ptr() as usize).saturating_sub(text.document.as_ptr() as usize)
}

fn json_drift_watch(
    text: &ManifestText<'_>,
    raw: &RawValue,
) -> Result<DriftWatch<usize>, ContractError> {
    let at = offset(text, raw);
    if !raw.get().starts_with('{') {
        return Ok(match json_value(text, raw)? {
            MetaValue::Other(what) => DriftWatch::Other(what, at),
            MetaValue::List(_) => DriftWatch::Other(kind::LIST, at),
            MetaValue::Bool(b) => DriftWatch::Other(if b { "true" } else { "false" }, at),
            MetaValue::Str(_) => DriftWatch::Other(kind::STRING, at),
        });
    }
    let map: Ordered<&RawValue> = serde_json::from_str(raw.get()).map_err(|e| {
        text.error(
            raw.get(),
            format!(
                "not a valid dbt manifest: drift_watch: {}",
                super::json_message(&e)
            ),
        )
    })?;
    let mut entries = Vec::with_capacity(map.0.len());
    for (key, value) in map.0 {
        let value_at = offset(text, value);
        entries.push(Entry {
            key,
            key_at: key_offset(text.document, value_at).unwrap_or(value_at),
            value: json_value(text, value)?,
            value_at,
        });
    }
    Ok(DriftWatch::Map(entries))
}

fn json_value(text: &ManifestText<'_>, raw: &RawValue) -> Result<MetaValue<usize>, ContractError> {
    let json = raw.get();
    Ok(match json.as_bytes().first() {
        Some(b't') => MetaValue::Bool(true),
        Some(b'f') => MetaValue::Bool(false),
        Some(b'n') => MetaValue::Other(kind::NULL),
        Some(b'"') => MetaValue::Str(text.decode("drift_watch meta value", raw)?),
        Some(b'{') => MetaValue::Other(kind::MAPPING),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(json).map_err(|e| {
                text.error(
                    json,
                    format!("not a valid dbt manifest: {}", super::json_message(&e)),
                )
            })?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push((json_value(text, item)?, offset(text, item)));
            }
            MetaValue::List(out)
        }
        _ => MetaValue::Other(kind::NUMBER),
    })
}

/// The offset of the opening quote of the key whose value starts at `value_at`: back over
/// `"key" :` (whitespace allowed around the colon).
fn key_offset(document: &str, value_at: usize) -> Option<usize> {
    let bytes = document.as_bytes().get(..value_at)?;
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let colon = bytes.iter().rposition(|b| !is_space(b))?;
    if bytes[colon] != b':' {
        return None;
    }
    let close = bytes[..colon].iter().rposition(|b| !is_space(b))?;
    if bytes[close] != b'"' {
        return None;
    }
    let mut at = close;
    loop {
        at = bytes[..at].iter().rposition(|&b| b == b'"')?;
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(at);
        }
    }
}
