//! The fuzzed entry points and the valid documents their inputs grow from.

use std::io::Cursor;

use crate::config::Settings;
use crate::connectors::katana::webhook as katana_webhook;
use crate::connectors::tiktok::webhook as tiktok_webhook;
use crate::domain::codec::DomainEvent;
use crate::domain::order::{Order, OrderEvent};
use crate::domain::sku::{Sku, SkuEvent};
use crate::domain::Aggregate;
use crate::replay::capture::read_capture;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    TikTokWebhook,
    KatanaWebhook,
    Capture,
    Settings,
}

const TIKTOK_BODIES: &[&str] = &[
    r#"{"type":1,"shop_id":"7494726673780148744","timestamp":1664095733,"data":{"order_id":"576684019603311365","order_status":"AWAITING_SHIPMENT","update_time":1664095610}}"#,
    r#"{"type":3,"tts_notification_id":"n-1","shop_id":"1","timestamp":5,"data":{"order_id":"42","update_time":5},"extra":true}"#,
    r#"{"type":11,"tts_notification_id":"n-2","shop_id":"1","timestamp":5,"data":{"order_id":"43","cancellations_role":"BUYER","cancel_status":"CANCELLATION_REQUEST_COMPLETE","cancel_id":"9","create_time":5}}"#,
    r#"{"type":6,"tts_notification_id":"n-3","shop_id":1,"timestamp":5,"data":{"message":"bye"}}"#,
];

const KATANA_BODIES: &[&str] = &[
    r#"{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":1,"object":{"id":"1","status":"DELIVERED","href":"https://api.katanamrp.com/v1/sales_orders/1"}}"#,
    r#"{"resource_type":"current_inventory","action":"current_inventory.product_updated","webhook_id":"7","object":{"id":12345}}"#,
];

const SETTINGS: &str = r#"
[store]
path = "tks.db"
[server]
bind = "127.0.0.1:8080"
request_timeout = "10s"
[tiktok]
app_key = "abc"
shop_id = "7494726673780148744"
[katana]
on_cancel = "delete"
requests_per_minute = 60
create_settle = "5m"
[sync]
order_hold = "60m"
inventory_buffer = "60m"
buffer_mode = "increases_only"
safety_stock = 2
fbt_orders = "record_as_done"
[warehouses]
pickup_warehouse_id = "7300000000000000001"
pickup_location_id = 1
[carriers]
"UPS" = "6617675021119438849"
"#;

const CAPTURE: &str = include_str!("../../tests/golden/v1-every-event-type.jsonl");

impl Target {
    pub fn all() -> [Target; 4] {
        [
            Target::TikTokWebhook,
            Target::KatanaWebhook,
            Target::Capture,
            Target::Settings,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::TikTokWebhook => "tiktok_webhook",
            Target::KatanaWebhook => "katana_webhook",
            Target::Capture => "capture",
            Target::Settings => "settings",
        }
    }

    pub fn seeds(self) -> Vec<Vec<u8>> {
        let texts: Vec<&str> = match self {
            Target::TikTokWebhook => TIKTOK_BODIES.to_vec(),
            Target::KatanaWebhook => KATANA_BODIES.to_vec(),
            Target::Capture => vec![CAPTURE],
            Target::Settings => vec![SETTINGS],
        };
        texts.into_iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    /// Feeds `input` to the target; returning (with any `Result`) is a pass.
    pub fn run(self, input: &[u8]) {
        match self {
            Target::TikTokWebhook => {
                let header = String::from_utf8_lossy(&input[..input.len().min(64)]);
                let _ = tiktok_webhook::verify("app-key", "app-secret", input, &header);
                let _ = tiktok_webhook::parse(input);
            }
            Target::KatanaWebhook => {
                let header = String::from_utf8_lossy(&input[..input.len().min(71)]);
                let _ = katana_webhook::verify("token", input, Some(&header));
                let _ = katana_webhook::parse(input);
            }
            Target::Capture => {
                let Ok((_, events)) = read_capture(Cursor::new(input), &mut |_| {}) else {
                    return;
                };
                let mut order = Order::default();
                let mut sku = Sku::default();
                for e in events {
                    if e.stream.starts_with("order-") {
                        if let Ok(ev) = OrderEvent::decode(&e.event_type, e.version, &e.payload) {
                            order.apply(&ev);
                        }
                    } else if let Ok(ev) = SkuEvent::decode(&e.event_type, e.version, &e.payload) {
                        sku.apply(&ev);
                    }
                }
                let _ = sku.atp(0);
            }
            Target::Settings => {
                let _ = Settings::from_toml(&String::from_utf8_lossy(input));
            }
        }
    }
}
