//! `/login` and `/logout`: the admin token exchanged for a session cookie.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::console::ports::ConsolePorts;
use crate::console::{html_response, is_open, layout, parse_form, session, CLOSED};

fn login_page(message: Option<(&str, &str)>, open: bool) -> Markup {
    layout::bare(
        "Log in",
        html! {
            div.login.card {
                h1 { "tks console" }
                @if let Some((class, text)) = message {
                    p class=(format!("notice {class}")) #login-message { (text) }
                }
                @if open {
                    form method="post" action="/login" {
                        label for="token" { "Admin token" }
                        input type="password" id="token" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" id="login" { "Log in" }
                    }
                    p.muted { "The token is server.admin_token (TKS_SERVER__ADMIN_TOKEN)." }
                }
            }
        },
    )
}

pub async fn form(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    if !is_open(&ports) {
        return html_response(
            StatusCode::FORBIDDEN,
            login_page(Some(("bad", CLOSED)), false),
        );
    }
    if ports.console.sessions.of(&req).is_some() {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish();
    }
    html_response(StatusCode::OK, login_page(None, true))
}

/// Login needs no CSRF token: there is no session to ride yet, and the cookie it
/// sets is `SameSite=Strict`, so a cross-site form cannot use what it creates.
pub async fn submit(ports: web::Data<ConsolePorts>, body: web::Bytes) -> HttpResponse {
    if !is_open(&ports) {
        return html_response(
            StatusCode::FORBIDDEN,
            login_page(Some(("bad", CLOSED)), false),
        );
    }
    let form = parse_form(&body);
    let token = crate::console::field(&form, "token").unwrap_or_default();
    if token.is_empty() {
        return html_response(
            StatusCode::BAD_REQUEST,
            login_page(Some(("bad", "Enter the admin token.")), true),
        );
    }
    if !session::same_secret(token.trim(), ports.settings.server.admin_token.expose()) {
        return html_response(
            StatusCode::UNAUTHORIZED,
            login_page(Some(("bad", "Wrong admin token.")), true),
        );
    }
    let s = ports.console.sessions.create();
    let secure = ports.settings.server.public_url.starts_with("https://");
    HttpResponse::SeeOther()
        .cookie(session::cookie(&s, secure))
        .insert_header((header::LOCATION, "/"))
        .finish()
}

/// Ends the session. The form carries the CSRF token like every other, but a
/// logout is honoured without it: ending a session is never what an attacker
/// gains from, and refusing it would keep a session alive against its owner's wish.
pub async fn logout(req: HttpRequest, ports: web::Data<ConsolePorts>) -> HttpResponse {
    if let Some(s) = ports.console.sessions.of(&req) {
        ports.console.sessions.end(&s.id);
    }
    HttpResponse::SeeOther()
        .cookie(session::removal())
        .insert_header((header::LOCATION, "/login"))
        .finish()
}
