//! `[[events]]` and `[[warmers]]`: what a domain event purges, which URLs
//! are refetched on a schedule.

use std::time::Duration;

use rampart_core::Template;

use crate::model::{EventConfig, RouteConfig, WarmerConfig};
use crate::raw;

use super::common::Invalid;

/// Every event, names unique and each purging something.
pub(super) fn events(raw: Vec<raw::RawEvent>) -> Result<Vec<EventConfig>, Invalid> {
    let mut events: Vec<EventConfig> = Vec::new();
    for e in raw {
        let at = e.name.span().start;
        let name = e.name.into_inner().0;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
        {
            return Err((
                at,
                format!("event name {name:?} may hold only letters, digits and . _ : -"),
            ));
        }
        if events.iter().any(|x| x.name == name) {
            return Err((at, format!("event {name:?} is defined twice")));
        }
        let templates =
            |list: Option<Vec<toml::Spanned<raw::Text>>>| -> Result<Vec<Template>, Invalid> {
                list.unwrap_or_default()
                    .into_iter()
                    .map(|t| super::common::template(&t))
                    .collect()
            };
        let purge_tags = templates(e.purge_tags)?;
        let purge_keys = templates(e.purge_keys)?;
        if purge_tags.is_empty() && purge_keys.is_empty() {
            return Err((
                at,
                format!("event {name:?} purges nothing: give it purge_tags or purge_keys"),
            ));
        }
        events.push(EventConfig {
            name,
            purge_tags,
            purge_keys,
        });
    }
    Ok(events)
}

/// Every warmer, each on a caching route.
pub(super) fn warmers(
    raw: Vec<raw::RawWarmer>,
    routes: &[RouteConfig],
) -> Result<Vec<WarmerConfig>, Invalid> {
    let mut warmers = Vec::new();
    for w in raw {
        let at = w.url.span().start;
        let text = w.url.get_ref().0.clone();
        let url: http::Uri = text
            .parse()
            .ok()
            .filter(|u: &http::Uri| u.scheme_str() == Some("http") && u.host().is_some())
            .ok_or_else(|| (at, format!("warmer url {text:?} must be absolute: http://host/path (the host is the one clients use)")))?;
        let route = routes
            .iter()
            .position(|r| {
                r.matcher.matches_method(&http::Method::GET)
                    && r.matcher.path.matches(url.path()).is_some()
            })
            .ok_or_else(|| (at, format!("no route matches GET {}", url.path())))?;
        if routes[route].cache.is_none() {
            return Err((
                at,
                format!(
                    "GET {} is served by route {:?}, which does not cache",
                    url.path(),
                    routes[route].name
                ),
            ));
        }
        let every = w.every.get_ref().0;
        if every < Duration::from_secs(1) {
            return Err((
                w.every.span().start,
                "a warmer runs at most once a second".into(),
            ));
        }
        warmers.push(WarmerConfig { url, every, route });
    }
    Ok(warmers)
}
