//! What differs between two configs, by section, as a reload reports it.

use rampart_config::Config;

/// How a change of `[tracing]` is reported: the exporter is set up once,
/// at start.
pub(crate) const TRACING_AT_RESTART: &str = "tracing (applies at the next start)";

/// The sections of `new` that differ from `old` (`server.listen`,
/// `upstreams.api`, `routes`…), in file order; empty when none do.
pub(crate) fn changed(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |differs: bool, name: &str| {
        if differs {
            out.push(name.to_string());
        }
    };
    note(old.server.listen != new.server.listen, "server.listen");
    let (mut a, mut b) = (old.server.clone(), new.server.clone());
    a.listen = b.listen;
    note(a != b, "server");
    b.listen = a.listen;
    note(
        old.admin.as_ref().map(|a| a.listen) != new.admin.as_ref().map(|a| a.listen),
        "admin.listen",
    );
    note(
        old.admin
            .as_ref()
            .map(|a| (&a.token, &a.webhook_secret, a.ready))
            != new
                .admin
                .as_ref()
                .map(|a| (&a.token, &a.webhook_secret, a.ready)),
        "admin",
    );
    note(old.cache.redis != new.cache.redis, "cache.redis");
    let (mut a, mut b) = (old.cache.clone(), new.cache.clone());
    a.redis = None;
    b.redis = None;
    note(a != b, "cache");
    note(old.compression != new.compression, "compression");
    note(old.log != new.log, "log");
    note(old.tracing != new.tracing, TRACING_AT_RESTART);
    for u in &new.upstreams {
        match old.upstreams.iter().find(|o| o.name == u.name) {
            None => note(true, &format!("upstreams.{} (added)", u.name)),
            Some(o) => note(o != u, &format!("upstreams.{}", u.name)),
        }
    }
    for o in &old.upstreams {
        if !new.upstreams.iter().any(|u| u.name == o.name) {
            note(true, &format!("upstreams.{} (removed)", o.name));
        }
    }
    note(old.priority_weights != new.priority_weights, "priorities");
    note(old.routes != new.routes, "routes");
    note(old.events != new.events, "events");
    note(old.warmers != new.warmers, "warmers");
    out
}
