//! Console sessions: the admin token exchanged for a random session id in an
//! `HttpOnly; SameSite=Strict` cookie, a CSRF token per session, and expiry.
//!
//! Sessions live in memory: a restart logs everyone out, which for a single-binary
//! service with one operator token is cheaper than a sessions table in the log's
//! database, and nothing about a session belongs in the audit trail.

use std::collections::HashMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;

pub const COOKIE: &str = "tks_session";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::hours(12);
/// Sessions kept at most; the oldest go first. Only the token holder can create
/// sessions, so this bounds memory, it is not a defence.
const MAX_SESSIONS: usize = 1000;

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub csrf: String,
    pub expires: DateTime<Utc>,
}

pub struct Sessions {
    clock: Clock,
    live: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Constant time in content and length: both sides are hashed first.
pub fn same_secret(a: &str, b: &str) -> bool {
    let a = Sha256::digest(a.as_bytes());
    let b = Sha256::digest(b.as_bytes());
    bool::from(a.ct_eq(&b))
}

impl Sessions {
    pub fn new(clock: Clock) -> Sessions {
        Sessions {
            clock,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn create(&self) -> Session {
        let now = self.clock.now();
        let session = Session {
            id: random_hex(),
            csrf: random_hex(),
            expires: now + LIFETIME,
        };
        let mut live = self.live.lock();
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .values()
                .min_by_key(|s| s.expires)
                .map(|s| s.id.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session named by the request's cookie.
    pub fn of(&self, req: &HttpRequest) -> Option<Session> {
        let id = req.cookie(COOKIE)?.value().to_string();
        let now = self.clock.now();
        let mut live = self.live.lock();
        match live.get(&id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                live.remove(&id);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        self.live.lock().remove(id);
    }

    pub fn count(&self) -> usize {
        self.live.lock().len()
    }
}

/// The cookie that carries a session; `secure` when the console is reached over
/// HTTPS (public_url), so the browser never sends it in clear.
pub fn cookie(session: &Session, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, session.id.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            LIFETIME.num_seconds(),
        ))
        .finish()
}

/// The cookie that removes it.
pub fn removal() -> Cookie<'static> {
    let mut c = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    c.make_removal();
    c
}
