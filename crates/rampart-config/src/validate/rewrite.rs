//! A route's `host`, `strip_prefix`, `rewrite`, `request_headers` and
//! `response_headers`, and an upstream's `host_header`.

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use crate::model::HostHeader;
use crate::pattern::RouteMatch;
use crate::raw;
use crate::rewrite::{HeaderEdits, HostPattern, PathRewrite, PROTECTED_HEADERS};

use super::common::{template, Invalid};

/// A route's `host = "api.example.com"` or a list.
pub(super) fn hosts(raw: Option<Spanned<raw::OneOrList>>) -> Result<Vec<HostPattern>, Invalid> {
    match raw {
        None => Ok(Vec::new()),
        Some(raw) => host_list(
            raw,
            "host lists at least one name; leave it out to answer every host",
        ),
    }
}

/// Host patterns, at least one (`empty` says so otherwise).
pub(super) fn host_list(
    raw: Spanned<raw::OneOrList>,
    empty: &str,
) -> Result<Vec<HostPattern>, Invalid> {
    let at = raw.span().start;
    let list = raw.into_inner().0;
    if list.is_empty() {
        return Err((at, empty.into()));
    }
    list.iter()
        .map(|h| HostPattern::parse(&h.0).map_err(|e| (at, e)))
        .collect()
}

/// `strip_prefix` and `rewrite` (at most one: a rewrite names the whole path).
pub(super) fn path_rewrite(
    strip: Option<Spanned<raw::Text>>,
    rewrite: Option<Spanned<raw::Text>>,
    matcher: &RouteMatch,
) -> Result<PathRewrite, Invalid> {
    let mut out = PathRewrite::default();
    if let (Some(_), Some(r)) = (&strip, &rewrite) {
        return Err((
            r.span().start,
            "use strip_prefix or rewrite, not both (a rewrite names the whole path; {rest} is what the final * matched)".into(),
        ));
    }
    if let Some(s) = strip {
        let text = &s.get_ref().0;
        if !text.starts_with('/') || text.len() < 2 || text.ends_with('/') {
            return Err((
                s.span().start,
                format!("strip_prefix {text:?} must start with \"/\" and not end with one, such as \"/api\""),
            ));
        }
        out.strip_prefix = Some(text.clone());
    }
    if let Some(r) = rewrite {
        let at = r.span().start;
        let t = template(&r)?;
        if !r.get_ref().0.starts_with('/') {
            return Err((
                at,
                "a rewrite is a path starting with \"/\", such as \"/v2/{rest}\"".into(),
            ));
        }
        for var in t.vars() {
            let known = if var == "rest" {
                matcher.path.has_tail()
            } else {
                matcher.path.param_names().any(|n| n == var)
            };
            if !known {
                return Err((
                    at,
                    format!(
                        "rewrite uses {{{var}}}, which the route's match {:?} does not capture ({{rest}} needs a final *)",
                        matcher.as_str()
                    ),
                ));
            }
        }
        out.path = Some(t);
    }
    Ok(out)
}

/// `request_headers` / `response_headers`.
pub(super) fn header_edits(
    raw: Option<Spanned<raw::RawHeaderEdits>>,
) -> Result<HeaderEdits, Invalid> {
    let Some(raw) = raw else {
        return Ok(HeaderEdits::default());
    };
    let at = raw.span().start;
    let raw = raw.into_inner();
    let name = |n: &str| -> Result<HeaderName, Invalid> {
        let name = HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| (at, format!("{n:?} is not a header name")))?;
        if PROTECTED_HEADERS.contains(&name.as_str()) {
            return Err((
                at,
                format!("{n:?} cannot be edited: it frames the message or chooses the upstream (for Host, set the upstream's host_header)"),
            ));
        }
        Ok(name)
    };
    let pairs = |map: Option<std::collections::BTreeMap<String, raw::Text>>| {
        map.unwrap_or_default()
            .into_iter()
            .map(|(n, v)| {
                let value = HeaderValue::from_str(&v.0).map_err(|_| {
                    (
                        at,
                        format!("the value of {n:?} is not a valid header value"),
                    )
                })?;
                Ok((name(&n)?, value))
            })
            .collect::<Result<Vec<_>, Invalid>>()
    };
    Ok(HeaderEdits {
        set: pairs(raw.set)?,
        add: pairs(raw.add)?,
        remove: raw
            .remove
            .unwrap_or_default()
            .iter()
            .map(|n| name(&n.0))
            .collect::<Result<_, _>>()?,
    })
}

/// An upstream's `host_header = "client" | "target" | "<name>"`.
pub(super) fn host_header(raw: Option<&Spanned<raw::Text>>) -> Result<HostHeader, Invalid> {
    let Some(raw) = raw else {
        return Ok(HostHeader::Client);
    };
    Ok(match raw.get_ref().0.as_str() {
        "client" => HostHeader::Client,
        "target" => HostHeader::Target,
        other => {
            let pattern = HostPattern::parse(other.rsplit_once(':').map_or(other, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    other
                }
            }));
            match (pattern, HeaderValue::from_str(other)) {
                (Ok(HostPattern::Exact(_)), Ok(v)) => HostHeader::Fixed(v),
                _ => {
                    return Err((
                        raw.span().start,
                        format!("host_header {other:?}: use \"client\", \"target\" or a host name such as \"api.internal\""),
                    ))
                }
            }
        }
    })
}
