//! `tks bench console`: page times of the overview, the orders list and a SKU
//! chart, through HTTP against a running service whose log holds 100,000 orders
//! spread over a day and SKUs with a day of stock, demand and pushes.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};

use crate::bench::print;
use crate::clock::ManualClock;
use crate::domain::observed::{
    FulfillmentType, LineUnit, OrderSnapshot, Quantity, TikTokOrderStatus,
};
use crate::domain::order::{HoldExpired, OrderEvent, OrderPlaced, Source};
use crate::domain::sku::{DemandChanged, InventoryPushed, SkuEvent, StockChanged};
use crate::domain::DomainEvent;
use crate::store::{
    EventMeta, EventStore, Expected, NewEvent, SqliteStore, StreamAppend, UnitOfWork,
};

const SKUS: u64 = 40;
/// Stock, demand and push events written per SKU.
const SKU_EVENTS: u64 = 3000;

fn new_event(e: &impl DomainEvent, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_type: e.event_type().into(),
        version: e.version(),
        payload: e.encode(),
        meta: EventMeta::root(at),
    }
}

/// Writes `orders` placed orders (half past their hold) over the 24 h before
/// `end`, and SKU streams with stock changes, demand and pushes.
pub async fn write_log(
    store: &SqliteStore,
    orders: u64,
    end: DateTime<Utc>,
) -> Result<(), crate::store::StoreError> {
    let day_ms = 86_400_000i64;
    let start = end - chrono::Duration::milliseconds(day_ms);
    let mut n = 0u64;
    while n < orders {
        let mut unit = UnitOfWork::default();
        while unit.event_count() < 2000 && n < orders {
            n += 1;
            let at = start + chrono::Duration::milliseconds((n as i64 * day_ms) / orders as i64);
            let id = format!("58800{n:012}");
            let sku = format!("SKU-{}", n % SKUS);
            let snapshot = OrderSnapshot {
                shop_id: String::new(),
                order_id: id.clone(),
                status: TikTokOrderStatus::AwaitingShipment,
                fulfillment_type: FulfillmentType::FulfillmentBySeller,
                shipping_type: Default::default(),
                create_time: at,
                update_time: at,
                currency: "USD".into(),
                warehouse_id: Some("7000001".into()),
                recipient: None,
                buyer_email: None,
                units: (0..2)
                    .map(|u| LineUnit {
                        line_item_id: format!("{id}{u}"),
                        sku_id: format!("{}", n % SKUS),
                        seller_sku: sku.clone(),
                        sale_price: "19.99".into(),
                        cancelled: false,
                        shipped: false,
                    })
                    .collect(),
            };
            let hold_until = at + chrono::Duration::hours(1);
            let mut events = vec![new_event(
                &OrderEvent::OrderPlaced(OrderPlaced {
                    snapshot,
                    hold_until,
                    source: Source::Poll,
                }),
                at,
            )];
            if n % 2 == 0 {
                events.push(new_event(
                    &OrderEvent::HoldExpired(HoldExpired { at: hold_until }),
                    hold_until,
                ));
            }
            unit.appends.push(StreamAppend {
                stream: format!("order-{id}"),
                expected: Expected::Seq(0),
                events,
            });
        }
        store.commit(unit).await?;
    }
    for s in 0..SKUS {
        let mut events = Vec::new();
        for i in 0..SKU_EVENTS {
            let at =
                start + chrono::Duration::milliseconds((i as i64 * day_ms) / SKU_EVENTS as i64);
            let e = match i % 3 {
                0 => SkuEvent::StockChanged(StockChanged {
                    location_id: 1,
                    in_stock: Quantity::from_units(200 + (i % 50) as i64),
                    committed: Quantity::from_units((i % 30) as i64),
                }),
                1 => SkuEvent::DemandChanged(DemandChanged {
                    shop: String::new(),
                    order_id: format!("58800{:012}", i * SKUS + s),
                    units: (i % 4) as u32,
                }),
                _ => SkuEvent::InventoryPushed(InventoryPushed {
                    shop: String::new(),
                    quantity: 180 + (i % 60) as i64,
                }),
            };
            events.push(new_event(&e, at));
        }
        for chunk in events.chunks(1000) {
            let unit = UnitOfWork::append(format!("sku-SKU-{s}"), Expected::Any, chunk.to_vec());
            store.commit(unit).await?;
        }
    }
    Ok(())
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        ms.get(((ms.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (pct(0.50), pct(0.99))
}

/// Runs the benchmark in `dir` with `orders` orders; must run inside an actix system.
pub async fn run(dir: &Path, orders: u64) -> anyhow::Result<()> {
    use crate::app::{self, StartOptions};
    use crate::config::{Secret, Settings};
    let path = dir.join("console.db");
    let end = Utc
        .with_ymd_and_hms(2026, 5, 5, 9, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("bad bench time"))?;
    {
        let store = SqliteStore::open(&path)?;
        let t = Instant::now();
        write_log(&store, orders, end).await?;
        print("console.orders", orders);
        print("console.log_events", store.head());
        print(
            "console.log_write_seconds",
            format!("{:.1}", t.elapsed().as_secs_f64()),
        );
        let t = Instant::now();
        let folded = crate::console::readmodel::rebuild(&store, &path)?;
        let secs = t.elapsed().as_secs_f64();
        print("console.read_model_rebuild_seconds", format!("{secs:.1}"));
        print(
            "console.read_model_rebuild_events_per_sec",
            format!("{:.0}", folded as f64 / secs),
        );
    }
    let mut settings = Settings::default();
    settings.store.path = path.to_string_lossy().into_owned();
    settings.server.admin_token = Secret::new("bench-admin-token");
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let options = StartOptions {
        pollers: false,
        ..StartOptions::default()
    };
    let clock = ManualClock::new(end);
    let service = app::start(settings, clock.clock(), listener, options).await?;
    let base = service.base_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = http
        .post(format!("{base}/login"))
        .form(&[("token", "bench-admin-token")])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("login set no cookie"))?;
    let pages = [
        ("overview", "/".to_string()),
        ("orders", "/orders".to_string()),
        (
            "orders_filtered",
            "/orders?state=held&sku=SKU-7&page=3".to_string(),
        ),
        ("sku_chart", "/skus/SKU-7".to_string()),
        // The order page reads the log itself: the timeline scans it for causes.
        ("order_timeline", format!("/orders/58800{:012}", orders / 2)),
    ];
    for (name, page) in pages {
        let mut ms = Vec::new();
        // The timeline scans the whole log per request: fewer runs of it.
        let (runs, warm) = if name == "order_timeline" {
            (25, 5)
        } else {
            (120, 20)
        };
        for i in 0..runs {
            let t = Instant::now();
            let r = http
                .get(format!("{base}{page}"))
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            if !status.is_success() {
                anyhow::bail!("{page}: {status}: {}", String::from_utf8_lossy(&body));
            }
            // A fast page that shows the wrong thing measures nothing.
            let expected = match name {
                "orders" => Some(format!("{orders} orders")),
                "overview" => Some(format!("<th class=\"num\">{orders}</th>")),
                _ => None,
            };
            if let (0, Some(expected)) = (i, expected) {
                if !String::from_utf8_lossy(&body).contains(&expected) {
                    anyhow::bail!("{page} does not say {expected:?}");
                }
            }
            // The first requests warm the caches; they are not the page's time.
            if i >= warm {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let (p50, p99) = percentiles(ms);
        print(&format!("console.{name}_p50_ms"), format!("{p50:.2}"));
        print(&format!("console.{name}_p99_ms"), format!("{p99:.2}"));
    }
    print(
        "process.peak_rss_mib",
        format!("{:.0}", crate::bench::peak_rss_mib()),
    );
    service.stop().await;
    Ok(())
}
