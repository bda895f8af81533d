//! What the handlers and middleware share across workers, built once by `startup`
//! beside the delivery service: [`Site`] (the public URL and the origin secret) and
//! [`Observer`] (metrics and the QueryStats actor).

use actix::Addr;
use actix_web::HttpRequest;

use crate::actors::query_stats::QueryStats;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// What the HTTP layer knows of the site itself: how clients address it, and the
/// secret the CDN proves itself with on origin pulls.
pub struct Site {
    /// `VEZA_PUBLIC_URL`: the base of absolute URLs to this service.
    pub public_url: Option<String>,
    pub origin_secret: Option<OriginSecret>,
}

/// The shared secret a CDN adds on origin pulls (`VEZA_ORIGIN_SECRET`).
pub struct OriginSecret {
    pub header: actix_web::http::header::HeaderName,
    pub value: Secret<String>,
}

impl OriginSecret {
    /// Constant-time check of the request's header.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        let Some(got) = req.headers().get(&self.header) else {
            return false;
        };
        crate::cdn::ct_eq(got.as_bytes(), self.value.expose().as_bytes())
    }
}

impl Site {
    /// `scheme://host[:port]` of this service as the client should address it:
    /// `VEZA_PUBLIC_URL`, else the request's own `Host` header. Forwarding headers
    /// (`X-Forwarded-Host`, `Forwarded`) are never trusted: a client could otherwise
    /// point signed URLs at a host of its choosing.
    pub fn self_base(&self, req: &HttpRequest) -> String {
        if let Some(base) = &self.public_url {
            return base.clone();
        }
        let host = req
            .headers()
            .get(actix_web::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    })
            })
            .map(str::to_string)
            .unwrap_or_else(|| req.app_config().host().to_string());
        format!("http://{host}")
    }
}

/// What the observing middleware needs, shared by all workers.
#[derive(Clone)]
pub struct Observer {
    pub metrics: Metrics,
    pub query_stats: Option<Addr<QueryStats>>,
}

/// The rate limits the handlers apply (see `crate::ratelimit`).
pub struct Limits {
    /// Logins and sign-ups, counted in the database (shared by every instance).
    pub shared: crate::ratelimit::SharedLimiter,
    /// Writes per signed-in user, in memory, per instance.
    pub writes: crate::ratelimit::WriteLimiter,
    pub trusted_proxies: crate::config::TrustedProxies,
}

impl Limits {
    /// The client's address for per-IP limits (`VEZA_TRUSTED_PROXIES` decides whether
    /// `X-Forwarded-For` is believed); unspecified when the request has no peer.
    pub fn client_ip(&self, req: &HttpRequest) -> std::net::IpAddr {
        crate::web::client_ip::of_request(req, &self.trusted_proxies)
            .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
    }

    /// 429 once `user_id` wrote too often.
    pub fn write(&self, user_id: i64) -> Result<(), crate::web::error::ApiError> {
        Ok(self.writes.check(user_id).into_result()?)
    }
}
