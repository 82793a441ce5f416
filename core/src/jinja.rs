//! The sliver of Jinja that dbt source names carry in real projects.
//!
//! dbt renders every source, table and column name (and `schema`, `identifier`, `database`) as
//! Jinja at parse time. drift_watch stores the contract without a dbt runtime, so it resolves
//! `{{ env_var('NAME', 'default') }}` and `{{ var('name', 'default') }}` to their defaults and
//! refuses anything else with a clear message: the compiled `target/manifest.json` is the exact
//! path for projects that depend on real environment variables or vars.

/// Why a templated value could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JinjaError(pub String);

/// Renders `text`, replacing each `{{ env_var(..) }}` / `{{ var(..) }}` with its default.
pub fn render(text: &str) -> Result<String, JinjaError> {
    if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|open| rest.find(open).map(|at| (at, *open)))
            .min_by_key(|(at, _)| *at);
        let Some((at, open)) = next else {
            out.push_str(rest);
            return Ok(out);
        };
        if open != "{{" {
            return Err(JinjaError(format!(
                "Jinja statements and comments (`{open} ... `) are not supported here; \
                 load the compiled target/manifest.json instead"
            )));
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(close) = after.find("}}") else {
            return Err(JinjaError("unterminated `{{` expression".into()));
        };
        out.push_str(&eval_call(after[..close].trim())?);
        rest = &after[close + 2..];
    }
}

/// Evaluates `env_var('X', 'd')` or `var('x', 'd')` to `d`.
fn eval_call(expr: &str) -> Result<String, JinjaError> {
    let unsupported = || {
        JinjaError(format!(
            "unsupported Jinja expression `{{{{ {expr} }}}}`: only env_var('NAME', 'default') and \
             var('name', 'default') are resolved (to their defaults); load the compiled \
             target/manifest.json for anything else"
        ))
    };
    let open = expr.find('(').ok_or_else(unsupported)?;
    let func = expr[..open].trim();
    if func != "env_var" && func != "var" {
        return Err(unsupported());
    }
    let inner = expr[open + 1..].trim_end();
    let inner = inner.strip_suffix(')').ok_or_else(unsupported)?;
    let args = string_args(inner).ok_or_else(unsupported)?;
    match args.as_slice() {
        [name, default] => {
            let _ = name;
            Ok(default.clone())
        }
        [name] => Err(JinjaError(format!(
            "`{func}('{name}')` has no default, so its value is only known to a dbt run; \
             give it a default or load the compiled target/manifest.json"
        ))),
        _ => Err(unsupported()),
    }
}

/// Parses a comma-separated list of quoted string literals.
fn string_args(mut s: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Some(args);
        }
        let quote = s.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let body = &s[1..];
        let end = body.find(quote)?;
        args.push(body[..end].to_string());
        s = body[end + 1..].trim_start();
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.is_empty() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        assert_eq!(render("public").unwrap(), "public");
    }

    #[test]
    fn env_var_and_var_resolve_to_defaults() {
        assert_eq!(render("{{ env_var('APP_SCHEMA', 'app') }}").unwrap(), "app");
        assert_eq!(render(r#"{{var("src_db","raw")}}_x"#).unwrap(), "raw_x");
        assert_eq!(
            render("pre_{{ env_var('A', 'a') }}_{{ var('b', 'b') }}").unwrap(),
            "pre_a_b"
        );
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        let no_default = render("{{ env_var('APP_SCHEMA') }}").unwrap_err();
        assert!(no_default.0.contains("has no default"), "{no_default:?}");
        let other = render("{{ target.schema }}").unwrap_err();
        assert!(
            other.0.contains("unsupported Jinja expression"),
            "{other:?}"
        );
        let stmt = render("{% if x %}a{% endif %}").unwrap_err();
        assert!(stmt.0.contains("not supported"), "{stmt:?}");
        assert!(render("{{ var('x', 'y')").is_err());
    }
}
