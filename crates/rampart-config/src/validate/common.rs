//! What every section's validation shares.

use rampart_core::Template;
use toml::Spanned;

use crate::raw;

/// A validation error: the byte offset of the offending value and what is
/// wrong with it.
pub type Invalid = (usize, String);

/// A config template (`"event:{id}"`): parsed, and never empty.
pub(super) fn template(text: &Spanned<raw::Text>) -> Result<Template, Invalid> {
    let at = text.span().start;
    if text.get_ref().0.is_empty() {
        return Err((at, "a template may not be empty".into()));
    }
    Template::parse(&text.get_ref().0).map_err(|e| (at, e.to_string()))
}

/// A value that names one of `choices` (`default` when absent); anything
/// else is an error listing them: `unknown WHAT "x"; use "a" or "b"`.
pub(super) fn one_of<T: Copy>(
    value: Option<&Spanned<raw::Text>>,
    what: &str,
    choices: &[(&str, T)],
    default: T,
) -> Result<T, Invalid> {
    let Some(value) = value else {
        return Ok(default);
    };
    let given = value.get_ref().0.as_str();
    if let Some((_, choice)) = choices.iter().find(|(name, _)| *name == given) {
        return Ok(*choice);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    let listed = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err((
        value.span().start,
        format!("unknown {what} {given:?}; use {listed}"),
    ))
}
