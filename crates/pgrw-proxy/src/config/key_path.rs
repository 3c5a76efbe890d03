//! A TOML error in words an operator acts on: the key path at fault
//! (`nodes[1].port`), found from the error's position in the file, the
//! parser's complaint, where it is, and the fix.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
enum Step {
    Key(String),
    Index(usize),
}

/// `error` (from deserializing `text`) as `` `nodes[1].port`: invalid type: string "x",
/// expected u16 (line 9, column 8); fix: … ``, or the parser's own message when
/// the text is not TOML at all (its message shows the line).
pub(super) fn describe(text: &str, error: &toml::de::Error) -> String {
    let (Some(span), Ok(document)) = (error.span(), DeTable::parse(text)) else {
        return error.to_string().trim_end().to_string();
    };
    let message = error.message().trim_end();
    let mut path = Vec::new();
    find_in_table(document.get_ref(), span.start, &mut path);
    let mut key = render(&path);
    // A missing key is reported at its table: name the key itself.
    if let Some(missing) = between(message, "missing field `", "`") {
        key = if key.is_empty() {
            missing.to_string()
        } else {
            format!("{key}.{missing}")
        };
    }
    let (line, column) = line_and_column(text, &span);
    let at = if key.is_empty() {
        String::new()
    } else {
        format!("`{key}`: ")
    };
    format!(
        "{at}{message} (line {line}, column {column}); fix: {}",
        fix_for(message)
    )
}

fn fix_for(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "remove the key or correct its spelling (docs/configuration.md lists every key)"
    } else if message.starts_with("missing field") {
        "add the key (docs/configuration.md says what it takes)"
    } else if message.starts_with("unknown variant") {
        "use one of the values listed"
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "give it a value of the expected type (docs/configuration.md)"
    } else {
        "see docs/configuration.md"
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn line_and_column(text: &str, span: &Range<usize>) -> (usize, usize) {
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
    (line, column)
}

fn render(path: &[Step]) -> String {
    let mut key = String::new();
    for step in path {
        match step {
            Step::Key(name) if key.is_empty() => key.push_str(name),
            Step::Key(name) => {
                key.push('.');
                key.push_str(name);
            }
            Step::Index(index) => key.push_str(&format!("[{index}]")),
        }
    }
    key
}

/// Extends `path` to the innermost key or value of `table` at `offset`.
fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<Step>) -> bool {
    for (key, value) in table.iter() {
        path.push(Step::Key(key.get_ref().to_string()));
        if find_in_value(value, offset, path) || key.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<Step>) -> bool {
    let inside = value.span().contains(&offset);
    match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, offset, path) || inside,
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Step::Index(index));
                if find_in_value(item, offset, path) {
                    return true;
                }
                path.pop();
            }
            inside
        }
        _ => inside,
    }
}
