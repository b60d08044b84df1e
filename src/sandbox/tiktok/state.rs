//! One simulated shop: orders with per-unit line items, catalogue with per-warehouse stock,
//! logistics, and the business rules TikTok enforces on them. Pure state transitions (time
//! passed in); the HTTP layer in `server.rs` calls these under the shop's lock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::packages::{mpas_market, Label, SimPackage, TrackingUpdate};
use super::shop::{shop_scoped_id, IdCounter, ShopWarehouses, MAIN_SHOP_PART};
use super::SimShop;
use crate::domain::observed::{FulfillmentType, TikTokOrderStatus};

/// Simulator-specific codes where TikTok's docs name no exact code (documented in the report).
pub mod sim_codes {
    pub const ORDER_NOT_FOUND: i64 = 21011001;
    pub const ORDER_NOT_SHIPPABLE: i64 = 21011002;
    pub const LINE_ITEM_INVALID: i64 = 21011003;
    pub const PROVIDER_INVALID: i64 = 21011004;
    pub const NOT_FOUND: i64 = 21011005;
    pub const PRODUCT_NOT_FOUND: i64 = 12019150;
    pub const PRODUCT_NOT_ACTIVE: i64 = 12052037;
    pub const SKU_INVALID: i64 = 12052036;
    pub const WAREHOUSE_NOT_FOUND: i64 = 12052097;
    pub const STOCK_INVALID: i64 = 12019024;
    pub const WAREHOUSES_INCOMPLETE: i64 = 12019028;
    pub const QUANTITY_OUT_OF_LIMITS: i64 = 12052055;
    pub const PACKAGE_NOT_FOUND: i64 = 21011006;
    pub const PACKAGE_NOT_SHIPPABLE: i64 = 21011007;
    pub const SHIPPING_MODE_MISMATCH: i64 = 21011008;
    pub const PICKUP_SLOT_INVALID: i64 = 21011009;
    pub const DOCUMENT_NOT_READY: i64 = 21011010;
    pub const SHIPPING_INFO_LOCKED: i64 = 21011011;
    pub const SPLIT_NOT_ALLOWED: i64 = 21011012;
    pub const SPLIT_GROUPS_INVALID: i64 = 21011013;
    pub const MULTIPLE_PACKAGES: i64 = 21011014;
}

/// An API-level refusal: HTTP status, envelope code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiErr {
    pub http: u16,
    pub code: i64,
    pub message: String,
}

impl ApiErr {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ApiErr {
            http: 200,
            code,
            message: message.into(),
        }
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        ApiErr::new(36009004, format!("invalid param: {}", message.into()))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimAddress {
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: String,
    pub address_line1: String,
    pub address_line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub region_code: String,
}

impl SimAddress {
    pub fn demo() -> Self {
        SimAddress {
            name: "Ada Lovelace".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            phone_number: "(+1)555-0100".into(),
            address_line1: "1 Analytical Way".into(),
            address_line2: "".into(),
            city: "Springfield".into(),
            state: "Illinois".into(),
            postal_code: "62701".into(),
            region_code: "US".into(),
        }
    }

    fn wire(&self) -> Value {
        json!({
            "name": self.name, "first_name": self.first_name, "last_name": self.last_name,
            "phone_number": self.phone_number, "address_line1": self.address_line1,
            "address_line2": self.address_line2, "address_line3": "", "address_line4": "",
            "postal_code": self.postal_code, "region_code": self.region_code,
            "full_address": format!("{}, {}, {}, {}", self.address_line1, self.city, self.state, self.postal_code),
            "district_info": [
                {"address_level": "L0", "address_level_name": "Country", "address_name": self.region_code},
                {"address_level": "L1", "address_level_name": "State", "address_name": self.state},
                {"address_level": "L3", "address_level_name": "City", "address_name": self.city},
            ]
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SimUnit {
    pub id: String,
    pub sku_id: String,
    pub seller_sku: String,
    pub product_id: String,
    pub product_name: String,
    pub sale_price: String,
    pub cancelled: bool,
    pub package_id: Option<String>,
    pub tracking_number: Option<String>,
    pub shipping_provider_id: Option<String>,
    pub shipping_provider_name: Option<String>,
    /// The warehouse whose available stock this unit moved to committed, if any.
    pub reserved_at: Option<String>,
}

impl SimUnit {
    /// Shipped = handed a tracking number; TikTok-label and non-MPAS packages exist (and
    /// hold units) long before that.
    pub fn shipped(&self) -> bool {
        self.tracking_number.is_some()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SimOrder {
    pub id: String,
    pub status: TikTokOrderStatus,
    pub fulfillment_type: FulfillmentType,
    pub create_time: i64,
    pub update_time: i64,
    pub warehouse_id: String,
    pub currency: String,
    pub buyer_email: String,
    pub address: SimAddress,
    pub units: Vec<SimUnit>,
    /// `TIKTOK` (platform label) or `SELLER`.
    pub shipping_type: String,
    /// False when TikTok would refuse to split this order.
    pub splittable: bool,
    /// `SPLIT` once split; absent otherwise.
    pub split_or_combine_tag: Option<String>,
}

pub(super) fn status_str(s: TikTokOrderStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl SimOrder {
    /// The order as Get Order Detail / Search return it.
    pub fn wire(&self) -> Value {
        let order_status = status_str(self.status);
        let line_items: Vec<Value> = self
            .units
            .iter()
            .map(|u| {
                let display = if u.cancelled {
                    "CANCELLED".to_string()
                } else if u.shipped() {
                    match self.status {
                        TikTokOrderStatus::InTransit
                        | TikTokOrderStatus::Delivered
                        | TikTokOrderStatus::Completed => order_status.clone(),
                        _ => "AWAITING_COLLECTION".into(),
                    }
                } else {
                    match self.status {
                        TikTokOrderStatus::Unpaid => "UNPAID".into(),
                        _ => "AWAITING_SHIPMENT".into(),
                    }
                };
                let mut li = json!({
                    "id": u.id, "sku_id": u.sku_id, "seller_sku": u.seller_sku,
                    "product_id": u.product_id, "product_name": u.product_name,
                    "sku_name": u.seller_sku, "sale_price": u.sale_price,
                    "original_price": u.sale_price, "currency": self.currency,
                    "display_status": display, "is_gift": false,
                });
                // US local sellers see no package fields before shipment.
                if let (Some(p), Some(obj)) = (&u.package_id, li.as_object_mut()) {
                    let package_status = if u.cancelled {
                        "CANCELLED"
                    } else if u.shipped() {
                        "PROCESSING"
                    } else {
                        "TO_FULFILL"
                    };
                    obj.insert("package_id".into(), json!(p));
                    obj.insert("package_status".into(), json!(package_status));
                    if u.shipped() {
                        obj.insert("tracking_number".into(), json!(u.tracking_number));
                        obj.insert("shipping_provider_id".into(), json!(u.shipping_provider_id));
                        obj.insert(
                            "shipping_provider_name".into(),
                            json!(u.shipping_provider_name),
                        );
                    }
                }
                li
            })
            .collect();
        let packages = self.package_ids();
        let total: i64 = self
            .units
            .iter()
            .filter(|u| !u.cancelled)
            .filter_map(|u| price_cents(&u.sale_price))
            .sum();
        let mut o = json!({
            "id": self.id,
            "status": order_status,
            "fulfillment_type": self.fulfillment_type,
            "shipping_type": self.shipping_type,
            "create_time": self.create_time,
            "update_time": self.update_time,
            "paid_time": if self.status == TikTokOrderStatus::Unpaid { Value::Null } else { json!(self.create_time) },
            "warehouse_id": self.warehouse_id,
            "buyer_email": self.buyer_email,
            "is_on_hold_order": self.status == TikTokOrderStatus::OnHold,
            "payment": {"currency": self.currency, "sub_total": cents_str(total), "total_amount": cents_str(total)},
            "packages": packages.iter().map(|p| json!({"id": p})).collect::<Vec<_>>(),
            "line_items": line_items,
            "user_id": "7494000000000000001",
        });
        if let (Some(tag), Some(obj)) = (&self.split_or_combine_tag, o.as_object_mut()) {
            obj.insert("split_or_combine_tag".into(), json!(tag));
        }
        // The address is not released while the order is UNPAID or ON_HOLD.
        if !self.status.is_pre_release() {
            if let Some(obj) = o.as_object_mut() {
                obj.insert("recipient_address".into(), self.address.wire());
            }
        }
        o
    }

    /// The order's package ids in first-seen unit order.
    pub fn package_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.units.iter().filter_map(|u| u.package_id.as_ref()) {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    pub fn is_tiktok_shipping(&self) -> bool {
        self.shipping_type == "TIKTOK"
    }
}

fn price_cents(s: &str) -> Option<i64> {
    let (i, f) = s.split_once('.').unwrap_or((s, "0"));
    let f = format!("{f:0<2}");
    Some(i.parse::<i64>().ok()? * 100 + f.get(..2)?.parse::<i64>().ok()?)
}

fn cents_str(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

#[derive(Clone, Debug, Serialize)]
pub struct SimSku {
    pub id: String,
    pub seller_sku: String,
    pub price: String,
    /// Per-warehouse available stock in assignment order.
    pub inventory: Vec<(String, i64)>,
    /// Per-warehouse units reserved by orders not shipped yet (absent = 0).
    pub committed: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimProduct {
    pub id: String,
    pub title: String,
    pub status: String,
    pub skus: Vec<SimSku>,
    pub create_time: i64,
    pub update_time: i64,
}

impl SimProduct {
    fn wire(&self, currency: &str) -> Value {
        json!({
            "id": self.id, "title": self.title, "status": self.status,
            "create_time": self.create_time, "update_time": self.update_time,
            "skus": self.skus.iter().map(|s| json!({
                "id": s.id, "seller_sku": s.seller_sku,
                "price": {"currency": currency, "sale_price": s.price, "tax_exclusive_price": s.price},
                "inventory": s.inventory.iter().map(|(w, q)| json!({"warehouse_id": w, "quantity": q})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Control input: a product to put in the catalogue (ids generated when absent).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[serde(default)]
    pub id: Option<String>,
    pub title: String,
    #[serde(default = "activate")]
    pub status: String,
    pub skus: Vec<NewSku>,
}

fn activate() -> String {
    "ACTIVATE".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSku {
    #[serde(default)]
    pub id: Option<String>,
    pub seller_sku: String,
    #[serde(default = "default_price")]
    pub price: String,
    /// (warehouse id, quantity) pairs; empty = the default sales warehouse with 0.
    #[serde(default)]
    pub inventory: Vec<(String, i64)>,
}

fn default_price() -> String {
    "10.00".into()
}

#[derive(Clone, Debug, Serialize)]
pub struct SimWarehouse {
    pub id: String,
    pub name: String,
    pub warehouse_type: String,
    pub effect_status: String,
    pub is_default: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimDeliveryOption {
    pub id: String,
    pub name: String,
    pub option_type: String,
    pub warehouse_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimProvider {
    pub id: String,
    pub name: String,
    pub delivery_option_id: String,
}

/// A package shipped through Mark Package As Shipped or Ship Package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRecord {
    pub package_id: String,
    pub order_id: String,
    pub line_item_ids: Vec<String>,
    pub tracking_number: String,
    pub shipping_provider_id: String,
    pub time: i64,
    /// `mark_shipped`, `self_shipment` or `tiktok_label`: which call shipped it.
    #[serde(default)]
    pub method: String,
    /// `PICKUP` / `DROP_OFF` for TikTok-label shipments.
    #[serde(default)]
    pub handover_method: Option<String>,
}

/// One warehouse quantity accepted by Update Inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPush {
    pub product_id: String,
    pub sku_id: String,
    pub warehouse_id: String,
    pub quantity: i64,
    pub time: i64,
}

/// Control input: a new order.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// `sku` matches a SKU id or a seller SKU.
    pub items: Vec<NewOrderItem>,
    #[serde(default)]
    pub status: Option<TikTokOrderStatus>,
    #[serde(default)]
    pub fulfillment_type: Option<FulfillmentType>,
    #[serde(default)]
    pub address: Option<SimAddress>,
    #[serde(default)]
    pub buyer_email: Option<String>,
    /// `TIKTOK` | `SELLER`; SELLER unless the order is fulfilled by TikTok.
    #[serde(default)]
    pub shipping_type: Option<String>,
    /// Default true.
    #[serde(default)]
    pub splittable: Option<bool>,
    /// The sales warehouse the order ships from (default: the main warehouse).
    #[serde(default)]
    pub warehouse_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrderItem {
    pub sku: String,
    pub quantity: u32,
}

impl NewOrder {
    pub fn of(items: &[(&str, u32)], status: TikTokOrderStatus) -> Self {
        NewOrder {
            items: items
                .iter()
                .map(|(s, q)| NewOrderItem {
                    sku: s.to_string(),
                    quantity: *q,
                })
                .collect(),
            status: Some(status),
            fulfillment_type: None,
            address: None,
            buyer_email: None,
            shipping_type: None,
            splittable: None,
            warehouse_id: None,
        }
    }
}

/// Control input: an edit during the buyer's edit window.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderEdit {
    pub address: Option<SimAddress>,
    pub add_items: Vec<NewOrderItem>,
    pub remove_line_item_ids: Vec<String>,
}

/// A notification the server must send after the state change.
#[derive(Clone, Debug)]
pub struct Notification {
    pub kind: i64,
    pub data: Value,
}

pub struct State {
    /// Shared with every other shop of the simulator.
    ids: IdCounter,
    /// The shop as Get Authorized Shops lists it (the seller may rename it).
    pub shop: SimShop,
    pub warehouse_ids: ShopWarehouses,
    pub currency: String,
    pub orders: BTreeMap<String, SimOrder>,
    pub products: BTreeMap<String, SimProduct>,
    pub warehouses: Vec<SimWarehouse>,
    pub delivery_options: Vec<SimDeliveryOption>,
    pub providers: Vec<SimProvider>,
    pub shipments: Vec<ShipmentRecord>,
    pub inventory_pushes: Vec<InventoryPush>,
    /// The shop's region: decides whether Mark Package As Shipped exists.
    pub region: String,
    /// Where the simulator serves, for URLs it hands out (shipping labels).
    pub base_url: String,
    pub packages: BTreeMap<String, SimPackage>,
    pub tracking_updates: Vec<TrackingUpdate>,
    pub labels: BTreeMap<String, Label>,
}

pub const MAIN_WAREHOUSE: &str = "7300000000000000001";
pub const SECOND_WAREHOUSE: &str = "7300000000000000002";
pub const RETURN_WAREHOUSE: &str = "7300000000000000003";
pub const SELLER_SHIPPING_OPTION: &str = "7400000000000000001";

impl State {
    /// A lone main shop with its own id sequence (unit tests of the business rules).
    pub fn new() -> Self {
        let shop = SimShop {
            id: String::new(),
            name: String::new(),
            cipher: String::new(),
            region: "US".into(),
        };
        Self::for_shop(shop, MAIN_SHOP_PART, IdCounter::default())
    }

    /// A shop's empty state; `shop_part` picks its warehouse and delivery-option ids (see
    /// [`ShopWarehouses`]).
    pub fn for_shop(shop: SimShop, shop_part: &str, ids: IdCounter) -> Self {
        let warehouse_ids = ShopWarehouses {
            main: shop_scoped_id(73, shop_part, 1),
            second: shop_scoped_id(73, shop_part, 2),
            return_: shop_scoped_id(73, shop_part, 3),
        };
        let wh = |id: &str, name: &str, t: &str, default: bool| SimWarehouse {
            id: id.into(),
            name: name.into(),
            warehouse_type: t.into(),
            effect_status: "ENABLED".into(),
            is_default: default,
        };
        let mut delivery_options = Vec::new();
        let mut providers = Vec::new();
        for (i, w) in [&warehouse_ids.main, &warehouse_ids.second]
            .iter()
            .enumerate()
        {
            let seller = shop_scoped_id(74, shop_part, i * 2 + 1);
            let standard = shop_scoped_id(74, shop_part, i * 2 + 2);
            delivery_options.push(SimDeliveryOption {
                id: seller.clone(),
                name: "Shipped by seller".into(),
                option_type: "SEND_BY_SELLER".into(),
                warehouse_id: w.to_string(),
            });
            delivery_options.push(SimDeliveryOption {
                id: standard,
                name: "Standard shipping".into(),
                option_type: "STANDARD".into(),
                warehouse_id: w.to_string(),
            });
            for (j, name) in ["USPS", "UPS", "FedEx"].iter().enumerate() {
                providers.push(SimProvider {
                    id: format!("71178588580720166{i}{j}"),
                    name: name.to_string(),
                    delivery_option_id: seller.clone(),
                });
            }
        }
        let warehouses = vec![
            wh(
                &warehouse_ids.main,
                "Main warehouse",
                "SALES_WAREHOUSE",
                true,
            ),
            wh(
                &warehouse_ids.second,
                "Overflow warehouse",
                "SALES_WAREHOUSE",
                false,
            ),
            wh(&warehouse_ids.return_, "Returns", "RETURN_WAREHOUSE", false),
        ];
        State {
            ids,
            region: shop.region.to_ascii_uppercase(),
            shop,
            warehouse_ids,
            currency: "USD".into(),
            orders: BTreeMap::new(),
            products: BTreeMap::new(),
            warehouses,
            delivery_options,
            providers,
            shipments: Vec::new(),
            inventory_pushes: Vec::new(),
            base_url: String::new(),
            packages: BTreeMap::new(),
            tracking_updates: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// 18/19-digit decimal ids like TikTok's, unique per kind prefix across all shops.
    pub fn id(&mut self, prefix: u64) -> String {
        format!("{}", prefix * 1_000_000_000_000_000 + self.ids.next())
    }

    // ----- catalogue ---------------------------------------------------------------------

    pub fn set_catalogue(
        &mut self,
        products: Vec<NewProduct>,
        now: i64,
    ) -> Result<Vec<SimProduct>, ApiErr> {
        let mut out = BTreeMap::new();
        for p in products {
            let pid = p.id.clone().unwrap_or_else(|| self.id(1));
            let mut skus = Vec::new();
            for s in p.skus {
                let inventory = if s.inventory.is_empty() {
                    vec![(self.warehouse_ids.main.clone(), 0)]
                } else {
                    s.inventory
                };
                for (w, _) in &inventory {
                    if !self
                        .warehouses
                        .iter()
                        .any(|x| &x.id == w && x.warehouse_type == "SALES_WAREHOUSE")
                    {
                        return Err(ApiErr::invalid_param(format!(
                            "{w} is not a sales warehouse"
                        )));
                    }
                }
                skus.push(SimSku {
                    id: s.id.clone().unwrap_or_else(|| self.id(2)),
                    seller_sku: s.seller_sku,
                    price: s.price,
                    inventory,
                    committed: BTreeMap::new(),
                });
            }
            out.insert(
                pid.clone(),
                SimProduct {
                    id: pid,
                    title: p.title,
                    status: p.status,
                    skus,
                    create_time: now,
                    update_time: now,
                },
            );
        }
        self.products = out;
        Ok(self.products.values().cloned().collect())
    }

    pub fn demo_catalogue() -> Vec<NewProduct> {
        let sku = |id: &str, seller_sku: &str, price: &str, inv: Vec<(&str, i64)>| NewSku {
            id: Some(id.into()),
            seller_sku: seller_sku.into(),
            price: price.into(),
            inventory: inv.into_iter().map(|(w, q)| (w.to_string(), q)).collect(),
        };
        vec![
            NewProduct {
                id: Some("1729000000000000001".into()),
                title: "Ceramic mug".into(),
                status: "ACTIVATE".into(),
                skus: vec![
                    sku(
                        "1729100000000000001",
                        "MUG-RED",
                        "12.50",
                        vec![(MAIN_WAREHOUSE, 10)],
                    ),
                    sku(
                        "1729100000000000002",
                        "MUG-BLUE",
                        "12.50",
                        vec![(MAIN_WAREHOUSE, 5), (SECOND_WAREHOUSE, 7)],
                    ),
                ],
            },
            NewProduct {
                id: Some("1729000000000000002".into()),
                title: "Cotton cap".into(),
                status: "ACTIVATE".into(),
                skus: vec![sku(
                    "1729100000000000003",
                    "CAP-1",
                    "20.00",
                    vec![(MAIN_WAREHOUSE, 3)],
                )],
            },
            NewProduct {
                id: Some("1729000000000000003".into()),
                title: "Prototype".into(),
                status: "DRAFT".into(),
                skus: vec![sku(
                    "1729100000000000004",
                    "PROTO-1",
                    "5.00",
                    vec![(MAIN_WAREHOUSE, 0)],
                )],
            },
        ]
    }

    /// A SKU by id or seller SKU; a seller SKU listed on several products resolves to
    /// its first live listing, since buyers can only buy from those.
    fn find_sku(&self, key: &str) -> Option<(&SimProduct, &SimSku)> {
        let mut hits = self.products.values().flat_map(|p| {
            p.skus
                .iter()
                .filter(move |s| s.id == key || s.seller_sku == key)
                .map(move |s| (p, s))
        });
        let first = hits.next()?;
        if first.0.status == "ACTIVATE" {
            return Some(first);
        }
        Some(hits.find(|(p, _)| p.status == "ACTIVATE").unwrap_or(first))
    }

    // ----- orders --------------------------------------------------------------------------

    fn units_for(&mut self, items: &[NewOrderItem]) -> Result<Vec<SimUnit>, ApiErr> {
        let mut units = Vec::new();
        for it in items {
            if it.quantity == 0 {
                return Err(ApiErr::invalid_param(format!(
                    "quantity of {} is 0",
                    it.sku
                )));
            }
            let (p, s) = self
                .find_sku(&it.sku)
                .map(|(p, s)| (p.clone(), s.clone()))
                .ok_or_else(|| ApiErr::invalid_param(format!("unknown sku {}", it.sku)))?;
            for _ in 0..it.quantity {
                units.push(SimUnit {
                    id: self.id(5),
                    sku_id: s.id.clone(),
                    seller_sku: s.seller_sku.clone(),
                    product_id: p.id.clone(),
                    product_name: p.title.clone(),
                    sale_price: s.price.clone(),
                    cancelled: false,
                    package_id: None,
                    tracking_number: None,
                    shipping_provider_id: None,
                    shipping_provider_name: None,
                    reserved_at: None,
                });
            }
        }
        Ok(units)
    }

    pub fn create_order(
        &mut self,
        new: NewOrder,
        now: i64,
    ) -> Result<(SimOrder, Vec<Notification>), ApiErr> {
        if new.items.is_empty() {
            return Err(ApiErr::invalid_param("an order needs items"));
        }
        let shipping_type = match new.shipping_type.as_deref() {
            None if new.fulfillment_type == Some(FulfillmentType::FulfillmentByTiktok) => "TIKTOK",
            None | Some("SELLER") => "SELLER",
            Some("TIKTOK") => "TIKTOK",
            Some(other) => {
                return Err(ApiErr::invalid_param(format!(
                    "shipping_type {other} (TIKTOK or SELLER)"
                )))
            }
        };
        let mut units = self.units_for(&new.items)?;
        let fulfillment_type = new
            .fulfillment_type
            .unwrap_or(FulfillmentType::FulfillmentBySeller);
        let warehouse_id = self.order_warehouse(new.warehouse_id.as_deref(), &units)?;
        if fulfillment_type == FulfillmentType::FulfillmentBySeller {
            self.reserve(&warehouse_id, &mut units);
        }
        let id = self.id(576);
        // TikTok creates the package up front unless the seller will declare it by Mark
        // Package As Shipped (seller shipping in an MPAS market).
        if shipping_type == "TIKTOK" || !mpas_market(&self.region) {
            let package_id = self.new_package(&id, now);
            for u in &mut units {
                u.package_id = Some(package_id.clone());
            }
        }
        let order = SimOrder {
            id,
            status: new.status.unwrap_or(TikTokOrderStatus::OnHold),
            fulfillment_type,
            create_time: now,
            update_time: now,
            warehouse_id,
            currency: self.currency.clone(),
            buyer_email: "buyer-relay@scs.tiktokw.us".into(),
            address: new.address.unwrap_or_else(SimAddress::demo),
            units,
            shipping_type: shipping_type.into(),
            splittable: new.splittable.unwrap_or(true),
            split_or_combine_tag: None,
        };
        let n = status_notification(&order);
        self.orders.insert(order.id.clone(), order.clone());
        Ok((order, vec![n]))
    }

    pub(super) fn order_mut(&mut self, id: &str) -> Result<&mut SimOrder, ApiErr> {
        self.orders
            .get_mut(id)
            .ok_or_else(|| ApiErr::new(sim_codes::ORDER_NOT_FOUND, format!("order {id} not found")))
    }

    pub fn edit_order(
        &mut self,
        id: &str,
        edit: OrderEdit,
        now: i64,
    ) -> Result<(SimOrder, Vec<Notification>), ApiErr> {
        let mut added = self.units_for(&edit.add_items)?;
        let (warehouse, by_seller) = {
            let o = self.order_mut(id)?;
            (
                o.warehouse_id.clone(),
                o.fulfillment_type == FulfillmentType::FulfillmentBySeller,
            )
        };
        let order = self.order_mut(id)?;
        // Added units join the order's open package, if TikTok already made one.
        let open_package = order
            .units
            .iter()
            .find(|u| !u.shipped())
            .and_then(|u| u.package_id.clone());
        for u in &mut added {
            u.package_id = open_package.clone();
        }
        if !matches!(
            order.status,
            TikTokOrderStatus::Unpaid
                | TikTokOrderStatus::OnHold
                | TikTokOrderStatus::AwaitingShipment
        ) {
            return Err(ApiErr::new(
                sim_codes::ORDER_NOT_SHIPPABLE,
                "order can no longer be edited",
            ));
        }
        if let Some(rid) = edit
            .remove_line_item_ids
            .iter()
            .find(|rid| !order.units.iter().any(|u| &u.id == *rid))
        {
            return Err(ApiErr::new(
                sim_codes::LINE_ITEM_INVALID,
                format!("line item {rid} not in order"),
            ));
        }
        let (removed, kept): (Vec<SimUnit>, Vec<SimUnit>) = std::mem::take(&mut order.units)
            .into_iter()
            .partition(|u| edit.remove_line_item_ids.contains(&u.id));
        order.units = kept;
        let mut notes = Vec::new();
        if let Some(a) = edit.address {
            order.address = a;
            notes.push(Notification {
                kind: 3,
                data: json!({"order_id": order.id, "update_time": now}),
            });
        }
        order.update_time = now;
        let released: Vec<(String, String)> = removed
            .into_iter()
            .filter_map(|u| u.reserved_at.map(|w| (u.sku_id, w)))
            .collect();
        self.release(released);
        if by_seller {
            self.reserve(&warehouse, &mut added);
        }
        let order = self.order_mut(id)?;
        order.units.extend(added);
        Ok((order.clone(), notes))
    }

    /// Cancels the whole order (`None`) or some units; all units cancelled = CANCELLED.
    pub fn cancel(
        &mut self,
        id: &str,
        line_item_ids: Option<Vec<String>>,
        now: i64,
    ) -> Result<(SimOrder, Vec<Notification>), ApiErr> {
        let cancel_id = self.id(8);
        let order = self.order_mut(id)?;
        if order.status == TikTokOrderStatus::Cancelled || order.status.is_shipped() {
            return Err(ApiErr::new(
                sim_codes::ORDER_NOT_SHIPPABLE,
                "order cannot be cancelled in its status",
            ));
        }
        let ids: Vec<String> = match line_item_ids {
            Some(ids) => ids,
            None => order
                .units
                .iter()
                .filter(|u| !u.shipped())
                .map(|u| u.id.clone())
                .collect(),
        };
        for lid in &ids {
            let u = order
                .units
                .iter_mut()
                .find(|u| &u.id == lid)
                .ok_or_else(|| {
                    ApiErr::new(
                        sim_codes::LINE_ITEM_INVALID,
                        format!("line item {lid} not in order"),
                    )
                })?;
            if u.shipped() {
                return Err(ApiErr::new(
                    sim_codes::LINE_ITEM_INVALID,
                    format!("line item {lid} already shipped"),
                ));
            }
            u.cancelled = true;
        }
        order.update_time = now;
        let mut notes = vec![Notification {
            kind: 11,
            data: json!({"order_id": order.id, "cancellations_role": "BUYER", "cancel_status": "CANCELLATION_REQUEST_COMPLETE", "cancel_id": cancel_id, "create_time": now}),
        }];
        if order.units.iter().all(|u| u.cancelled) {
            order.status = TikTokOrderStatus::Cancelled;
            notes.push(status_notification(order));
        } else if let Some(n) = recompute_shipping_status(order) {
            notes.push(n);
        }
        let released = take_cancelled_reservations(order);
        let order = order.clone();
        self.release(released);
        Ok((order, notes))
    }

    pub fn set_status(
        &mut self,
        id: &str,
        status: TikTokOrderStatus,
        now: i64,
    ) -> Result<(SimOrder, Vec<Notification>), ApiErr> {
        let order = self.order_mut(id)?;
        if order.status == TikTokOrderStatus::Cancelled {
            return Err(ApiErr::new(
                sim_codes::ORDER_NOT_SHIPPABLE,
                "a cancelled order stays cancelled",
            ));
        }
        if order.status == status {
            return Ok((order.clone(), vec![]));
        }
        order.status = status;
        order.update_time = now;
        if status == TikTokOrderStatus::Cancelled {
            for u in order.units.iter_mut().filter(|u| !u.shipped()) {
                u.cancelled = true;
            }
        }
        let notes = vec![status_notification(order)];
        let released = take_cancelled_reservations(order);
        let order = order.clone();
        self.release(released);
        Ok((order, notes))
    }

    pub fn mark_shipped(
        &mut self,
        order_id: &str,
        body: MarkShippedRequest,
        now: i64,
    ) -> Result<(Value, Vec<Notification>), ApiErr> {
        if !mpas_market(&self.region) {
            return Err(ApiErr::new(
                sim_codes::ORDER_NOT_SHIPPABLE,
                format!(
                    "Mark Package As Shipped is not available in market {}; ship the existing package with Ship Package",
                    self.region
                ),
            ));
        }
        // A TikTok-label order is refused as such, whatever else the body gets wrong.
        if self.orders.get(order_id).is_some_and(|o| {
            o.is_tiktok_shipping() && o.fulfillment_type == FulfillmentType::FulfillmentBySeller
        }) {
            return Err(ApiErr::new(
                sim_codes::ORDER_NOT_SHIPPABLE,
                "order is shipped with TikTok's label; use Ship Package",
            ));
        }
        let provider = self
            .providers
            .iter()
            .find(|p| p.id == body.shipping_provider_id)
            .cloned()
            .ok_or_else(|| {
                ApiErr::new(
                    sim_codes::PROVIDER_INVALID,
                    format!(
                        "shipping_provider_id {} is invalid",
                        body.shipping_provider_id
                    ),
                )
            })?;
        let package_id = self.id(1156);
        let order = self.order_mut(order_id)?;
        shippable(order)?;
        if body.order_line_item_ids.is_empty() {
            return Err(ApiErr::invalid_param("order_line_item_ids is empty"));
        }
        if body.tracking_number.trim().is_empty() {
            return Err(ApiErr::invalid_param("tracking_number is empty"));
        }
        let mut seen = std::collections::HashSet::new();
        for lid in &body.order_line_item_ids {
            if !seen.insert(lid) {
                return Err(ApiErr::new(
                    sim_codes::LINE_ITEM_INVALID,
                    format!("line item {lid} listed twice"),
                ));
            }
            let u = order.units.iter().find(|u| &u.id == lid).ok_or_else(|| {
                ApiErr::new(
                    sim_codes::LINE_ITEM_INVALID,
                    format!("line item {lid} does not belong to order {order_id}"),
                )
            })?;
            if u.cancelled {
                return Err(ApiErr::new(
                    sim_codes::LINE_ITEM_INVALID,
                    format!("line item {lid} is cancelled"),
                ));
            }
            if u.shipped() {
                return Err(ApiErr::new(
                    sim_codes::LINE_ITEM_INVALID,
                    format!("line item {lid} is already shipped"),
                ));
            }
        }
        for u in order.units.iter_mut().filter(|u| seen.contains(&u.id)) {
            u.package_id = Some(package_id.clone());
            u.tracking_number = Some(body.tracking_number.trim().to_string());
            u.shipping_provider_id = Some(provider.id.clone());
            u.shipping_provider_name = Some(provider.name.clone());
        }
        order.update_time = now;
        let notes: Vec<Notification> = recompute_shipping_status(order).into_iter().collect();
        let order_id = order.id.clone();
        self.shipments.push(ShipmentRecord {
            package_id: package_id.clone(),
            order_id: order_id.clone(),
            line_item_ids: body.order_line_item_ids.clone(),
            tracking_number: body.tracking_number.trim().to_string(),
            shipping_provider_id: provider.id,
            time: now,
            method: "mark_shipped".into(),
            handover_method: None,
        });
        self.packages.insert(
            package_id.clone(),
            SimPackage {
                id: package_id.clone(),
                order_id: order_id.clone(),
                create_time: now,
                shipped_at: Some(now),
                handover_method: None,
                pickup_slot: None,
            },
        );
        Ok((
            json!({"order_id": order_id, "order_line_item_ids": body.order_line_item_ids, "package_id": package_id}),
            notes,
        ))
    }

    // ----- inventory ---------------------------------------------------------------------

    pub fn update_inventory(
        &mut self,
        product_id: &str,
        body: InventoryUpdateRequest,
        now: i64,
    ) -> Result<Value, ApiErr> {
        let warehouses: Vec<String> = self.warehouses.iter().map(|w| w.id.clone()).collect();
        let product = self.products.get_mut(product_id).ok_or_else(|| {
            ApiErr::new(
                sim_codes::PRODUCT_NOT_FOUND,
                format!("product {product_id} does not exist"),
            )
        })?;
        if product.status != "ACTIVATE" {
            return Err(ApiErr::new(
                sim_codes::PRODUCT_NOT_ACTIVE,
                format!(
                    "couldn't update inventory: product status is {}",
                    product.status
                ),
            ));
        }
        if body.skus.is_empty() {
            return Err(ApiErr::invalid_param("skus is empty"));
        }
        let mut errors = Vec::new();
        let mut pushes = Vec::new();
        for s in &body.skus {
            let err = |code: i64, message: String, extra: Vec<Value>| json!({"code": code, "message": message, "detail": {"sku_id": s.id, "extra_errors": extra}});
            let Some(sku) = product
                .skus
                .iter_mut()
                .find(|k| k.id == s.id && !s.id.is_empty())
            else {
                errors.push(err(
                    sim_codes::SKU_INVALID,
                    format!("SKU {:?} is not a SKU of product {product_id}", s.id),
                    vec![],
                ));
                continue;
            };
            let mut extra = Vec::new();
            let mut resolved: Vec<(String, i64)> = Vec::new();
            for inv in &s.inventory {
                let wid = match &inv.warehouse_id {
                    Some(w) => w.clone(),
                    // Only a single-warehouse SKU may omit the warehouse.
                    None if sku.inventory.len() == 1 => sku.inventory[0].0.clone(),
                    None => {
                        extra.push(json!({"warehouse_id": "", "code": sim_codes::WAREHOUSES_INCOMPLETE, "message": "warehouse_id is required for a multi-warehouse SKU"}));
                        continue;
                    }
                };
                if !warehouses.contains(&wid) {
                    extra.push(json!({"warehouse_id": wid, "code": sim_codes::WAREHOUSE_NOT_FOUND, "message": "warehouse does not exist"}));
                    continue;
                }
                if inv.quantity < 0 {
                    extra.push(json!({"warehouse_id": wid, "code": sim_codes::STOCK_INVALID, "message": "stock count invalid"}));
                } else if inv.quantity > 99_999 {
                    extra.push(json!({"warehouse_id": wid, "code": sim_codes::QUANTITY_OUT_OF_LIMITS, "message": "SKU inventory quantity out of limits (0-99999)"}));
                }
                resolved.push((wid, inv.quantity));
            }
            if !extra.is_empty() {
                let code = extra[0]["code"]
                    .as_i64()
                    .unwrap_or(sim_codes::STOCK_INVALID);
                errors.push(err(code, "inventory update refused".into(), extra));
                continue;
            }
            let mut want: Vec<&String> = sku.inventory.iter().map(|(w, _)| w).collect();
            let mut got: Vec<&String> = resolved.iter().map(|(w, _)| w).collect();
            want.sort();
            got.sort();
            if want != got {
                errors.push(err(
                    sim_codes::WAREHOUSES_INCOMPLETE,
                    "Multiple warehouses detected. Include all warehouse IDs of the SKU, without extras or repeats.".into(),
                    vec![],
                ));
                continue;
            }
            for (w, q) in resolved {
                if let Some(slot) = sku.inventory.iter_mut().find(|(x, _)| *x == w) {
                    slot.1 = q;
                }
                pushes.push(InventoryPush {
                    product_id: product_id.to_string(),
                    sku_id: sku.id.clone(),
                    warehouse_id: w,
                    quantity: q,
                    time: now,
                });
            }
        }
        if !pushes.is_empty() {
            product.update_time = now;
        }
        self.inventory_pushes.extend(pushes);
        Ok(json!({"errors": errors}))
    }

    // ----- reads -------------------------------------------------------------------------

    pub fn search_orders(&self, f: &OrderSearchRequest, by_update: bool, asc: bool) -> Vec<Value> {
        let in_range = |v: i64, ge: Option<i64>, lt: Option<i64>| {
            ge.map_or(true, |g| v >= g) && lt.map_or(true, |l| v < l)
        };
        let mut hits: Vec<&SimOrder> = self
            .orders
            .values()
            .filter(|o| in_range(o.create_time, f.create_time_ge, f.create_time_lt))
            .filter(|o| in_range(o.update_time, f.update_time_ge, f.update_time_lt))
            .filter(|o| {
                f.order_status
                    .as_deref()
                    .map_or(true, |s| s == status_str(o.status))
            })
            .collect();
        hits.sort_by(|a, b| {
            let ka = if by_update {
                a.update_time
            } else {
                a.create_time
            };
            let kb = if by_update {
                b.update_time
            } else {
                b.create_time
            };
            ka.cmp(&kb).then_with(|| a.id.cmp(&b.id))
        });
        if !asc {
            hits.reverse();
        }
        hits.into_iter().map(SimOrder::wire).collect()
    }

    pub fn search_products(&self, f: &ProductSearchRequest) -> Vec<Value> {
        self.products
            .values()
            .filter(|p| f.status.as_deref().map_or(true, |s| s == p.status))
            .filter(|p| f.update_time_ge.map_or(true, |t| p.update_time >= t))
            .filter(|p| f.update_time_le.map_or(true, |t| p.update_time <= t))
            .filter(|p| f.create_time_ge.map_or(true, |t| p.create_time >= t))
            .filter(|p| f.create_time_le.map_or(true, |t| p.create_time <= t))
            .filter(|p| {
                f.sku_ids
                    .as_ref()
                    .map_or(true, |ids| p.skus.iter().any(|s| ids.contains(&s.id)))
            })
            .filter(|p| {
                f.seller_skus.as_ref().map_or(true, |ids| {
                    p.skus.iter().any(|s| ids.contains(&s.seller_sku))
                })
            })
            .map(|p| p.wire(&self.currency))
            .collect()
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// Cancelled units give their reserved stock back: (sku id, warehouse) per unit.
fn take_cancelled_reservations(o: &mut SimOrder) -> Vec<(String, String)> {
    o.units
        .iter_mut()
        .filter(|u| u.cancelled)
        .filter_map(|u| u.reserved_at.take().map(|w| (u.sku_id.clone(), w)))
        .collect()
}

/// Whether the seller may ship the order now, whichever call ships it.
pub(super) fn shippable(order: &SimOrder) -> Result<(), ApiErr> {
    if order.fulfillment_type != FulfillmentType::FulfillmentBySeller {
        return Err(ApiErr::new(
            sim_codes::ORDER_NOT_SHIPPABLE,
            "order is fulfilled by TikTok",
        ));
    }
    if !matches!(
        order.status,
        TikTokOrderStatus::AwaitingShipment | TikTokOrderStatus::PartiallyShipping
    ) {
        return Err(ApiErr::new(
            sim_codes::ORDER_NOT_SHIPPABLE,
            format!(
                "order status {} does not allow shipping",
                status_str(order.status)
            ),
        ));
    }
    Ok(())
}

pub(super) fn status_notification(o: &SimOrder) -> Notification {
    Notification {
        kind: 1,
        data: json!({
            "order_id": o.id, "order_status": status_str(o.status),
            "is_on_hold_order": o.status == TikTokOrderStatus::OnHold, "update_time": o.update_time,
        }),
    }
}

/// After shipping or cancelling units of an order being fulfilled: everything not cancelled
/// shipped -> AWAITING_COLLECTION, some shipped -> PARTIALLY_SHIPPING.
pub(super) fn recompute_shipping_status(o: &mut SimOrder) -> Option<Notification> {
    if !matches!(
        o.status,
        TikTokOrderStatus::AwaitingShipment | TikTokOrderStatus::PartiallyShipping
    ) {
        return None;
    }
    let live: Vec<&SimUnit> = o.units.iter().filter(|u| !u.cancelled).collect();
    let shipped = live.iter().filter(|u| u.shipped()).count();
    let next = if shipped == 0 {
        TikTokOrderStatus::AwaitingShipment
    } else if shipped == live.len() {
        TikTokOrderStatus::AwaitingCollection
    } else {
        TikTokOrderStatus::PartiallyShipping
    };
    if next == o.status {
        return None;
    }
    o.status = next;
    Some(status_notification(o))
}

// ----- strict request DTOs (unknown fields are refused like TikTok's gateway) -------------

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSearchRequest {
    pub order_status: Option<String>,
    pub create_time_ge: Option<i64>,
    pub create_time_lt: Option<i64>,
    pub update_time_ge: Option<i64>,
    pub update_time_lt: Option<i64>,
    pub shipping_type: Option<String>,
    pub buyer_user_id: Option<String>,
    pub is_buyer_request_cancel: Option<bool>,
    pub warehouse_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkShippedRequest {
    pub order_line_item_ids: Vec<String>,
    pub tracking_number: String,
    pub shipping_provider_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSearchRequest {
    pub status: Option<String>,
    pub seller_skus: Option<Vec<String>>,
    pub sku_ids: Option<Vec<String>>,
    pub create_time_ge: Option<i64>,
    pub create_time_le: Option<i64>,
    pub update_time_ge: Option<i64>,
    pub update_time_le: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryUpdateRequest {
    pub skus: Vec<InventoryUpdateSkuRequest>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryUpdateSkuRequest {
    pub id: String,
    pub inventory: Vec<InventoryEntryRequest>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryEntryRequest {
    #[serde(default)]
    pub warehouse_id: Option<String>,
    pub quantity: i64,
}
