//! Credentials of the simulated app: single-use authorisation codes and access/refresh
//! token pairs, each issued to one seller (an index into the configured sellers, 0 = the
//! main seller), so a token covers exactly the shops that seller authorised.

use std::collections::HashMap;

use super::state::ApiErr;
use super::{ACCESS_TOKEN_TTL, AUTH_CODE_TTL, REFRESH_TOKEN_TTL};

/// What an authorisation code or token was granted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// 0 seller, 1 creator, 3 partner, as TikTok's token response reports it.
    pub user_type: i64,
    pub seller: usize,
}

struct AccessToken {
    grant: Grant,
    expires_at: i64,
}

struct RefreshToken {
    grant: Grant,
    expires_at: i64,
    /// The access token issued with it: a refresh retires both.
    access_token: String,
}

/// A freshly issued token pair, as the token endpoints answer it.
pub struct IssuedTokens {
    pub access_token: String,
    pub access_token_expire_in: i64,
    pub refresh_token: String,
    pub refresh_token_expire_in: i64,
    pub grant: Grant,
}

#[derive(Default)]
pub struct Credentials {
    auth_codes: HashMap<String, (Grant, i64)>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
}

impl Credentials {
    pub fn issue_auth_code(&mut self, grant: Grant, now: i64) -> String {
        let code = format!("code_{}", uuid::Uuid::new_v4().simple());
        self.auth_codes
            .insert(code.clone(), (grant, now + AUTH_CODE_TTL));
        code
    }

    /// Get Token: the code is consumed whether or not it is still valid (single use).
    pub fn exchange(&mut self, code: &str, now: i64) -> Result<IssuedTokens, ApiErr> {
        match self.auth_codes.remove(code) {
            Some((grant, expires_at)) if expires_at > now => Ok(self.issue(grant, now)),
            _ => Err(ApiErr::new(36004004, "invalid auth code")),
        }
    }

    /// Refresh Token rotates both tokens: the old pair stops working.
    pub fn refresh(&mut self, refresh_token: &str, now: i64) -> Result<IssuedTokens, ApiErr> {
        match self.refresh_tokens.remove(refresh_token) {
            Some(old) if old.expires_at > now => {
                self.access_tokens.remove(&old.access_token);
                Ok(self.issue(old.grant, now))
            }
            _ => Err(ApiErr::new(105001, "Invalid refresh_token")),
        }
    }

    fn issue(&mut self, grant: Grant, now: i64) -> IssuedTokens {
        let access = format!("ROW_{}", uuid::Uuid::new_v4().simple());
        let refresh = format!("ROW_{}", uuid::Uuid::new_v4().simple());
        self.access_tokens.insert(
            access.clone(),
            AccessToken {
                grant,
                expires_at: now + ACCESS_TOKEN_TTL,
            },
        );
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshToken {
                grant,
                expires_at: now + REFRESH_TOKEN_TTL,
                access_token: access.clone(),
            },
        );
        IssuedTokens {
            access_token: access,
            access_token_expire_in: now + ACCESS_TOKEN_TTL,
            refresh_token: refresh,
            refresh_token_expire_in: now + REFRESH_TOKEN_TTL,
            grant,
        }
    }

    /// The seller an access token speaks for, or TikTok's refusal of the token.
    pub fn seller_of(&self, access_token: &str, now: i64) -> Result<usize, ApiErr> {
        match self.access_tokens.get(access_token) {
            None => Err(ApiErr::new(105001, "Invalid credentials")),
            Some(t) if t.expires_at <= now => Err(ApiErr::new(105002, "Expired credentials")),
            Some(t) => Ok(t.grant.seller),
        }
    }

    /// Every access token expires as of now; refresh tokens stay valid.
    pub fn expire_access_tokens(&mut self, now: i64) {
        for t in self.access_tokens.values_mut() {
            t.expires_at = now - 1;
        }
    }

    /// The seller revoked the app: its tokens and pending codes are gone, so its calls and
    /// refreshes answer 105001 until it authorises again.
    pub fn revoke_seller(&mut self, seller: usize) {
        self.auth_codes.retain(|_, (g, _)| g.seller != seller);
        self.access_tokens.retain(|_, t| t.grant.seller != seller);
        self.refresh_tokens.retain(|_, t| t.grant.seller != seller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_one_seller_leaves_the_other_sellers_tokens_working() {
        let mut c = Credentials::default();
        let first = Grant {
            user_type: 0,
            seller: 0,
        };
        let second = Grant {
            user_type: 0,
            seller: 1,
        };
        let code = c.issue_auth_code(first, 0);
        let a = c.exchange(&code, 0).unwrap();
        let code = c.issue_auth_code(second, 0);
        let b = c.exchange(&code, 0).unwrap();
        let pending = c.issue_auth_code(second, 0);
        assert_eq!(c.seller_of(&b.access_token, 1), Ok(1));

        c.revoke_seller(1);
        assert_eq!(c.seller_of(&b.access_token, 1).unwrap_err().code, 105001);
        assert_eq!(
            c.refresh(&b.refresh_token, 1).err().map(|e| e.code),
            Some(105001)
        );
        assert_eq!(
            c.exchange(&pending, 1).err().map(|e| e.code),
            Some(36004004)
        );
        assert_eq!(c.seller_of(&a.access_token, 1), Ok(0));
        assert!(c.refresh(&a.refresh_token, 1).is_ok());
    }
}
