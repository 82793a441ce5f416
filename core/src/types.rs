//! Type spellings before Postgres parses them.
//!
//! Built-in types are canonicalised by the server's type parser in the audit database. A name the
//! audit database does not know as a built-in (an enum, a domain, any user type) is looked up on
//! the target, where the live tables are: first in the table's own schema, then in `public`, then
//! in `pg_catalog` — the places an application's migration would have created it.

use crate::ident;

/// A user-type spelling taken apart, so the target can look it up in `pg_type` directly (no
/// schema privileges needed, unlike `to_regtype`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLookup {
    /// Schemas to search, in order.
    pub schemas: Vec<String>,
    /// `pg_type.typname` of the element type.
    pub typname: String,
    /// The spelling ends in `[]` (or `[n]`): the answer is the element type's array type.
    pub array: bool,
}

/// Splits `[schema.]name[(modifiers)][[]...]`, folding unquoted parts as Postgres does. An
/// unqualified name is searched in the table's schema, then `public`, then `pg_catalog`.
/// `None`: not a shape a user type can have.
pub fn user_type_lookup(table_schema: &str, spelling: &str) -> Option<TypeLookup> {
    let mut rest = spelling.trim();
    let mut array = false;
    while let Some(open) = rest.rfind('[') {
        let tail = rest[open..].trim();
        if !tail.ends_with(']') || !tail[1..tail.len() - 1].chars().all(|c| c.is_ascii_digit()) {
            break;
        }
        array = true;
        rest = rest[..open].trim_end();
    }
    if rest.ends_with(')') {
        let open = rest.rfind('(')?;
        rest = rest[..open].trim_end();
    }
    let parts = split_dotted(rest)?;
    let (schemas, typname) = match parts.as_slice() {
        [name] => {
            let mut schemas = vec![table_schema.to_string()];
            for s in ["public", "pg_catalog"] {
                if table_schema != s {
                    schemas.push(s.to_string());
                }
            }
            (schemas, name.clone())
        }
        [schema, name] => (vec![schema.clone()], name.clone()),
        _ => return None,
    };
    Some(TypeLookup {
        schemas,
        typname,
        array,
    })
}

/// `a."B c".d` → `["a", "B c", "d"]`, unquoted parts folded.
fn split_dotted(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
            parts.push(part);
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c.is_whitespace() {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$') {
                    return None;
                }
                part.push(c);
                chars.next();
            }
            if part.is_empty() {
                return None;
            }
            parts.push(ident::resolve(&part, false));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(schemas: &[&str], typname: &str, array: bool) -> Option<TypeLookup> {
        Some(TypeLookup {
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            typname: typname.into(),
            array,
        })
    }

    #[test]
    fn unqualified_names_search_the_table_schema_then_public() {
        assert_eq!(
            user_type_lookup("app", "Status"),
            lookup(&["app", "public", "pg_catalog"], "status", false)
        );
        assert_eq!(
            user_type_lookup("public", "year"),
            lookup(&["public", "pg_catalog"], "year", false)
        );
    }

    #[test]
    fn qualified_quoted_array_and_modified_spellings() {
        assert_eq!(
            user_type_lookup("app", r#"Billing."Plan Kind"[]"#),
            lookup(&["billing"], "Plan Kind", true)
        );
        assert_eq!(
            user_type_lookup("app", "public.year(4)"),
            lookup(&["public"], "year", false)
        );
        assert_eq!(
            user_type_lookup("app", "mood[3][]"),
            lookup(&["app", "public", "pg_catalog"], "mood", true)
        );
        assert_eq!(
            user_type_lookup("app", r#""My.Schema".status"#),
            lookup(&["My.Schema"], "status", false)
        );
    }

    #[test]
    fn shapes_no_user_type_has_are_refused() {
        assert_eq!(user_type_lookup("app", "a.b.c"), None);
        assert_eq!(user_type_lookup("app", "x'); DROP TABLE t; --"), None);
        assert_eq!(user_type_lookup("app", "\"unterminated"), None);
    }
}
