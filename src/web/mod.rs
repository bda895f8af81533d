//! The HTTP layer: route table, handlers, middleware and error mapping.

pub mod auth;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod handlers;
pub mod middleware;
pub mod rfc9110;
pub mod slow_clients;
pub mod state;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use auth::Policy;

use error::{ApiError, codes};

/// The route patterns the service registers: the bounded values of every `route` label
/// (plus `unmatched`), whose series are created at zero on start.
pub mod patterns {
    pub const HEALTH: &str = "/health";
    pub const HEALTH_DEEP: &str = "/health/deep";
    pub const TRACKS: &str = "/api/v1/tracks";
    pub const TRACK: &str = "/api/v1/tracks/{id}";
    pub const STREAM: &str = "/api/v1/tracks/{id}/stream";
    pub const DOWNLOAD: &str = "/api/v1/tracks/{id}/download";
    pub const PLAYLISTS: &str = "/api/v1/playlists";
    pub const PLAYLIST: &str = "/api/v1/playlists/{id}";
    pub const PLAYLIST_TRACKS: &str = "/api/v1/playlists/{id}/tracks";
    pub const HLS: &str = "/hls/{track_id}/{file}";
    pub const MEDIA: &str = "/media/{scope}/{expires}/{token}/{key:.*}";
    pub const LOGIN: &str = "/api/v1/auth/login";
    pub const LOGOUT: &str = "/api/v1/auth/logout";
    pub const SIGNUP: &str = "/api/v1/auth/signup";
    pub const ME: &str = "/api/v1/me";
    pub const MY_TOKENS: &str = "/api/v1/me/tokens";
    pub const MY_TOKEN: &str = "/api/v1/me/tokens/{id}";
    pub const USERS: &str = "/api/v1/users";
    pub const USER: &str = "/api/v1/users/{id}";
    pub const AUDIT: &str = "/api/v1/admin/audit";
    pub const ADMIN_MAIL: &str = "/api/v1/admin/mail";
    pub const METRICS: &str = "/metrics";
    pub const NOTICES: &str = "/api/v1/takedown-notices";
    pub const NOTICE_SUMMARY: &str = "/api/v1/takedown-notices/{id}/summary";
    pub const ADMIN_NOTICES: &str = "/api/v1/admin/takedown-notices";
    pub const ADMIN_NOTICE: &str = "/api/v1/admin/takedown-notices/{id}";
    pub const ADMIN_NOTICE_DECISION: &str = "/api/v1/admin/takedown-notices/{id}/decision";
    pub const ADMIN_NOTICE_COURT_ACTION: &str = "/api/v1/admin/takedown-notices/{id}/court-action";
    pub const ADMIN_NOTICE_RESTORE: &str = "/api/v1/admin/takedown-notices/{id}/restore";
    pub const COUNTER_NOTICE: &str = "/api/v1/tracks/{id}/counter-notice";
    pub const MY_TAKEDOWNS: &str = "/api/v1/me/takedowns";
}

/// One registered method of one route, and the policy it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub pattern: &'static str,
    pub method: Method,
    pub policy: Policy,
}

/// A method's handler(s) and policy, for [`Table::resource`].
pub struct Endpoint {
    method: Method,
    policy: Policy,
    routes: Vec<actix_web::Route>,
}

/// GET, with HEAD answered by the same handler (same headers, no body).
fn get<F, Args>(policy: Policy, handler: F) -> Endpoint
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    Endpoint {
        method: Method::GET,
        policy,
        routes: vec![web::get().to(handler.clone()), web::head().to(handler)],
    }
}

fn on<F, Args>(method: Method, policy: Policy, handler: F) -> Endpoint
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    Endpoint {
        routes: vec![web::method(method.clone()).to(handler)],
        method,
        policy,
    }
}

/// The route table as it is registered: every method of every route declares a policy
/// (there is no other way to add one), and [`route_table`] lists them for the tests.
struct Table<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    specs: Vec<RouteSpec>,
}

impl Table<'_> {
    /// Register `pattern`'s endpoints; any other method answers 405 with `Allow` and
    /// the JSON error body (actix's own 405 has neither).
    fn resource(&mut self, pattern: &'static str, endpoints: Vec<Endpoint>) {
        let mut allow: Vec<&str> = Vec::new();
        for e in &endpoints {
            self.specs.push(RouteSpec {
                pattern,
                method: e.method.clone(),
                policy: e.policy,
            });
            allow.push(e.method.as_str());
            if e.method == Method::GET {
                allow.push("HEAD");
            }
        }
        let Some(cfg) = self.cfg.as_deref_mut() else {
            return;
        };
        let allow = allow.join(", ");
        let mut resource = web::resource(pattern);
        for route in endpoints.into_iter().flat_map(|e| e.routes) {
            resource = resource.route(route);
        }
        cfg.service(resource.default_service(web::to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
                    method: req.method().to_string(),
                    allow,
                })
            }
        })));
    }
}

fn table(t: &mut Table<'_>) {
    use Policy::{Admin, Anyone, SignedIn, Staff};
    use handlers::{
        account, audit, health, mail, media, origin, playlist_writes, playlists, track_urls,
        track_writes, tracks, users,
    };
    t.resource(patterns::HEALTH, vec![get(Anyone, health::live)]);
    t.resource(patterns::HEALTH_DEEP, vec![get(Anyone, health::deep)]);
    t.resource(patterns::TRACKS, vec![get(Anyone, tracks::list)]);
    t.resource(
        patterns::TRACK,
        vec![
            get(Anyone, tracks::get),
            on(Method::PATCH, SignedIn, track_writes::update),
            on(Method::DELETE, SignedIn, track_writes::delete),
        ],
    );
    t.resource(patterns::STREAM, vec![get(Anyone, track_urls::stream)]);
    t.resource(patterns::DOWNLOAD, vec![get(Anyone, track_urls::download)]);
    t.resource(
        patterns::PLAYLISTS,
        vec![on(Method::POST, SignedIn, playlist_writes::create)],
    );
    t.resource(
        patterns::PLAYLIST,
        vec![
            get(Anyone, playlists::get),
            on(Method::PATCH, SignedIn, playlist_writes::update),
            on(Method::DELETE, SignedIn, playlist_writes::delete),
        ],
    );
    t.resource(
        patterns::PLAYLIST_TRACKS,
        vec![on(Method::PUT, SignedIn, playlist_writes::set_tracks)],
    );
    t.resource(patterns::HLS, vec![get(Anyone, origin::origin)]);
    t.resource(patterns::MEDIA, vec![get(Anyone, media::media)]);
    t.resource(
        patterns::LOGIN,
        vec![on(Method::POST, Anyone, account::login)],
    );
    t.resource(
        patterns::LOGOUT,
        vec![on(Method::POST, SignedIn, account::logout)],
    );
    t.resource(
        patterns::SIGNUP,
        vec![on(Method::POST, Anyone, account::signup)],
    );
    t.resource(patterns::ME, vec![get(SignedIn, account::me)]);
    t.resource(
        patterns::MY_TOKENS,
        vec![
            get(SignedIn, account::tokens),
            on(Method::POST, SignedIn, account::create_token),
        ],
    );
    t.resource(
        patterns::MY_TOKEN,
        vec![
            get(SignedIn, account::token),
            on(Method::DELETE, SignedIn, account::revoke_token),
        ],
    );
    t.resource(
        patterns::USERS,
        vec![
            get(Admin, users::list),
            on(Method::POST, Admin, users::create),
        ],
    );
    t.resource(
        patterns::USER,
        vec![
            get(Admin, users::get),
            on(Method::PATCH, Admin, users::update),
        ],
    );
    t.resource(patterns::AUDIT, vec![get(Staff, audit::list)]);
    t.resource(patterns::ADMIN_MAIL, vec![get(Staff, mail::list)]);
    takedown_routes(t);
}

fn takedown_routes(t: &mut Table<'_>) {
    use Policy::{Anyone, SignedIn, Staff};
    use handlers::takedowns as td;
    t.resource(
        patterns::NOTICES,
        vec![on(Method::POST, Anyone, td::submit)],
    );
    t.resource(patterns::NOTICE_SUMMARY, vec![get(Anyone, td::summary)]);
    t.resource(patterns::ADMIN_NOTICES, vec![get(Staff, td::list)]);
    t.resource(patterns::ADMIN_NOTICE, vec![get(Staff, td::get)]);
    t.resource(
        patterns::ADMIN_NOTICE_DECISION,
        vec![on(Method::POST, Staff, td::decide)],
    );
    t.resource(
        patterns::ADMIN_NOTICE_COURT_ACTION,
        vec![on(Method::POST, Staff, td::court_action)],
    );
    t.resource(
        patterns::ADMIN_NOTICE_RESTORE,
        vec![on(Method::POST, Staff, td::restore)],
    );
    t.resource(
        patterns::COUNTER_NOTICE,
        vec![on(Method::POST, SignedIn, td::counter_notice)],
    );
    t.resource(patterns::MY_TAKEDOWNS, vec![get(SignedIn, td::mine)]);
}

/// Every method of every route with its declared policy (the route × role tests walk
/// it; `/metrics` is [`metrics_route`]'s).
pub fn route_table() -> Vec<RouteSpec> {
    let mut t = Table {
        cfg: None,
        specs: Vec::new(),
    };
    table(&mut t);
    t.specs
}

/// The route patterns, each once (the `route` label's values).
pub fn route_patterns() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for spec in route_table() {
        if !out.contains(&spec.pattern) {
            out.push(spec.pattern);
        }
    }
    out.push(patterns::METRICS);
    out
}

/// Register the service's routes. Extractor failures become 400 JSON, unknown
/// routes 404 JSON, other methods than a route's own 405 JSON.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::bad_request(codes::INVALID_PATH, err.to_string()).into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request(codes::INVALID_QUERY, err.to_string()).into()
    }))
    .app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _| {
                ApiError::bad_request(codes::INVALID_JSON, err.to_string()).into()
            }),
    );
    let mut t = Table {
        cfg: Some(cfg),
        specs: Vec::new(),
    };
    table(&mut t);
}

/// `GET|HEAD /metrics`, mounted on the public listener or on `VEZA_METRICS_BIND`.
pub fn metrics_route(cfg: &mut web::ServiceConfig) {
    let mut t = Table {
        cfg: Some(cfg),
        specs: Vec::new(),
    };
    t.resource(
        patterns::METRICS,
        vec![get(Policy::Anyone, handlers::scrape::render)],
    );
}

/// Headers every response carries: `X-Content-Type-Options: nosniff`, so no browser
/// second-guesses a content type (a playlist or a JSON error rendered as HTML). The
/// bodiless answers actix writes itself before any middleware (400 for an unparsable
/// head, 408, 431) do not go through it.
pub fn default_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {}", req.path())))
}
