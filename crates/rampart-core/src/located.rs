//! Errors in TOML files (the config, scenario files) located to a line, a
//! column and the dotted path of the field there (`routes[2].cache.ttl`), so
//! every error names the field a person has to fix.

use std::path::Path;

/// An error with its place in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct FileError {
    /// The file's name as given.
    pub file: String,
    /// 1-based line (0 when the error concerns the whole file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field (`routes[2].cache.ttl`), or `(file)`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FileError {
    /// An error at byte `offset` of `text`, located to line, column and field.
    pub fn at(text: &str, file: &str, offset: usize, message: String) -> Self {
        let loc = locate(text, offset);
        Self {
            file: file.to_string(),
            line: loc.line,
            column: loc.column,
            field: if loc.field.is_empty() {
                "(top level)".into()
            } else {
                loc.field
            },
            message,
        }
    }

    /// An error about the file as a whole (it cannot be read, it is empty).
    pub fn whole(file: &str, message: String) -> Self {
        Self {
            file: file.to_string(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message,
        }
    }

    /// A TOML syntax or type error, located.
    pub fn from_toml(text: &str, file: &str, e: &toml::de::Error) -> Self {
        Self::at(
            text,
            file,
            e.span().map_or(0, |s| s.start),
            e.message().trim().to_string(),
        )
    }
}

/// Reads a file as text, or says which file could not be read. Returns the
/// text and the file's name for errors.
pub fn read_text(path: &Path) -> Result<(String, String), FileError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, file)),
        Err(e) => Err(FileError::whole(&file, format!("cannot read: {e}"))),
    }
}

/// Parses TOML `text` into `T` and then into a typed value with `validate`,
/// whose errors carry the byte offset of the offending value.
pub fn parse_toml<T, V>(
    text: &str,
    file: &str,
    validate: impl FnOnce(T) -> Result<V, (usize, String)>,
) -> Result<V, FileError>
where
    T: serde::de::DeserializeOwned,
{
    let raw: T = toml::from_str(text).map_err(|e| FileError::from_toml(text, file, &e))?;
    validate(raw).map_err(|(offset, message)| FileError::at(text, file, offset, message))
}

/// Where an error is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Dotted field path, empty at the top level.
    pub field: String,
}

/// Locates `offset` in `text`.
pub fn locate(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    Location {
        line,
        column,
        field: field_path(text, offset),
    }
}

/// The byte offset of the value of the field at dotted path `field`
/// (`server.listen`) in `text`, when a line assigns it.
pub fn find_field(text: &str, field: &str) -> Option<usize> {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if let Some(eq) = line.find('=') {
            let value = start + eq + 1;
            if field_path(text, value) == field {
                return Some(value);
            }
        }
        start += line.len();
    }
    None
}

#[derive(Debug)]
enum Token<'a> {
    Key(&'a str),
    Equals,
    Open,
    Close,
    Newline,
    Other,
}

/// A small scanner: enough of TOML to know which key a byte belongs to.
fn field_path(text: &str, offset: usize) -> String {
    let mut table: Vec<String> = Vec::new();
    let mut array_counts: Vec<(String, usize)> = Vec::new();
    let mut inline: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut expecting_key = true;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && i <= offset {
        let start = i;
        let token = match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\n' => {
                i += 1;
                Token::Newline
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'"' | b'\'' => {
                let delim: &[u8] = match (
                    bytes[i],
                    bytes[i..].starts_with(b"\"\"\""),
                    bytes[i..].starts_with(b"\'\'\'"),
                ) {
                    (b'"', true, _) => b"\"\"\"",
                    (b'"', false, _) => b"\"",
                    (_, _, true) => b"\'\'\'",
                    _ => b"'",
                };
                let content_start = i + delim.len();
                let mut j = content_start;
                let mut content_end = bytes.len();
                while j < bytes.len() {
                    if delim[0] == b'"' && bytes[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if bytes[j..].starts_with(delim) {
                        content_end = j;
                        j += delim.len();
                        break;
                    }
                    j += 1;
                }
                i = j.min(bytes.len());
                if expecting_key {
                    Token::Key(
                        std::str::from_utf8(&bytes[content_start.min(content_end)..content_end])
                            .unwrap_or(""),
                    )
                } else {
                    Token::Other
                }
            }
            b'[' if expecting_key && inline.is_empty() => {
                // A table header: [name] or [[name]].
                let double = text[i..].starts_with("[[");
                let end = text[i..].find('\n').map_or(bytes.len(), |e| i + e);
                let header = &text[i..end];
                let name = header
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let parts: Vec<String> = name.split('.').map(|s| s.trim().to_string()).collect();
                if double {
                    // A new element of this array restarts the arrays nested in it.
                    let nested = format!("{name}.");
                    array_counts.retain(|(n, _)| !n.starts_with(&nested));
                    match array_counts.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, c)) => *c += 1,
                        None => array_counts.push((name.clone(), 1)),
                    }
                }
                // Each prefix that is an array of tables shows its current index.
                table = parts
                    .iter()
                    .enumerate()
                    .map(|(k, part)| {
                        let prefix = parts[..=k].join(".");
                        match array_counts.iter().find(|(n, _)| *n == prefix) {
                            Some((_, c)) => format!("{part}[{c}]"),
                            None => part.clone(),
                        }
                    })
                    .collect();
                current = None;
                i = end;
                continue;
            }
            b'=' => {
                i += 1;
                Token::Equals
            }
            b'{' => {
                i += 1;
                Token::Open
            }
            b'}' => {
                i += 1;
                Token::Close
            }
            b',' => {
                i += 1;
                if !inline.is_empty() {
                    expecting_key = true;
                }
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
                {
                    i += 1;
                }
                if expecting_key {
                    Token::Key(&text[start..i])
                } else {
                    Token::Other
                }
            }
            _ => {
                i += 1;
                Token::Other
            }
        };
        match token {
            Token::Key(k) => {
                if start <= offset {
                    current = Some(k.to_string());
                }
            }
            Token::Equals => expecting_key = false,
            Token::Open => {
                inline.push(current.take().unwrap_or_default());
                expecting_key = true;
            }
            Token::Close => {
                current = inline.pop();
                expecting_key = false;
            }
            Token::Newline => {
                if inline.is_empty() {
                    expecting_key = true;
                }
            }
            Token::Other => {}
        }
    }
    let mut parts: Vec<String> = table;
    parts.extend(inline.into_iter().filter(|s| !s.is_empty()));
    if let Some(k) = current {
        parts.push(k);
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, needle: &str) -> Location {
        locate(text, text.find(needle).unwrap())
    }

    #[test]
    fn names_fields_in_nested_arrays_of_tables() {
        let text = "[[flows]]\nname = \"a\"\n[[flows.steps]]\nurl = \"/1\"\n[[flows]]\nname = \"b\"\n[[flows.steps]]\nurl = \"/2\"\n[[flows.steps]]\nurl = \"/3\"\n";
        assert_eq!(at(text, "\"/1\"").field, "flows[1].steps[1].url");
        assert_eq!(at(text, "\"/2\"").field, "flows[2].steps[1].url");
        assert_eq!(at(text, "\"/3\"").field, "flows[2].steps[2].url");
    }

    #[test]
    fn names_fields_in_tables_arrays_and_inline_tables() {
        let text = "[server]\nlisten = \"x\"\n\n[[routes]]\nmatch = \"GET /a\"\n\n[[routes]]\nmatch = \"GET /b\"\ncache = { ttl = \"10x\", stale_if_error = \"1h\" }\n";
        let l = at(text, "\"x\"");
        assert_eq!((l.line, l.field.as_str()), (2, "server.listen"));
        let l = at(text, "\"GET /b\"");
        assert_eq!((l.line, l.field.as_str()), (8, "routes[2].match"));
        let l = at(text, "\"10x\"");
        assert_eq!(
            (l.line, l.column, l.field.as_str()),
            (9, 17, "routes[2].cache.ttl")
        );
        let l = at(text, "stale_if_error");
        assert_eq!(l.field, "routes[2].cache.stale_if_error");
    }

    #[test]
    fn finds_where_a_field_is_set() {
        let text = "# listen = \"nope\"\n[server]\nlisten = \"a\"\n[admin]\nlisten = \"b\"\n[server.tls]\nredirect_from = \"c\"\n";
        let line = |field| find_field(text, field).map(|o| locate(text, o).line);
        assert_eq!(line("server.listen"), Some(3));
        assert_eq!(line("admin.listen"), Some(5));
        assert_eq!(line("server.tls.redirect_from"), Some(7));
        assert_eq!(line("cache.redis"), None);
    }
}
