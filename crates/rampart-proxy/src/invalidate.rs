//! The one owner of purges. The [`Invalidator`] applies every purge to
//! this node's memory tier and the shared tier and publishes it to the other
//! nodes, counts it by source, and applies what arrives from them (over a
//! channel from `rampart_cluster::fanout`). Domain events name the tags and
//! keys they purge as templates over the event's JSON body; everything a
//! purge or an event asks for is checked before anything is removed.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::{HeaderMap, Method, StatusCode};
use rampart_cache::key::same_origin_key;
use rampart_cache::{Purge, PurgeSource, Purged};
use rampart_cluster::{l2, Delivery, Incoming};
use rampart_config::{EventConfig, Template};

use crate::metrics::Metrics;
use crate::request::RequestHead;
use crate::tiers::Tiers;

/// Applies purges to every tier and fans them out.
pub struct Invalidator {
    tiers: Arc<Tiers>,
    events: Vec<EventConfig>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidator")
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Invalidator {
    /// The invalidator of `tiers`, knowing the configured `[[events]]`.
    pub fn new(tiers: Arc<Tiers>, events: Vec<EventConfig>, metrics: Arc<Metrics>) -> Self {
        Self {
            tiers,
            events,
            metrics,
        }
    }

    /// Applies a validated purge: this node's memory tier now, the shared
    /// tier and the other nodes through Redis when configured; counts it
    /// under `source`.
    pub async fn purge(&self, purge: &Purge, source: PurgeSource) -> Purged {
        let mut purged = purge.apply(&self.tiers.l1);
        if let Some(redis) = &self.tiers.redis {
            purged = purged.max(l2::purge(redis, purge).await);
            if let Some(fanout) = &self.tiers.fanout {
                fanout.publish(purge).await;
            }
        }
        self.metrics.purged(source, purged.total());
        purged
    }

    /// Applies the event `name` with its JSON `body` (counted as an event,
    /// its purge under `source`); returns the purge it asked for.
    pub async fn event(
        &self,
        name: &str,
        body: &[u8],
        source: PurgeSource,
    ) -> Result<(Purge, Purged), EventError> {
        let purge = event_purge(&self.events, name, body)?;
        self.metrics.event(name);
        let purged = self.purge(&purge, source).await;
        Ok((purge, purged))
    }

    /// What a successful unsafe request invalidates (RFC 9111 §4.4): its own
    /// URL and the same-host URLs its `Location` and `Content-Location` name.
    pub async fn after_unsafe(&self, head: &RequestHead, status: StatusCode, headers: &HeaderMap) {
        if matches!(
            head.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || !(status.is_success() || status.is_redirection())
        {
            return;
        }
        let mut keys = vec![head.primary_key()];
        if let Some(host) = head.headers.get(HOST).and_then(|h| h.to_str().ok()) {
            for name in [LOCATION, CONTENT_LOCATION] {
                if let Some(target) = headers.get(&name).and_then(|v| same_origin_key(host, v)) {
                    keys.push(target);
                }
            }
        }
        let purge = Purge {
            keys,
            ..Default::default()
        };
        self.purge(&purge, PurgeSource::Method).await;
    }

    /// Applies what the fan-out delivers, then acknowledges it.
    pub async fn deliver(&self, delivery: Delivery) {
        match &delivery.incoming {
            Incoming::Peer(purge) => {
                let purged = purge.apply(&self.tiers.l1);
                self.metrics.purged(PurgeSource::Peer, purged.total());
            }
            Incoming::Event { name, data } => {
                if let Err(e) = self.event(name, data, PurgeSource::Pubsub).await {
                    tracing::warn!(error = %e, "ignored an event published on redis");
                }
            }
            Incoming::Flush(why) => {
                let n = self.tiers.l1.purge_all();
                self.metrics.purged(PurgeSource::Flush, n);
                tracing::warn!(
                    keys = n,
                    why = why.as_str(),
                    "memory cache flushed: purges may have been missed"
                );
            }
        }
        delivery.done();
    }
}

/// Why an event could not be turned into a purge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// No `[[events]]` entry of that name.
    #[error("no event named {0:?} is configured")]
    Unknown(String),
    /// The body is not a JSON object.
    #[error("the event body must be a JSON object: {0}")]
    NotAnObject(String),
    /// A template names a field the body lacks (or holds a non-scalar).
    #[error("{template:?} needs the field {field:?}, which the event body lacks (or is not a string, number or boolean)")]
    MissingField {
        /// The template.
        template: String,
        /// The field.
        field: String,
    },
}

/// A field of the body by dotted path (`user.id`), as text.
fn field(body: &serde_json::Value, path: &str) -> Option<String> {
    let mut v = body;
    for part in path.split('.') {
        v = match v {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn render_all(list: &[Template], body: &serde_json::Value) -> Result<Vec<String>, EventError> {
    list.iter()
        .map(|t| {
            t.render(|f| field(body, f).map(Cow::Owned))
                .map_err(|f| EventError::MissingField {
                    template: t.source.clone(),
                    field: f.to_string(),
                })
        })
        .collect()
}

/// The purge an event asks for.
pub fn event_purge(events: &[EventConfig], name: &str, body: &[u8]) -> Result<Purge, EventError> {
    let event = events
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| EventError::Unknown(name.to_string()))?;
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| EventError::NotAnObject(e.to_string()))?
    };
    if !value.is_object() {
        return Err(EventError::NotAnObject("it is not an object".into()));
    }
    let purge = Purge {
        tags: render_all(&event.purge_tags, &value)?,
        keys: render_all(&event.purge_keys, &value)?,
        prefixes: Vec::new(),
        globs: Vec::new(),
    };
    Ok(purge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tags: &[&str], keys: &[&str]) -> EventConfig {
        EventConfig {
            name: "event.updated".into(),
            purge_tags: tags.iter().map(|t| Template::parse(t).unwrap()).collect(),
            purge_keys: keys.iter().map(|t| Template::parse(t).unwrap()).collect(),
        }
    }

    #[test]
    fn events_fill_their_templates_from_the_body() {
        let events = [event(
            &["event:{id}", "events:list", "org:{org.id}"],
            &["/events/{id}"],
        )];
        let p = event_purge(
            &events,
            "event.updated",
            br#"{"id": 42, "org": {"id": "acme"}}"#,
        )
        .unwrap();
        assert_eq!(p.tags, ["event:42", "events:list", "org:acme"]);
        assert_eq!(p.keys, ["/events/42"]);
        assert_eq!(
            event_purge(&events, "event.updated", br#"{"org": {"id": "acme"}}"#),
            Err(EventError::MissingField {
                template: "event:{id}".into(),
                field: "id".into()
            })
        );
        assert!(matches!(
            event_purge(&events, "event.deleted", b"{}"),
            Err(EventError::Unknown(_))
        ));
        assert!(matches!(
            event_purge(&events, "event.updated", b"[1]"),
            Err(EventError::NotAnObject(_))
        ));
    }
}
