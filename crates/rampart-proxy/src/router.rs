//! Finds the route for a request: the first `[[routes]]` entry whose host
//! (when it names any), method and path pattern match.

use std::sync::Arc;

use http::Method;
use rampart_config::RouteConfig;

/// One route and its place in the table (its index labels metrics).
#[derive(Debug)]
pub struct Route {
    /// Its position in `[[routes]]`.
    pub index: usize,
    /// Its settings.
    pub config: RouteConfig,
}

/// The routing table.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// A router over routes in priority order.
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Self {
            routes: routes
                .into_iter()
                .enumerate()
                .map(|(index, config)| Arc::new(Route { index, config }))
                .collect(),
        }
    }

    /// The first matching route; `host` is the request's `Host` value.
    pub fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            let hosts = &r.config.hosts;
            (hosts.is_empty() || host.is_some_and(|h| hosts.iter().any(|p| p.matches(h))))
                && r.config.matcher.matches_method(method)
                && r.config.matcher.path.matches(path).is_some()
        })
    }

    /// The route at `index`.
    pub fn get(&self, index: usize) -> Option<&Arc<Route>> {
        self.routes.get(index)
    }

    /// All routes, in order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}
