//! Katana webhook verification and parsing: pure functions the service's
//! `POST /webhooks/katana` endpoint calls (bad signature -> 401, malformed -> 400).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-sha2-signature";
/// The header Katana adds to redeliveries (1, 2, 3).
pub const RETRY_HEADER: &str = "x-katana-retry-num";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Signature missing, not hex, or not matching: answer 401 and change nothing.
    #[error("webhook signature invalid: {0}")]
    BadSignature(&'static str),
    /// Body is not a Katana webhook payload: answer 400.
    #[error("webhook payload malformed: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// The HTTP status the receiving endpoint should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::BadSignature(_) => 401,
            WebhookError::Malformed(_) => 400,
        }
    }
}

/// Hex HMAC-SHA256 of `raw_body` keyed with the webhook token: what Katana sends.
pub fn sign(token: &str, raw_body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).expect("hmac key of any length");
    mac.update(raw_body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `x-sha2-signature` against the raw body in constant time. An optional
/// `sha256=` prefix and upper-case hex are tolerated (the docs show plain hex).
pub fn verify(token: &str, raw_body: &[u8], signature: Option<&str>) -> Result<(), WebhookError> {
    if token.is_empty() {
        return Err(WebhookError::BadSignature("no webhook token configured"));
    }
    let sig = signature.ok_or(WebhookError::BadSignature("missing x-sha2-signature"))?;
    let sig = sig.trim();
    let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
    let given = hex::decode(sig).map_err(|_| WebhookError::BadSignature("signature is not hex"))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
        .map_err(|_| WebhookError::BadSignature("unusable token"))?;
    mac.update(raw_body);
    let expected = mac.finalize().into_bytes();
    if given.len() == expected.len() && bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature("signature mismatch"))
    }
}

/// A parsed webhook: thin by design, the receiver re-fetches the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `action`, e.g. `sales_order.delivered`.
    pub event: String,
    pub resource_type: String,
    /// The object id, normalised to a string (Katana sends it quoted or as a number).
    pub object_id: String,
    pub status: Option<String>,
    pub href: Option<String>,
    pub webhook_id: Option<String>,
}

impl WebhookEvent {
    /// The object id as a Katana integer id, when it is one.
    pub fn object_id_int(&self) -> Option<i64> {
        self.object_id.parse().ok()
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Parses the payload `{"resource_type","action","webhook_id","object":{"id","status","href"}}`.
pub fn parse(raw_body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let bad = |m: &str| WebhookError::Malformed(m.to_string());
    let v: Value = serde_json::from_slice(raw_body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("body is not a JSON object"))?;
    let event = obj
        .get("action")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("missing string `action`"))?
        .to_string();
    let resource_type = match obj.get("resource_type") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // Derivable from the action (`sales_order.updated` -> `sales_order`).
        None | Some(Value::Null) => event.split('.').next().unwrap_or_default().to_string(),
        _ => return Err(bad("`resource_type` is not a string")),
    };
    let object = obj
        .get("object")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("missing object `object`"))?;
    let object_id = object
        .get("id")
        .and_then(id_text)
        .ok_or_else(|| bad("`object.id` must be a string or an integer"))?;
    let opt_str = |key: &str| -> Result<Option<String>, WebhookError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(WebhookError::Malformed(format!(
                "`object.{key}` is not a string"
            ))),
        }
    };
    let webhook_id = match obj.get("webhook_id") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(id_text(v).ok_or_else(|| bad("`webhook_id` must be a string or an integer"))?)
        }
    };
    Ok(WebhookEvent {
        event,
        resource_type,
        object_id,
        status: opt_str("status")?,
        href: opt_str("href")?,
        webhook_id,
    })
}

/// Verify then parse: the order the endpoint must use (never parse unauthenticated input
/// into decisions).
pub fn verify_and_parse(
    token: &str,
    raw_body: &[u8],
    signature: Option<&str>,
) -> Result<WebhookEvent, WebhookError> {
    verify(token, raw_body, signature)?;
    parse(raw_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "73f82127d57a2cea";

    #[test]
    fn verify_accepts_own_signature_and_rejects_tampering() {
        let body = br#"{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":1,"object":{"id":"12345","status":"DELIVERED","href":"x"}}"#;
        let sig = sign(TOKEN, body);
        assert_eq!(sig.len(), 64);
        assert!(verify(TOKEN, body, Some(&sig)).is_ok());
        assert!(verify(TOKEN, body, Some(&format!("sha256={}", sig.to_uppercase()))).is_ok());
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(TOKEN, &tampered, Some(&sig)),
            Err(WebhookError::BadSignature("signature mismatch"))
        );
        assert!(verify("other", body, Some(&sig)).is_err());
        assert!(verify(TOKEN, body, None).is_err());
        assert!(verify(TOKEN, body, Some("zz")).is_err());
        assert!(verify(TOKEN, body, Some(&sig[..10])).is_err());
        assert!(verify("", body, Some(&sig)).is_err());
        assert_eq!(verify(TOKEN, body, None).unwrap_err().http_status(), 401);
    }

    #[test]
    fn parse_accepts_string_or_number_ids() {
        let e = parse(br#"{"resource_type":"sales_order","action":"sales_order.updated","webhook_id":"7","object":{"id":12,"status":"NOT_SHIPPED","href":"https://h/v1/sales_orders/12"}}"#).unwrap();
        assert_eq!(e.object_id, "12");
        assert_eq!(e.object_id_int(), Some(12));
        assert_eq!(e.webhook_id.as_deref(), Some("7"));
        let d = parse(br#"{"resource_type":"sales_order","action":"sales_order.deleted","object":{"id":"12"}}"#).unwrap();
        assert_eq!(d.href, None);
        assert_eq!(d.status, None);
    }

    #[test]
    fn malformed_payloads_are_a_distinct_error() {
        for body in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"action":"sales_order.updated"}"#,
            br#"{"action":"sales_order.updated","object":{"id":1.5}}"#,
            br#"{"action":"sales_order.updated","object":{"id":true}}"#,
            br#"{"object":{"id":"1"}}"#,
            br#"{"action":"x.y","object":{"id":"1","status":3}}"#,
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.http_status(), 400, "{body:?}");
        }
    }
}
