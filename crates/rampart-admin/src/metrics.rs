//! `GET /metrics`: the gauges read at scrape time, then the Prometheus /
//! OpenMetrics text of every registered metric.

use http::header::CONTENT_TYPE;
use http::Response;
use rampart_proxy::body::{full, Body};

use crate::admin::Admin;

/// `GET /metrics`: gauges read at scrape time, then the exposition.
pub(crate) fn metrics(admin: &Admin) -> Response<Body> {
    let (l1, m) = (&admin.tiers.l1, &admin.metrics);
    l1.run_pending_tasks();
    m.l1_entries.set(l1.entry_count() as i64);
    m.l1_bytes.set(l1.weighted_size() as i64);
    let tags = l1.tag_index_size();
    m.l1_tags.set(tags.tags as i64);
    m.l1_tag_links.set(tags.links as i64);
    match &admin.tiers.redis {
        Some(redis) => m.redis_up.set(i64::from(redis.is_up())),
        None => m.redis_up.hide(),
    }
    let now = admin.clock.since_epoch();
    for (index, upstream) in admin.upstreams.pools().iter().enumerate() {
        if let Some(admission) = admin.upstreams.admission(index) {
            m.queue_capacity(&upstream.name, admission.capacity());
            for priority in rampart_config::Priority::ALL {
                m.queue_depth(
                    &upstream.name,
                    priority.as_str(),
                    admission.depth(priority.index()),
                );
            }
        }
        for (target, state) in upstream.breaker_states(now) {
            m.circuit_state(&upstream.name, target, state.as_gauge());
        }
        m.healthy_targets(&upstream.name, upstream.available(now));
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &admin.registry).is_err() {
        text.clear();
    }
    Response::builder()
        .header(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(full(text))
        .unwrap_or_default()
}
