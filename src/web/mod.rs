//! The web dashboard: static HTML, CSS and JavaScript modules compiled into the binary.
//!
//! Owns three kinds of routes, all `GET` (and `HEAD`):
//!
//! - `/` — the dashboard page (login, super admin view, owner view);
//! - `/b/{subdomain}/` — the public booking page of one business (the JS reads the subdomain
//!   from `location`; `/b/{subdomain}` without the slash redirects here so relative URLs work);
//! - `/assets/{file}` — the modules, styles and icon the pages load;
//! - `/sw.js` — the service worker of the installable app (see [`pwa`]).
//!
//! Guarantees: no build step and no network at run time (every file is `include_str!`ed);
//! every response carries `X-Content-Type-Options: nosniff`; every file is served with its
//! `Content-Type`, a strong `ETag` (a SHA-256 of the content, computed once when the routes
//! are built) and `Cache-Control: no-cache`, so a browser revalidates with `If-None-Match` and
//! gets `304 Not Modified` while the binary is unchanged; every HTML response carries a
//! `Content-Security-Policy` that allows only the app's own origin (no inline script or style:
//! all of it lives in files). Paths that are not ours are rejected with `not_found`, so the
//! API's recover handler renders them like every other 404.
//!
//! Used by the server, which mounts [`routes`] beside the API and WebSocket routes.

mod pwa;

use crate::domain::Subdomain;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::Filter;

/// The Content-Security-Policy of every HTML page. `connect-src` is completed per request
/// with the `ws:`/`wss:` form of the request's own host (see [`csp_for_host`]), because
/// older browsers do not let `'self'` cover WebSocket URLs.
const CSP_BASE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// How browsers may cache our files: keep them, but ask (with `If-None-Match`) every time,
/// so a new binary is picked up at once and an unchanged one costs a 304.
const CACHE_CONTROL: &str = "no-cache";

/// One file of the dashboard, as compiled into the binary.
struct Asset {
    /// The path under `/assets/` (or the page's own name for HTML pages).
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const HTML: &str = "text/html; charset=utf-8";

/// Every file under `/assets/`. Adding a file here is all it takes to serve it.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_str!("app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: SVG,
        body: include_str!("icon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("api.js"),
    },
    Asset {
        name: "connection.js",
        content_type: JS,
        body: include_str!("connection.js"),
    },
    Asset {
        name: "state.js",
        content_type: JS,
        body: include_str!("state.js"),
    },
    Asset {
        name: "owner-state.js",
        content_type: JS,
        body: include_str!("owner-state.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        body: include_str!("dom.js"),
    },
    Asset {
        name: "chart.js",
        content_type: JS,
        body: include_str!("chart.js"),
    },
    Asset {
        name: "session.js",
        content_type: JS,
        body: include_str!("session.js"),
    },
    Asset {
        name: "renewal.js",
        content_type: JS,
        body: include_str!("renewal.js"),
    },
    Asset {
        name: "booking.js",
        content_type: JS,
        body: include_str!("booking.js"),
    },
    Asset {
        name: "views/login.js",
        content_type: JS,
        body: include_str!("views/login.js"),
    },
    Asset {
        name: "views/shell.js",
        content_type: JS,
        body: include_str!("views/shell.js"),
    },
    Asset {
        name: "views/admin.js",
        content_type: JS,
        body: include_str!("views/admin.js"),
    },
    Asset {
        name: "views/owner.js",
        content_type: JS,
        body: include_str!("views/owner.js"),
    },
    Asset {
        name: "views/feed.js",
        content_type: JS,
        body: include_str!("views/feed.js"),
    },
    Asset {
        name: "views/bell.js",
        content_type: JS,
        body: include_str!("views/bell.js"),
    },
    Asset {
        name: "views/forms.js",
        content_type: JS,
        body: include_str!("views/forms.js"),
    },
];

const INDEX_HTML: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    body: include_str!("index.html"),
};
const BOOKING_HTML: Asset = Asset {
    name: "booking.html",
    content_type: HTML,
    body: include_str!("booking.html"),
};

/// A file ready to serve: its bytes (shared, never copied per request) and its ETag.
struct Prepared {
    content_type: &'static str,
    body: Bytes,
    etag: HeaderValue,
    is_html: bool,
}

impl Prepared {
    fn new(asset: &Asset) -> Self {
        Self::from_bytes(asset.content_type, asset.body.as_bytes())
    }

    fn from_bytes(content_type: &'static str, body: &'static [u8]) -> Self {
        let digest = Sha256::digest(body);
        // 128 bits of the digest are plenty to tell two versions of a file apart.
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Prepared {
            content_type,
            body: Bytes::from_static(body),
            etag: HeaderValue::from_str(&format!("\"{hex}\""))
                .expect("hex in quotes is a valid header value"),
            is_html: content_type == HTML,
        }
    }
}

/// Every servable file with its ETag, computed once in [`routes`].
struct Site {
    index: Prepared,
    booking: Prepared,
    service_worker: Prepared,
    assets: Vec<(&'static str, Prepared)>,
}

impl Site {
    fn new() -> Self {
        Site {
            index: Prepared::new(&INDEX_HTML),
            booking: Prepared::new(&BOOKING_HTML),
            service_worker: Prepared::new(&pwa::SERVICE_WORKER),
            assets: ASSETS
                .iter()
                .chain(pwa::TEXT_ASSETS)
                .map(|a| (a.name, Prepared::new(a)))
                .chain(
                    pwa::ICONS
                        .iter()
                        .map(|i| (i.name, Prepared::from_bytes(i.content_type, i.body))),
                )
                .collect(),
        }
    }

    fn asset(&self, name: &str) -> Option<&Prepared> {
        self.assets.iter().find(|(n, _)| *n == name).map(|(_, p)| p)
    }
}

/// What one request asks for, decided from its path alone.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Index,
    Booking,
    /// `/b/{subdomain}` without the trailing slash: redirect to the canonical page URL.
    BookingRedirect(&'a str),
    Asset(&'a str),
    ServiceWorker,
}

/// Maps a request path to what we serve, or `None` when the path is not ours.
fn target(path: &str) -> Option<Target<'_>> {
    if path == "/" {
        return Some(Target::Index);
    }
    if path == "/sw.js" {
        return Some(Target::ServiceWorker);
    }
    if let Some(name) = path.strip_prefix("/assets/") {
        return Some(Target::Asset(name));
    }
    let rest = path.strip_prefix("/b/")?;
    match rest.strip_suffix('/') {
        Some(sub) if Subdomain::is_valid(sub) => Some(Target::Booking),
        None if Subdomain::is_valid(rest) => Some(Target::BookingRedirect(rest)),
        _ => None,
    }
}

/// True when an `If-None-Match` header value names `etag` (or is `*`).
/// Weak validators (`W/"…"`) match too: RFC 9110 compares weakly for `If-None-Match`.
fn etag_matches(if_none_match: &str, etag: &HeaderValue) -> bool {
    let etag = etag.to_str().unwrap_or_default();
    if_none_match
        .split(',')
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The full CSP of an HTML page served to a request whose `Host` is `host`.
/// A `Host` with anything but host-name characters gets the policy without WebSocket hosts
/// (a browser never sends such a `Host`, and it must not be able to widen the policy).
fn csp_for_host(host: Option<&str>) -> String {
    match host.filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    }) {
        Some(h) => format!("{CSP_BASE}; connect-src 'self' ws://{h} wss://{h}"),
        None => format!("{CSP_BASE}; connect-src 'self'"),
    }
}

/// Builds the response for one file: 200 with the body, or 304 when the client's copy is current.
fn respond(
    file: &Prepared,
    if_none_match: Option<&str>,
    host: Option<&str>,
) -> warp::reply::Response {
    let not_modified = if_none_match.is_some_and(|v| etag_matches(v, &file.etag));
    let mut res = if not_modified {
        let mut res = Response::new(Bytes::new().into());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(file.body.clone().into());
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        res
    };
    let headers = res.headers_mut();
    headers.insert(header::ETAG, file.etag.clone());
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if file.is_html {
        let csp = HeaderValue::from_str(&csp_for_host(host))
            .expect("CSP is built from checked characters");
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    res
}

/// A permanent redirect from `/b/{subdomain}` to `/b/{subdomain}/`.
fn redirect_to_slash(sub: &str) -> warp::reply::Response {
    let mut res = Response::new(Bytes::new().into());
    *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let location = HeaderValue::from_str(&format!("/b/{sub}/"))
        .expect("a checked subdomain is a valid header value");
    res.headers_mut().insert(header::LOCATION, location);
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// Answers a request for `path`, or `None` when the path is not one of ours.
fn handle(
    site: &Site,
    path: &str,
    if_none_match: Option<&str>,
    host: Option<&str>,
) -> Option<warp::reply::Response> {
    match target(path)? {
        Target::Index => Some(respond(&site.index, if_none_match, host)),
        Target::Booking => Some(respond(&site.booking, if_none_match, host)),
        Target::BookingRedirect(sub) => Some(redirect_to_slash(sub)),
        Target::Asset(name) => site.asset(name).map(|f| respond(f, if_none_match, host)),
        Target::ServiceWorker => Some(respond(&site.service_worker, if_none_match, host)),
    }
}

/// The dashboard's routes: `GET`/`HEAD` of `/`, `/b/{subdomain}/` and `/assets/{file}`.
///
/// Hashes every file once (here), then serves them from memory. Any other path, or an unknown
/// asset, is rejected with `not_found` for the server's recover handler to render.
pub fn routes() -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let site = Arc::new(Site::new());
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::header::optional::<String>("host"))
        .and_then(
            move |path: warp::path::FullPath, inm: Option<String>, host: Option<String>| {
                let res = handle(&site, path.as_str(), inm.as_deref(), host.as_deref());
                async move { res.ok_or_else(warp::reject::not_found) }
            },
        )
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_pages_and_assets() {
        assert_eq!(target("/"), Some(Target::Index));
        assert_eq!(target("/b/salon-1/"), Some(Target::Booking));
        assert_eq!(
            target("/b/salon-1"),
            Some(Target::BookingRedirect("salon-1"))
        );
        assert_eq!(target("/assets/app.js"), Some(Target::Asset("app.js")));
        assert_eq!(target("/sw.js"), Some(Target::ServiceWorker));
        for not_ours in [
            "/api/businesses/",
            "/b/",
            "/b//",
            "/b/-x/",
            "/b/UPPER/",
            "/b/a/b/",
            "/index.html",
            "",
        ] {
            assert_eq!(target(not_ours), None, "{not_ours:?}");
        }
    }

    #[test]
    fn every_asset_is_served_with_its_content_type() {
        let site = Site::new();
        for asset in ASSETS.iter().chain(pwa::TEXT_ASSETS) {
            let res =
                handle(&site, &format!("/assets/{}", asset.name), None, None).expect(asset.name);
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let is_html = asset.content_type == HTML;
            let csp = res.headers().get(header::CONTENT_SECURITY_POLICY);
            assert_eq!(csp.is_some(), is_html, "{}: a CSP on HTML only", asset.name);
        }
        for icon in pwa::ICONS {
            let res =
                handle(&site, &format!("/assets/{}", icon.name), None, None).expect(icon.name);
            assert_eq!(res.headers()[header::CONTENT_TYPE], "image/png");
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        }
        let sw = handle(&site, "/sw.js", None, None).expect("the service worker");
        assert_eq!(sw.headers()[header::CONTENT_TYPE], JS);
        assert!(handle(&site, "/assets/nope.js", None, None).is_none());
        assert!(handle(&site, "/assets/../mod.rs", None, None).is_none());
    }

    #[test]
    fn a_matching_etag_gets_304_and_a_stale_one_gets_the_file() {
        let site = Site::new();
        let first = handle(&site, "/assets/app.js", None, None).expect("served");
        let etag = first.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");

        let again = handle(&site, "/assets/app.js", Some(&etag), None).expect("served");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag.as_str());

        let listed = format!("\"stale\", W/{etag}");
        let weak = handle(&site, "/assets/app.js", Some(&listed), None).expect("served");
        assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);

        let stale = handle(&site, "/assets/app.js", Some("\"stale\""), None).expect("served");
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn html_pages_carry_a_same_origin_csp() {
        let site = Site::new();
        for path in ["/", "/b/salon/"] {
            let res = handle(&site, path, None, Some("127.0.0.1:8000")).expect(path);
            assert_eq!(res.headers()[header::CONTENT_TYPE], HTML);
            let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ascii");
            assert!(csp.contains("default-src 'self'"), "{csp}");
            assert!(
                csp.contains("connect-src 'self' ws://127.0.0.1:8000 wss://127.0.0.1:8000"),
                "{csp}"
            );
            assert!(!csp.contains("unsafe-inline"), "{csp}");
            assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert!(csp_for_host(Some("evil; script-src *")).ends_with("connect-src 'self'"));
    }

    #[test]
    fn booking_without_slash_redirects() {
        let res = handle(&Site::new(), "/b/salon", None, None).expect("ours");
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "/b/salon/");
    }

    #[test]
    fn pages_hold_no_inline_script_or_style() {
        let offline = &pwa::TEXT_ASSETS[1];
        assert_eq!(offline.name, "offline.html");
        for page in [&INDEX_HTML, &BOOKING_HTML, offline] {
            let html = page.body;
            assert!(!html.contains("<style"), "{}", page.name);
            assert!(!html.contains(" style="), "{}", page.name);
            assert!(!html.contains("<script>"), "{}", page.name);
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{}: no external URLs",
                page.name
            );
        }
    }
}
