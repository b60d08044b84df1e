//! The TikTok OAuth redirect target (F15): TikTok sends the seller's browser to
//! `GET /oauth/tiktok/callback?code=...&state=...` after consent (or with
//! `error=auth_denied` after a refusal). The code is exchanged for tokens, the shop
//! bound and the tokens stored, and the browser gets a small page saying which shop
//! is now connected, or what to do instead.
//!
//! The callback carries no bearer token (a browser redirect cannot), and this
//! service does not issue the consent URL, so `state` is not verified here: keep the
//! endpoint reachable only while connecting, or behind the proxy that serves the
//! Redirect URL registered in Partner Center. A code that covers none of the
//! configured shops is refused and leaves every existing connection as it was.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::ports::OAuthPorts;
use crate::connectors::tiktok::client::TikTokError;
use crate::connectors::Classify;
use crate::connectors::RetryClass;
use crate::operator::Connected;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/tiktok/callback", web::get().to(callback));
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal page; every piece of text in it is escaped.
fn page(status: StatusCode, title: &str, lines: &[String]) -> HttpResponse {
    let body: String = lines
        .iter()
        .map(|l| format!("<p>{}</p>\n", escape(l)))
        .collect();
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        // The page may show a shop cipher; nothing here should be cached.
        .insert_header(("Cache-Control", "no-store"))
        .body(format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
             <body>\n<h1>{t}</h1>\n{body}</body></html>\n",
            t = escape(title)
        ))
}

fn refused(status: StatusCode, lines: &[String]) -> HttpResponse {
    page(status, "TikTok Shop not connected", lines)
}

async fn callback(ports: web::Data<OAuthPorts>, req: HttpRequest) -> HttpResponse {
    let mut code = None;
    let mut denied = None;
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "error" => denied = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(reason) = denied.filter(|d| !d.is_empty()) {
        let what = if reason == "auth_denied" {
            "The authorisation was declined on TikTok's consent page.".to_string()
        } else {
            format!("TikTok reported an authorisation error: {reason}.")
        };
        return refused(
            StatusCode::BAD_REQUEST,
            &[
                what,
                "Open the app's authorisation link again and approve it with the shop's main account."
                    .into(),
            ],
        );
    }
    // TikTok sends `code=null` after a refusal without an error parameter.
    let Some(code) = code.filter(|c| !c.trim().is_empty() && c != "null") else {
        return refused(
            StatusCode::BAD_REQUEST,
            &[
                "The request carries no authorisation code (`code`): open this page only through \
               TikTok's authorisation link."
                    .into(),
            ],
        );
    };
    let Some(shops) = ports.shops.as_ref() else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            &[
                "TikTok is not configured on this service: set TKS_TIKTOK__APP_KEY and \
               TKS_TIKTOK__APP_SECRET, restart it, and authorise again."
                    .into(),
            ],
        );
    };
    match shops.connect(&code).await {
        Ok(seller) => {
            let c = Connected::from_seller(seller);
            tracing::info!(shop_id = %c.shop.id, shop = %c.shop.name, "TikTok shop connected");
            let expiry = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "unknown".into())
            };
            let mut lines = vec![format!(
                "Connected shop {} (id {}, region {}).",
                c.shop.name, c.shop.id, c.shop.region
            )];
            if c.shops.len() > 1 {
                for (id, covered) in &c.shops {
                    lines.push(if *covered {
                        format!("Shop {id}: authorised by this seller.")
                    } else {
                        format!("Shop {id}: not covered by this authorisation (authorise its seller too).")
                    });
                }
            }
            lines.push(format!(
                "Access is renewed automatically; authorise again before {}.",
                expiry(c.refresh_token_expires_at)
            ));
            lines.push("You can close this page.".into());
            page(StatusCode::OK, "TikTok Shop connected", &lines)
        }
        Err(e) => {
            tracing::warn!(error = %e, "TikTok authorisation code not exchanged");
            let (status, advice) = match &e {
                TikTokError::Reauthorize { .. } => (
                    StatusCode::BAD_REQUEST,
                    "Authorise again while logged in to TikTok Shop Seller Center with the shop's main account.",
                ),
                TikTokError::ShopNotAuthorized { .. } | TikTokError::InvalidInput(_) => (
                    StatusCode::BAD_REQUEST,
                    "Authorise again with the shop this service is configured for (tiktok.shop_id).",
                ),
                TikTokError::TokenStore(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The tokens could not be stored next to the database: fix the file's permissions and authorise again.",
                ),
                e if matches!(e.retry_class(), RetryClass::Retry { .. }) => (
                    StatusCode::BAD_GATEWAY,
                    "TikTok could not be reached: authorise again in a few minutes (the code is single-use).",
                ),
                _ => (
                    StatusCode::BAD_GATEWAY,
                    "TikTok refused the exchange: authorise again.",
                ),
            };
            refused(status, &[e.to_string(), advice.into()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn shop_names_cannot_inject_markup() {
        assert_eq!(
            escape("<b>Tom & Jerry's \"Shop\"</b>"),
            "&lt;b&gt;Tom &amp; Jerry&#39;s &quot;Shop&quot;&lt;/b&gt;"
        );
    }
}
