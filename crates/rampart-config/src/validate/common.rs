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
