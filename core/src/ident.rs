//! Postgres identifier rules, as the server applies them to the names dbt renders.

/// `NAMEDATALEN - 1`: Postgres truncates longer identifiers (quoted or not) to this many bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The name Postgres stores for an identifier written in SQL: unquoted names fold ASCII letters to
/// lower case (as `downcase_identifier` does in a UTF-8 database), quoted names are kept as written;
/// both are truncated to 63 bytes on a character boundary.
pub fn resolve(name: &str, quoted: bool) -> String {
    let folded = if quoted {
        name.to_string()
    } else {
        name.to_ascii_lowercase()
    };
    truncate(folded)
}

fn truncate(mut name: String) -> String {
    if name.len() > MAX_IDENTIFIER_BYTES {
        let mut end = MAX_IDENTIFIER_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// Always-quoted SQL spelling of an identifier (`"a""b"`), safe for any input.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal equal to `value` under either setting of `standard_conforming_strings`
/// (the same rule as Postgres's `quote_literal`).
pub fn literal(value: &str) -> String {
    let body = value.replace('\'', "''");
    if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_names_fold_ascii_only() {
        assert_eq!(resolve("CustomerId", false), "customerid");
        assert_eq!(resolve("Größe", false), "größe");
        assert_eq!(resolve("CustomerId", true), "CustomerId");
    }

    #[test]
    fn long_names_truncate_like_postgres() {
        let long = "a".repeat(70);
        assert_eq!(resolve(&long, false).len(), 63);
        // A two-byte character straddling byte 63 is dropped whole.
        let tricky = format!("{}é", "a".repeat(62));
        assert_eq!(resolve(&tricky, true), "a".repeat(62));
    }

    #[test]
    fn quoting_and_literals_escape_everything() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b'; DROP"), r"E'a\\b''; DROP'");
    }
}
