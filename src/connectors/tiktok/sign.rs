//! Request and webhook signatures of the TikTok Shop Partner API (api/tiktok-shop.md §2, §6),
//! shared by the connector (to sign) and the simulator (to check), so both agree by construction
//! and the documented vectors pin the one implementation.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Query keys that never take part in the signature.
const UNSIGNED_KEYS: [&str; 2] = ["sign", "access_token"];

/// The string that gets wrapped in the secret: path, then every signed query key followed by its
/// value(s), then the raw body bytes. Repeated keys are grouped and their values joined with `,`
/// so `ids=1&ids=2` and `ids=1,2` sign alike, as the official Go SDK does.
pub fn base_string<K, V>(path: &str, query: &[(K, V)], body: Option<&[u8]>) -> Vec<u8>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in query {
        let k = k.as_ref();
        if UNSIGNED_KEYS.contains(&k) {
            continue;
        }
        grouped.entry(k).or_default().push(v.as_ref());
    }
    let mut out = Vec::with_capacity(path.len() + 64 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(path.as_bytes());
    for (k, vs) in grouped {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(vs.join(",").as_bytes());
    }
    // The exact bytes sent are signed (no re-serialisation), and an empty body adds nothing.
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The `sign` query parameter: lowercase hex HMAC-SHA256 keyed with the app secret over
/// `secret + base_string + secret`.
pub fn sign<K, V>(app_secret: &str, path: &str, query: &[(K, V)], body: Option<&[u8]>) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let base = base_string(path, query, body);
    let s = app_secret.as_bytes();
    hmac_hex(s, &[s, &base, s])
}

/// The webhook `Authorization` value: lowercase hex HMAC-SHA256(app_secret, app_key + body).
pub fn webhook_signature(app_key: &str, app_secret: &str, raw_body: &[u8]) -> String {
    hmac_hex(app_secret.as_bytes(), &[app_key.as_bytes(), raw_body])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn official_doc_vector() {
        let query = q(&[("app_key", "29a39d"), ("timestamp", "1623812664")]);
        assert_eq!(
            base_string("/authorization/202309/shops", &query, None),
            b"/authorization/202309/shopsapp_key29a39dtimestamp1623812664".to_vec()
        );
        assert_eq!(
            sign("e59af819cc", "/authorization/202309/shops", &query, None),
            "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"
        );
    }

    #[test]
    fn ecom_php_vector() {
        assert_eq!(
            sign("app_secret", "/test-api", &q(&[("foo", "bar")]), None),
            "d3cb7fe11ecae942802ceeca67e7cf10120cc12f1517d45fbc1c8cfe5413c80f"
        );
    }

    #[test]
    fn derived_order_search_vector_with_body_and_unsorted_query() {
        let query = q(&[
            ("timestamp", "1623812664"),
            ("sort_order", "ASC"),
            ("shop_cipher", "ROW_abc"),
            ("page_size", "50"),
            ("sort_field", "update_time"),
            ("app_key", "29a39d"),
            ("access_token", "never-signed"),
        ]);
        let body = br#"{"update_time_ge":1623800000,"update_time_lt":1623812000}"#;
        assert_eq!(
            sign(
                "e59af819cc",
                "/order/202309/orders/search",
                &query,
                Some(body)
            ),
            "5c50ab6ac802934ed81830df941e5a4e50defdb9fb42ccbb298bc78240018a55"
        );
    }

    #[test]
    fn derived_order_detail_vector_repeated_keys_join_with_comma() {
        let joined = q(&[
            ("app_key", "29a39d"),
            ("ids", "576461413038785752,576461413038785753"),
            ("shop_cipher", "ROW_abc"),
            ("timestamp", "1623812664"),
        ]);
        let repeated = q(&[
            ("ids", "576461413038785752"),
            ("app_key", "29a39d"),
            ("ids", "576461413038785753"),
            ("shop_cipher", "ROW_abc"),
            ("timestamp", "1623812664"),
            ("sign", "whatever"),
        ]);
        let want = "5e91e6d8e40202c51d43231763d5d35b063052797074ae9cbb6d1b94b997c1a2";
        assert_eq!(
            sign("e59af819cc", "/order/202309/orders", &joined, None),
            want
        );
        assert_eq!(
            sign("e59af819cc", "/order/202309/orders", &repeated, None),
            want
        );
    }

    #[test]
    fn official_body_example_base_string_layout() {
        let body = br#"{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}"#;
        let query = q(&[
            ("timestamp", "1696909648"),
            ("shop_cipher", "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK"),
            ("app_key", "68xu9ks5p4i8"),
        ]);
        let mut want = b"/event/202309/webhooksapp_key68xu9ks5p4i8shop_cipherROW_xkMbgAAAeVAQra0eZWebFQq5aIKtimestamp1696909648".to_vec();
        want.extend_from_slice(body);
        assert_eq!(
            base_string("/event/202309/webhooks", &query, Some(body)),
            want
        );
    }

    #[test]
    fn webhook_vector() {
        let body = br#"{"type":1,"shop_id":"7494726673780148744","timestamp":1664095733,"data":{"order_id":"576684019603311365","order_status":"AWAITING_SHIPMENT","update_time":1664095610}}"#;
        assert_eq!(
            webhook_signature("fake_app_key", "fake_app_secret", body),
            "21109834de72ec53c9959716d8514ae388ce1f123e5ffdcafc46713fcdf62b27"
        );
    }

    #[test]
    fn signature_is_lowercase_hex() {
        let s = sign("k", "/p", &q(&[("a", "b")]), Some(b"{}"));
        assert_eq!(s.len(), 64);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    }
}
