//! What a shop's market offers: Mark Package As Shipped exists only in some.

/// Markets where the seller's own carrier ships with Mark Package As Shipped
/// (TikTok reports the United Kingdom as `GB`; `UK` is accepted too).
pub const MARK_SHIPPED_MARKETS: &[&str] = &["US", "GB", "UK", "ES", "IE", "IT", "DE", "FR", "JP"];

/// An unknown region (tokens from before the shop was read) keeps the behaviour
/// every shop had before markets were told apart.
pub fn offers_mark_package_shipped(region: Option<&str>) -> bool {
    match region.map(str::trim).filter(|r| !r.is_empty()) {
        None => true,
        Some(r) => MARK_SHIPPED_MARKETS
            .iter()
            .any(|m| m.eq_ignore_ascii_case(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_package_as_shipped_markets() {
        for r in ["US", "gb", "UK", "DE", "JP"] {
            assert!(offers_mark_package_shipped(Some(r)), "{r}");
        }
        for r in ["MY", "TH", "ID", "VN", "PH", "SG", "MX", "BR"] {
            assert!(!offers_mark_package_shipped(Some(r)), "{r}");
        }
        assert!(offers_mark_package_shipped(None));
        assert!(offers_mark_package_shipped(Some("")));
    }
}
