//! Finds the route for a request: the first `[[routes]]` entry whose method
//! and path pattern match.

use http::Method;
use rampart_config::RouteConfig;

/// The routing table.
#[derive(Debug)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

impl Router {
    /// A router over routes in priority order.
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Self { routes }
    }

    /// The index of the first matching route.
    pub fn find(&self, method: &Method, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| {
            r.matcher.matches_method(method) && r.matcher.path.matches(path).is_some()
        })
    }

    /// The route at `index`.
    pub fn route(&self, index: usize) -> &RouteConfig {
        &self.routes[index]
    }

    /// All routes.
    pub fn routes(&self) -> &[RouteConfig] {
        &self.routes
    }
}
