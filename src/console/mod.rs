//! The operator console (F31): server-rendered HTML pages at `/` behind a login
//! with the admin token, reading the console read model and the log.
//!
//! Access mirrors `/api`: without `server.admin_token` the console is closed (403
//! on every page, login refused with the setting to fix), without a session a page
//! redirects to `/login`. Every form that changes state carries the session's CSRF
//! token; the what-if form only simulates, so it is a GET a person can bookmark.

pub mod bench;
pub mod charts;
pub mod health;
pub mod layout;
pub mod pages;
pub mod ports;
pub mod readmodel;
pub mod session;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::clock::Clock;
use crate::config::Settings;
use ports::ConsolePorts;
use readmodel::ReadModel;
use session::{Session, Sessions};

/// The console's shared state: sessions and the read model's reader.
pub struct Console {
    pub sessions: Sessions,
    pub read: ReadModel,
}

impl Console {
    pub fn new(settings: &Settings, clock: Clock) -> Console {
        Console {
            sessions: Sessions::new(clock),
            read: ReadModel::new(&settings.store.path),
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(pages::login::form))
        .route("/login", web::post().to(pages::login::submit))
        .route("/logout", web::post().to(pages::login::logout))
        .route("/", web::get().to(pages::overview::get))
        .route("/orders", web::get().to(pages::orders::get))
        .route("/orders/{id}", web::get().to(pages::order::get))
        .route("/skus", web::get().to(pages::skus::list))
        .route("/skus/{sku}", web::get().to(pages::skus::get))
        .route("/skus/{sku}/sync", web::post().to(pages::skus::toggle))
        .route("/exceptions", web::get().to(pages::exceptions::get))
        .route("/what-if", web::get().to(pages::whatif::get))
        .route("/setup", web::get().to(pages::setup::get));
}

/// Why a console request got no page.
#[derive(Debug)]
pub enum Refused {
    /// No admin token is configured.
    Closed,
    /// No (live) session: go and log in.
    Login,
    Forbidden(String),
    BadRequest(String),
    NotFound(String),
    Unavailable(String),
}

pub const CLOSED: &str = "The console is closed: no admin token is configured. Set \
     TKS_SERVER__ADMIN_TOKEN (or server.admin_token in tks.toml) and restart tks; then log \
     in here with that token.";

impl Refused {
    pub fn response(self) -> HttpResponse {
        let (status, title, message) = match self {
            Refused::Login => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/login"))
                    .finish()
            }
            Refused::Closed => (StatusCode::FORBIDDEN, "Console closed", CLOSED.to_string()),
            Refused::Forbidden(m) => (StatusCode::FORBIDDEN, "Forbidden", m),
            Refused::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            Refused::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            Refused::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", m),
        };
        html_response(
            status,
            layout::bare(
                title,
                html! {
                    h1 { (title) }
                    p.notice.bad #refusal { (message) }
                    p { a href="/" { "Back to the console" } }
                },
            ),
        )
    }
}

impl From<readmodel::ReadError> for Refused {
    fn from(e: readmodel::ReadError) -> Self {
        Refused::Unavailable(e.to_string())
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused::Unavailable(e.to_string())
    }
}

pub fn html_response(status: StatusCode, page: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        // Pages show live state and the CSRF token: never from a cache.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"))
        .body(page.into_string())
}

pub fn ok(page: Markup) -> HttpResponse {
    html_response(StatusCode::OK, page)
}

/// Renders a page that reads the log itself (a timeline scan, a stream fold) on
/// the blocking pool: the HTTP workers also accept webhooks, which must not wait
/// behind an operator's page.
pub async fn off_thread(
    ports: &web::Data<ConsolePorts>,
    render: impl FnOnce(&ConsolePorts) -> Result<Markup, Refused> + Send + 'static,
) -> HttpResponse {
    let ports = ports.clone().into_inner();
    match web::block(move || render(&ports)).await {
        Ok(Ok(page)) => ok(page),
        Ok(Err(r)) => r.response(),
        Err(e) => Refused::Unavailable(e.to_string()).response(),
    }
}

/// The console is open (an admin token is configured).
pub fn is_open(ports: &ConsolePorts) -> bool {
    !ports.settings.server.admin_token.expose().is_empty()
}

/// The request's session, or why there is none.
pub fn gate(req: &HttpRequest, ports: &ConsolePorts) -> Result<Session, Refused> {
    if !is_open(ports) {
        return Err(Refused::Closed);
    }
    ports.console.sessions.of(req).ok_or(Refused::Login)
}

/// A state-changing form's CSRF token must be this session's.
pub fn check_csrf(session: &Session, form: &[(String, String)]) -> Result<(), Refused> {
    let presented = field(form, "csrf").unwrap_or_default();
    if !presented.is_empty() && session::same_secret(&presented, &session.csrf) {
        Ok(())
    } else {
        Err(Refused::Forbidden(
            "this form has a missing or stale CSRF token: reload the page and submit it again"
                .into(),
        ))
    }
}

/// Decodes an `application/x-www-form-urlencoded` body or query string.
pub fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

pub fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A non-empty, trimmed field.
pub fn given(form: &[(String, String)], name: &str) -> Option<String> {
    field(form, name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
