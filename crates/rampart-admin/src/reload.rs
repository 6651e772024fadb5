//! `POST /admin/reload`: re-reads the config file the gateway started
//! from and swaps it in, or says why not (the old config keeps serving).

use http::{Response, StatusCode};
use rampart_proxy::body::Body;
use serde_json::json;

use crate::admin::Admin;
use crate::reply::{json_response, problem};

/// `POST /admin/reload` (bearer token checked by the caller).
pub(crate) async fn reload(admin: &Admin) -> Response<Body> {
    let Some(reloader) = &admin.reload else {
        return problem(
            StatusCode::CONFLICT,
            "reload-unavailable",
            "this gateway was not started from a config file",
        );
    };
    match reloader.reload().await {
        Ok(done) => json_response(
            StatusCode::OK,
            &json!({
                "status": if done.changed.is_empty() { "unchanged" } else { "reloaded" },
                "generation": done.generation,
                "changed": done.changed,
            }),
        ),
        Err(e) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload-rejected",
            format!("the new config was not applied; the previous one keeps serving: {e}"),
        ),
    }
}
