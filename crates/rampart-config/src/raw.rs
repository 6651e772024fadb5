#![allow(missing_docs)] // Fields mirror the keys documented in docs/configuration.md.
//! Stage one: the file as serde sees it. Every scalar that needs parsing
//! (durations, sizes, addresses, patterns) parses inside its `Deserialize`
//! impl, so a bad value is reported by the TOML parser with its exact span.
//! Unknown keys are errors everywhere (`deny_unknown_fields`).

use std::net::SocketAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use rampart_core::env;
pub use rampart_core::units::{Dur, Size};

use crate::pattern::RouteMatch;

/// A string with `${ENV}` expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        env::expand(&raw, env::process)
            .map(Text)
            .map_err(de::Error::custom)
    }
}

/// Deserializes a [`Text`] and parses it with `parse`.
fn parsed<'de, D, T, E>(d: D, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: std::fmt::Display,
{
    let text = Text::deserialize(d)?;
    parse(&text.0).map_err(de::Error::custom)
}

/// A socket address to listen on, `"127.0.0.1:8080"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, |s| {
            s.parse::<SocketAddr>()
                .map(Listen)
                .map_err(|_| format!("invalid address {s:?}: write it like \"127.0.0.1:8080\""))
        })
    }
}

/// A network in CIDR notation, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, |s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(Cidr)
                .map_err(|_| {
                    format!("invalid network {s:?}: write it like \"10.0.0.0/8\" or \"127.0.0.1\"")
                })
        })
    }
}

/// An upstream target, `"host:port"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub String, pub bool);

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, |s| {
            let err = || {
                format!(
                    "invalid target {s:?}: write it like \"127.0.0.1:3000\", \"app.internal:80\" or \"https://api.internal:443\""
                )
            };
            let (rest, https) = match (s.strip_prefix("https://"), s.strip_prefix("http://")) {
                (Some(r), _) => (r, true),
                (None, Some(r)) => (r, false),
                (None, None) => (s, false),
            };
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = rest.rsplit_once(':').ok_or_else(err)?;
            port.parse::<u16>().map_err(|_| err())?;
            if host.is_empty() || host.contains('/') || rest.contains("://") {
                return Err(err());
            }
            Ok(Target(rest.to_string(), https))
        })
    }
}

/// An upstream's `tls = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<Spanned<Text>>,
    pub server_name: Option<Spanned<Text>>,
    pub cert: Option<Spanned<Text>>,
    pub key: Option<Spanned<Text>>,
    pub danger_accept_invalid_certs: Option<bool>,
}

impl<'de> Deserialize<'de> for RouteMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, RouteMatch::parse)
    }
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Listen>,
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    pub max_header_size: Option<Size>,
    pub max_body_size: Option<Size>,
    pub header_read_timeout: Option<Dur>,
    pub shutdown_timeout: Option<Dur>,
    pub max_connections: Option<u32>,
    pub max_limit_keys: Option<u32>,
    pub strip_from_untrusted: Option<Vec<Spanned<Text>>>,
    pub tls: Option<Spanned<RawTls>>,
    pub reload_on_change: Option<Dur>,
}

/// `[server] tls = { cert, key }` or `[server.tls]` with `[[server.tls.certs]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<Spanned<Text>>,
    pub key: Option<Spanned<Text>>,
    pub certs: Option<Vec<RawCert>>,
    pub redirect_from: Option<Listen>,
    pub hsts: Option<Spanned<Text>>,
}

/// `[[server.tls.certs]]`: a certificate for some host names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCert {
    pub hosts: Spanned<OneOrList>,
    pub cert: Spanned<Text>,
    pub key: Spanned<Text>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Listen,
    pub token: Option<Spanned<Text>>,
    pub webhook_secret: Option<Spanned<Text>>,
    pub ready: Option<Spanned<Text>>,
}

/// `[cache]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub memory: Option<Spanned<Size>>,
    pub max_object_size: Option<Size>,
    pub coalesce_timeout: Option<Dur>,
    pub max_variants: Option<u32>,
    pub redis: Option<Spanned<Text>>,
    pub redis_timeout: Option<Dur>,
    pub redis_prefix: Option<Text>,
    pub expose_tags: Option<bool>,
    pub purge_sync: Option<Dur>,
}

/// `[compression]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    pub enabled: Option<bool>,
    pub min_size: Option<Size>,
    pub types: Option<Vec<Text>>,
    pub algorithms: Option<Vec<Spanned<Text>>>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub access: Option<bool>,
    pub access_sample: Option<Spanned<f64>>,
    pub access_format: Option<Spanned<Text>>,
    pub access_file: Option<Spanned<Text>>,
}

/// `[tracing]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    pub otlp_endpoint: Option<Spanned<Text>>,
    pub service_name: Option<Spanned<Text>>,
    pub sample: Option<Spanned<f64>>,
    pub timeout: Option<Spanned<Dur>>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Spanned<Text>>,
}

/// `[[upstreams]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Spanned<Text>,
    pub targets: Spanned<Vec<Target>>,
    pub connect_timeout: Option<Dur>,
    pub timeout: Option<Dur>,
    pub max_idle_per_target: Option<u32>,
    pub idle_timeout: Option<Dur>,
    pub circuit: Option<Spanned<RawCircuit>>,
    pub max_concurrency: Option<u32>,
    pub queue: Option<RawQueue>,
    pub health: Option<Spanned<RawHealth>>,
    pub balance: Option<Spanned<Text>>,
    pub retry: Option<bool>,
    pub host_header: Option<Spanned<Text>>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
    pub h2c: Option<Spanned<bool>>,
}

/// An upstream's `health = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: Spanned<Text>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub healthy_after: Option<u32>,
    pub unhealthy_after: Option<u32>,
}

/// An upstream's `queue = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub size: u32,
    pub timeout: Dur,
}

/// `[priorities]`: weights of the four classes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPriorities {
    pub critical: Option<u32>,
    pub high: Option<u32>,
    pub default: Option<u32>,
    pub low: Option<u32>,
}

/// An upstream's `circuit = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuit {
    pub failures: Option<u32>,
    pub failure_rate: Option<f64>,
    pub window: Option<u32>,
    pub min_requests: Option<u32>,
    pub open_for: Option<Dur>,
    pub probes: Option<u32>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<Spanned<Text>>,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub upstream: Spanned<Text>,
    pub cache: Option<Spanned<RawCachePolicy>>,
    pub compress: Option<bool>,
    pub timeout: Option<Dur>,
    pub limit: Option<Spanned<OneOrMany<RawLimit>>>,
    pub priority: Option<Spanned<Text>>,
    pub host: Option<Spanned<OneOrList>>,
    pub strip_prefix: Option<Spanned<Text>>,
    pub rewrite: Option<Spanned<Text>>,
    pub request_headers: Option<Spanned<RawHeaderEdits>>,
    pub response_headers: Option<Spanned<RawHeaderEdits>>,
    pub upgrade: Option<RawUpgrade>,
}

/// `upgrade = true` or `upgrade = { idle_timeout = "…", max_lifetime = "…" }`.
#[derive(Debug, Default)]
pub struct RawUpgrade {
    pub enabled: bool,
    pub idle_timeout: Option<Dur>,
    pub max_lifetime: Option<Dur>,
}

impl<'de> Deserialize<'de> for RawUpgrade {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            idle_timeout: Option<Dur>,
            max_lifetime: Option<Dur>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawUpgrade;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a table { idle_timeout, max_lifetime }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawUpgrade {
                    enabled: v,
                    ..RawUpgrade::default()
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawUpgrade {
                    enabled: true,
                    idle_timeout: t.idle_timeout,
                    max_lifetime: t.max_lifetime,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `request_headers` / `response_headers = { set = {…}, add = {…}, remove = […] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderEdits {
    pub set: Option<std::collections::BTreeMap<String, Text>>,
    pub add: Option<std::collections::BTreeMap<String, Text>>,
    pub remove: Option<Vec<Text>>,
}

/// One string or a list of strings.
#[derive(Debug)]
pub struct OneOrList(pub Vec<Text>);

impl<'de> Deserialize<'de> for OneOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                env::expand(v, env::process)
                    .map(|t| OneOrList(vec![Text(t)]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<Text>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrList)
            }
        }
        d.deserialize_any(V)
    }
}

/// One table or a list of them. (Not a serde untagged enum: that would
/// replace the inner error, which names the wrong key, with a generic one.)
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table or an array of tables")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A route's `limit = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    pub name: Option<Text>,
    pub rate: u32,
    pub per: Dur,
    pub burst: Option<u32>,
    pub key: Option<Text>,
    pub scope: Option<Text>,
}

/// A route's `cache = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCachePolicy {
    pub ttl: Option<Dur>,
    pub respect_origin: Option<bool>,
    pub heuristic: Option<bool>,
    pub stale_while_revalidate: Option<Dur>,
    pub stale_if_error: Option<Dur>,
    pub key: Option<Vec<Spanned<Text>>>,
    pub statuses: Option<Vec<Spanned<u16>>>,
    pub tags: Option<Vec<Spanned<Text>>>,
    pub refresh_ahead: Option<Dur>,
    pub cookies: Option<Spanned<TextOrList>>,
    pub set_cookie: Option<Spanned<Text>>,
    pub authorization: Option<Spanned<Text>>,
    pub keep_stale: Option<Dur>,
    pub ignore_must_revalidate: Option<bool>,
}

/// A string or a list of strings (`cookies = "bypass"`, `cookies = ["lang"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextOrList {
    /// One string.
    Text(String),
    /// A list.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for TextOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextOrList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextOrList, E> {
                Ok(TextOrList::Text(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TextOrList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item);
                }
                Ok(TextOrList::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub compression: RawCompression,
    #[serde(default)]
    pub log: RawLog,
    pub tracing: Option<Spanned<RawTracing>>,
    #[serde(default)]
    pub priorities: RawPriorities,
    #[serde(default)]
    pub upstreams: Vec<RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub events: Vec<RawEvent>,
    #[serde(default)]
    pub warmers: Vec<RawWarmer>,
}

/// `[[warmers]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarmer {
    pub url: Spanned<Text>,
    pub every: Spanned<Dur>,
}

/// `[[events]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub name: Spanned<Text>,
    pub purge_tags: Option<Vec<Spanned<Text>>>,
    pub purge_keys: Option<Vec<Spanned<Text>>>,
}
