//! Which startup settings a settings statement sets back to their
//! session-start values: `RESET name`, `RESET ALL`, and `SET [SESSION] name
//! TO|= DEFAULT` (which PostgreSQL documents as `RESET name`). On a pooled
//! backend the client's startup values are session-level settings, so these
//! fall back to the server's defaults; the session sets the startup values
//! again (see `startup::Session::restore_startup_values`).

use bytes::Bytes;

use super::startup::StartupSetting;

/// The startup settings a `RESET` (or `SET … TO DEFAULT`) among
/// `statements` set back to the backend's defaults: PostgreSQL resets them to
/// their startup values instead.
pub(super) fn reset_by<'a>(
    settings: &'a [StartupSetting],
    statements: &[Bytes],
) -> Vec<&'a StartupSetting> {
    let mut reset: Vec<&StartupSetting> = Vec::new();
    for statement in statements {
        let Some(target) = reset_target(&String::from_utf8_lossy(statement)) else {
            continue;
        };
        let target = target.as_str();
        let hits = settings.iter().filter(|setting| {
            target.eq_ignore_ascii_case("all")
                || target.eq_ignore_ascii_case(&setting.name)
                || target.trim_matches('"') == setting.name
        });
        for setting in hits {
            if !reset.iter().any(|kept| std::ptr::eq(*kept, setting)) {
                reset.push(setting);
            }
        }
    }
    reset
}

/// What a settings statement resets to its session-start value: the name (or
/// `all`) after `RESET`, or the name of `SET [SESSION] name TO|= DEFAULT`,
/// which PostgreSQL documents as the same as `RESET name`.
fn reset_target(statement: &str) -> Option<String> {
    let spaced = statement.replace('=', " = ");
    let mut words = spaced
        .split_whitespace()
        .map(|word| word.trim_end_matches(';'))
        .filter(|word| !word.is_empty());
    let first = words.next()?;
    if first.eq_ignore_ascii_case("reset") {
        return words.next().map(str::to_string);
    }
    if !first.eq_ignore_ascii_case("set") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("session") {
        name = words.next()?;
    }
    let to = words.next()?;
    let value = words.next()?;
    let sets_default = (to.eq_ignore_ascii_case("to") || to == "=")
        && value.eq_ignore_ascii_case("default")
        && words.next().is_none();
    sets_default.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_names_the_startup_settings_it_undoes() {
        let settings = [
            StartupSetting {
                name: "statement_timeout".to_string(),
                value: "1s".to_string(),
            },
            StartupSetting {
                name: "search_path".to_string(),
                value: "app".to_string(),
            },
        ];
        let names = |statements: &[&'static str]| {
            let statements: Vec<Bytes> = statements
                .iter()
                .map(|s| Bytes::from_static(s.as_bytes()))
                .collect();
            reset_by(&settings, &statements)
                .into_iter()
                .map(|setting| setting.name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&["RESET Statement_Timeout"]), ["statement_timeout"]);
        assert_eq!(names(&["reset all"]), ["statement_timeout", "search_path"]);
        assert!(names(&["RESET work_mem", "SET search_path = x"]).is_empty());
        assert_eq!(
            names(&["SET statement_timeout TO DEFAULT"]),
            ["statement_timeout"]
        );
        assert_eq!(
            names(&["set session search_path=default;"]),
            ["search_path"]
        );
        assert!(names(&["SET search_path TO default_schema"]).is_empty());
        assert!(names(&["SET search_path TO DEFAULT, app"]).is_empty());
    }
}
