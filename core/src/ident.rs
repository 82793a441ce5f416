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

/// The first control character in `text`, if any: U+0000–U+001F, U+007F or U+0080–U+009F
/// (Unicode category Cc). Names, identifiers and type spellings carrying one are refused when a
/// contract is parsed; printable non-ASCII (`Größe`, emoji) is not a control character.
pub fn find_control_character(text: &str) -> Option<char> {
    // Every Cc character is encoded with a first byte below 0x20, 0x7F, or 0xC2 (U+0080–U+00BF),
    // so the common all-clear case is one byte scan with no decoding.
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return None;
    }
    text.chars().find(|c| c.is_control())
}

/// `text` with every control character written as `\u{…}`, for echoing untrusted text in
/// messages.
pub fn escape_control_characters(text: &str) -> std::borrow::Cow<'_, str> {
    if find_control_character(text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
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

/// An array's text form (`{"a","b\"c",NULL}`) as one escaped SQL string literal; the statement
/// casts it to its type.
pub fn array_literal(values: &mut dyn Iterator<Item = Option<&str>>) -> String {
    let mut text = String::from("{");
    for (i, value) in values.enumerate() {
        if i > 0 {
            text.push(',');
        }
        match value {
            None => text.push_str("NULL"),
            Some(v) => {
                text.push('"');
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        text.push('\\');
                    }
                    text.push(c);
                }
                text.push('"');
            }
        }
    }
    text.push('}');
    literal(&text)
}

/// `sql` with every parameter reference `$n` replaced by `literals[n - 1]`. Comments, string
/// literals and quoted identifiers are copied as they are (the statement has no dollar quotes).
pub fn substitute(sql: &str, literals: &[String]) -> Result<String, &'static str> {
    let bytes = sql.as_bytes();
    let mut out =
        String::with_capacity(sql.len() + literals.iter().map(String::len).sum::<usize>());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            q @ (b'\'' | b'"') => {
                // To the closing quote; a doubled quote inside is two closings in a row.
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n: usize = sql[i + 1..i + 1 + digits]
                    .parse()
                    .map_err(|_| "a $ not followed by a parameter number")?;
                let value = n
                    .checked_sub(1)
                    .and_then(|k| literals.get(k))
                    .ok_or("a parameter with no value")?;
                out.push_str(&sql[copied..i]);
                out.push_str(value);
                i += 1 + digits;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Ok(out)
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
    fn control_characters_are_exactly_c0_del_and_c1() {
        for c in (0u32..0x20).chain([0x7f]).chain(0x80..0xa0) {
            let c = char::from_u32(c).unwrap();
            assert_eq!(find_control_character(&format!("a{c}b")), Some(c), "{c:?}");
        }
        for printable in [
            "Größe",
            "naïve ü",
            "emoji 🦀",
            "\u{a0}nbsp",
            "\u{2028}",
            "日本語",
        ] {
            assert_eq!(find_control_character(printable), None, "{printable}");
        }
        assert_eq!(
            escape_control_characters("a\u{0}b\u{85}c"),
            r"a\u{0}b\u{85}c"
        );
        assert_eq!(escape_control_characters("Größe"), "Größe");
    }

    #[test]
    fn quoting_and_literals_escape_everything() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b'; DROP"), r"E'a\\b''; DROP'");
    }

    #[test]
    fn array_literals_escape_elements_then_the_literal() {
        let values = [
            Some("a"),
            None,
            Some(r#"b"c"#),
            Some(r"d\e'f"),
            Some("NULL"),
        ];
        assert_eq!(
            array_literal(&mut values.into_iter()),
            r#"E'{"a",NULL,"b\\"c","d\\\\e''f","NULL"}'"#
        );
        assert_eq!(array_literal(&mut std::iter::empty()), "'{}'");
    }

    #[test]
    fn substitution_skips_comments_strings_and_identifiers() {
        let sql =
            "-- $1 in a comment\nSELECT $1::name[], '$2', \"$2\", 'it''s $1', $10, $2 -- $3\n";
        let literals: Vec<String> = (1..=10).map(|i| format!("<{i}>")).collect();
        assert_eq!(
            substitute(sql, &literals).unwrap(),
            "-- $1 in a comment\nSELECT <1>::name[], '$2', \"$2\", 'it''s $1', <10>, <2> -- $3\n"
        );
        assert!(substitute("SELECT $3", &literals[..2]).is_err());
        assert!(substitute("SELECT $x", &literals).is_err());
        assert!(substitute("SELECT $0", &literals).is_err());
    }
}
