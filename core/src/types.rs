//! Type spellings before Postgres parses them.
//!
//! Built-in types are canonicalised by the server's type parser in the audit database. A name the
//! audit database does not know (an enum, a domain, any user type) is looked up on the target,
//! where the live tables are: first in the table's own schema, then in `public`, then on the
//! target's default search path — the places an application's migration would have created it.

use crate::ident;

/// True when the spelling names its schema (`public.year`, `"App".status[]`): a dot outside
/// double quotes and outside a modifier list.
pub fn is_qualified(spelling: &str) -> bool {
    let mut in_quotes = false;
    let mut depth = 0usize;
    for ch in spelling.chars() {
        match ch {
            '"' => in_quotes = !in_quotes,
            '(' | '[' if !in_quotes => depth += 1,
            ')' | ']' if !in_quotes => depth = depth.saturating_sub(1),
            '.' if !in_quotes && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// The spellings to try, in order, when resolving a user type on the target for a table in
/// `schema`.
pub fn target_candidates(schema: &str, spelling: &str) -> Vec<String> {
    let spelling = spelling.trim();
    if is_qualified(spelling) {
        return vec![spelling.to_string()];
    }
    let mut out = vec![format!("{}.{}", ident::quote(schema), spelling)];
    if schema != "public" {
        out.push(format!("public.{spelling}"));
    }
    out.push(spelling.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualification_ignores_dots_in_quotes_and_modifiers() {
        assert!(is_qualified("public.year"));
        assert!(is_qualified(r#""My.Schema".status"#));
        assert!(!is_qualified(r#""my.type""#));
        assert!(!is_qualified("numeric(10.2)"));
        assert!(!is_qualified("mpaa_rating[]"));
    }

    #[test]
    fn candidates_try_table_schema_then_public() {
        assert_eq!(
            target_candidates("app", "status"),
            vec![r#""app".status"#, "public.status", "status"]
        );
        assert_eq!(target_candidates("public", "year"), vec![r#""public".year"#, "year"]);
        assert_eq!(target_candidates("app", "x.status"), vec!["x.status"]);
    }
}
