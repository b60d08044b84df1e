//! TikTok Shop webhook authenticity check and payload parsing: pure functions the service's
//! `POST /webhooks/tiktok` endpoint calls on the raw request bytes before recording anything.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::sign::webhook_signature;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("webhook has no Authorization signature")]
    MissingSignature,
    #[error("webhook signature does not match")]
    BadSignature,
    #[error("malformed webhook body: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// The status the endpoint answers with: a forged or unsigned call is 401, a signed but
    /// unreadable body is 400 (TikTok treats 401 as "signature rejected").
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::MissingSignature | WebhookError::BadSignature => 401,
            WebhookError::Malformed(_) => 400,
        }
    }
}

/// Checks `Authorization` = lowercase hex HMAC-SHA256(app_secret, app_key + raw_body).
/// The comparison is constant-time; an uppercase or malformed header never matches, because
/// TikTok only ever sends lowercase hex and accepting variants would widen the forgery surface.
pub fn verify(
    app_key: &str,
    app_secret: &str,
    raw_body: &[u8],
    authorization_header: &str,
) -> Result<(), WebhookError> {
    let given = authorization_header.trim();
    if given.is_empty() {
        return Err(WebhookError::MissingSignature);
    }
    let expected = webhook_signature(app_key, app_secret, raw_body);
    // Length differs only for garbage headers; the length itself is public (always 64).
    if given.len() != expected.len() {
        return Err(WebhookError::BadSignature);
    }
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The numeric `type` of a notification (api/tiktok-shop.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationType {
    OrderStatusChange,
    ReverseStatusUpdate,
    RecipientAddressUpdate,
    PackageUpdate,
    ProductStatusChange,
    SellerDeauthorization,
    UpcomingAuthorizationExpiration,
    CancellationStatusChange,
    ReturnStatusChange,
    Other(i64),
}

impl NotificationType {
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Self::OrderStatusChange,
            2 => Self::ReverseStatusUpdate,
            3 => Self::RecipientAddressUpdate,
            4 => Self::PackageUpdate,
            5 => Self::ProductStatusChange,
            6 => Self::SellerDeauthorization,
            7 => Self::UpcomingAuthorizationExpiration,
            11 => Self::CancellationStatusChange,
            12 => Self::ReturnStatusChange,
            other => Self::Other(other),
        }
    }

    /// Types whose `data` names one order, which the service re-reads.
    pub fn concerns_order(self) -> bool {
        matches!(
            self,
            Self::OrderStatusChange | Self::RecipientAddressUpdate | Self::CancellationStatusChange
        )
    }
}

/// A parsed notification. Only what routing needs is typed; the whole `data` object is kept
/// for the audit trail.
#[derive(Clone, Debug, PartialEq)]
pub struct TikTokNotification {
    /// `tts_notification_id`; when TikTok omits it (older payloads), `sha256:<hex of body>` so
    /// an exact redelivery still deduplicates.
    pub notification_id: String,
    pub kind: NotificationType,
    pub type_code: i64,
    pub shop_id: String,
    pub timestamp: i64,
    /// Present for types 1, 3 and 11 (required there).
    pub order_id: Option<String>,
    /// Type 1 only.
    pub order_status: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Deserialize)]
struct RawNotification {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default)]
    tts_notification_id: Option<String>,
    shop_id: IdValue,
    timestamp: i64,
    #[serde(default)]
    data: serde_json::Value,
}

/// Ids are documented as strings, but a numeric id must not turn a valid event into a 400.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(u64),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

/// TikTok's ids are numeric strings of 19 digits or so; 32 leaves room and keeps an
/// id that no URL path or stream name should carry out at the door.
const MAX_ID_DIGITS: usize = 32;
const MAX_NOTIFICATION_ID: usize = 128;

/// Whether `s` can be a TikTok order or shop id: 1 to 32 ASCII digits.
pub fn is_tiktok_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a (verified) raw body. Unknown extra fields are ignored: TikTok adds fields.
pub fn parse(raw_body: &[u8]) -> Result<TikTokNotification, WebhookError> {
    let raw: RawNotification =
        serde_json::from_slice(raw_body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let kind = NotificationType::from_code(raw.kind);
    let shop_id = raw.shop_id.into_string();
    if shop_id.is_empty() {
        return Err(WebhookError::Malformed("empty shop_id".into()));
    }
    let data_str = |key: &str| -> Option<String> {
        match raw.data.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    if !is_tiktok_id(&shop_id) {
        return Err(WebhookError::Malformed(
            "shop_id is not a TikTok shop id".into(),
        ));
    }
    let order_id = data_str("order_id");
    if let Some(id) = &order_id {
        if !is_tiktok_id(id) {
            return Err(WebhookError::Malformed(
                "data.order_id is not a TikTok order id (a short numeric string)".into(),
            ));
        }
    }
    if kind.concerns_order() && order_id.is_none() {
        return Err(WebhookError::Malformed(format!(
            "type {} notification without data.order_id",
            raw.kind
        )));
    }
    let order_status = if kind == NotificationType::OrderStatusChange {
        data_str("order_status")
    } else {
        None
    };
    if raw
        .tts_notification_id
        .as_ref()
        .is_some_and(|n| n.len() > MAX_NOTIFICATION_ID)
    {
        return Err(WebhookError::Malformed(
            "tts_notification_id is too long".into(),
        ));
    }
    let notification_id = match raw.tts_notification_id.filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => format!("sha256:{}", hex::encode(Sha256::digest(raw_body))),
    };
    Ok(TikTokNotification {
        notification_id,
        kind,
        type_code: raw.kind,
        shop_id,
        timestamp: raw.timestamp,
        order_id,
        order_status,
        data: raw.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"type":1,"shop_id":"7494726673780148744","timestamp":1664095733,"data":{"order_id":"576684019603311365","order_status":"AWAITING_SHIPMENT","update_time":1664095610}}"#;
    const SIG: &str = "21109834de72ec53c9959716d8514ae388ce1f123e5ffdcafc46713fcdf62b27";

    #[test]
    fn documented_vector_verifies() {
        assert_eq!(verify("fake_app_key", "fake_app_secret", BODY, SIG), Ok(()));
    }

    #[test]
    fn tampered_body_wrong_key_uppercase_and_missing_are_rejected() {
        let mut tampered = BODY.to_vec();
        tampered[10] = b'9';
        assert_eq!(
            verify("fake_app_key", "fake_app_secret", &tampered, SIG),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify("other_key", "fake_app_secret", BODY, SIG),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify("fake_app_key", "fake_app_secret", BODY, &SIG.to_uppercase()),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify("fake_app_key", "fake_app_secret", BODY, "abc"),
            Err(WebhookError::BadSignature)
        );
        let err = verify("fake_app_key", "fake_app_secret", BODY, "").unwrap_err();
        assert_eq!(err, WebhookError::MissingSignature);
        assert_eq!(err.http_status(), 401);
    }

    #[test]
    fn parses_order_status_change_and_derives_an_id_when_absent() {
        let n = parse(BODY).unwrap();
        assert_eq!(n.kind, NotificationType::OrderStatusChange);
        assert_eq!(n.shop_id, "7494726673780148744");
        assert_eq!(n.timestamp, 1664095733);
        assert_eq!(n.order_id.as_deref(), Some("576684019603311365"));
        assert_eq!(n.order_status.as_deref(), Some("AWAITING_SHIPMENT"));
        assert!(n.notification_id.starts_with("sha256:"));
        assert_eq!(parse(BODY).unwrap().notification_id, n.notification_id);
    }

    #[test]
    fn parses_address_and_cancellation_types_with_notification_id() {
        let b = br#"{"type":3,"tts_notification_id":"n-1","shop_id":"1","timestamp":5,"data":{"order_id":"42","update_time":5},"extra":true}"#;
        let n = parse(b).unwrap();
        assert_eq!(n.kind, NotificationType::RecipientAddressUpdate);
        assert_eq!(n.notification_id, "n-1");
        assert_eq!(n.order_id.as_deref(), Some("42"));
        let b = br#"{"type":11,"tts_notification_id":"n-2","shop_id":"1","timestamp":5,"data":{"order_id":"43","cancellations_role":"BUYER","cancel_status":"CANCELLATION_REQUEST_COMPLETE","cancel_id":"9","create_time":5}}"#;
        let n = parse(b).unwrap();
        assert_eq!(n.kind, NotificationType::CancellationStatusChange);
        assert_eq!(n.order_id.as_deref(), Some("43"));
        let b = br#"{"type":6,"tts_notification_id":"n-3","shop_id":"1","timestamp":5,"data":{"message":"bye"}}"#;
        assert_eq!(
            parse(b).unwrap().kind,
            NotificationType::SellerDeauthorization
        );
    }

    #[test]
    fn an_order_id_of_seventy_thousand_characters_is_refused_at_the_door() {
        let long = "7".repeat(70_000);
        let body =
            format!(r#"{{"type":1,"shop_id":"1","timestamp":5,"data":{{"order_id":"{long}"}}}}"#);
        let e = parse(body.as_bytes()).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains("order_id"), "{e}");
        assert!(is_tiktok_id("576684019603311365"));
        assert!(!is_tiktok_id(""));
    }

    #[test]
    fn malformed_bodies_are_a_distinct_400_error() {
        for b in [
            &b"not json"[..],
            br#"{"shop_id":"1","timestamp":5,"data":{}}"#,
            br#"{"type":1,"shop_id":"1","timestamp":5,"data":{}}"#,
            br#"{"type":3,"shop_id":"","timestamp":5,"data":{"order_id":"1"}}"#,
            br#"{"type":"one","shop_id":"1","timestamp":5}"#,
            br#"{"type":1,"shop_id":"1","timestamp":5,"data":{"order_id":"12a"}}"#,
            br#"{"type":1,"shop_id":"shop-1","timestamp":5,"data":{"order_id":"12"}}"#,
            br#"{"type":1,"shop_id":"1","timestamp":5,"data":{"order_id":"../../x"}}"#,
        ] {
            let e = parse(b).unwrap_err();
            assert!(matches!(e, WebhookError::Malformed(_)), "{e:?}");
            assert_eq!(e.http_status(), 400);
        }
    }
}
