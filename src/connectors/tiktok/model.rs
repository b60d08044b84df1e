//! Wire DTOs of the TikTok Shop Partner API as the connector sends and reads them. Responses
//! are deliberately tolerant (unknown fields ignored, most fields optional) because TikTok adds
//! fields without notice; requests carry only documented fields.

use serde::{Deserialize, Serialize};

/// `{code, message, request_id, data}`; `code == 0` is success whatever the HTTP status.
#[derive(Clone, Debug, Deserialize)]
pub struct Envelope {
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// `data` of `/api/v2/token/get` and `/api/v2/token/refresh`. The `*_expire_in` fields are
/// absolute unix times, not durations.
#[derive(Clone, Deserialize)]
pub struct TokenData {
    pub access_token: String,
    pub access_token_expire_in: i64,
    pub refresh_token: String,
    pub refresh_token_expire_in: i64,
    #[serde(default)]
    pub open_id: String,
    #[serde(default)]
    pub seller_name: String,
    #[serde(default)]
    pub seller_base_region: String,
    /// 0 seller, 1 creator, 3 partner.
    #[serde(default)]
    pub user_type: i64,
    #[serde(default)]
    pub granted_scopes: Vec<String>,
}

impl std::fmt::Debug for TokenData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenData")
            .field("access_token", &"<redacted>")
            .field("access_token_expire_in", &self.access_token_expire_in)
            .field("refresh_token", &"<redacted>")
            .field("refresh_token_expire_in", &self.refresh_token_expire_in)
            .field("seller_name", &self.seller_name)
            .field("user_type", &self.user_type)
            .finish()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ShopsData {
    #[serde(default)]
    pub shops: Vec<AuthorizedShop>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedShop {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub code: String,
    pub cipher: String,
    #[serde(default)]
    pub seller_type: String,
}

/// Body of `POST /order/202309/orders/search`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OrderSearchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_ge: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_lt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_ge: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_lt: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct OrderListData {
    #[serde(default)]
    pub orders: Vec<Order>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub total_count: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Order {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub fulfillment_type: Option<String>,
    #[serde(default)]
    pub shipping_type: Option<String>,
    pub create_time: i64,
    #[serde(default)]
    pub update_time: Option<i64>,
    #[serde(default)]
    pub paid_time: Option<i64>,
    #[serde(default)]
    pub warehouse_id: Option<String>,
    #[serde(default)]
    pub buyer_email: Option<String>,
    #[serde(default)]
    pub is_on_hold_order: Option<bool>,
    #[serde(default)]
    pub payment: Option<Payment>,
    #[serde(default)]
    pub recipient_address: Option<RecipientAddress>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub packages: Vec<PackageRef>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub cancellation_initiator: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Payment {
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub sub_total: Option<String>,
    #[serde(default)]
    pub total_amount: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PackageRef {
    pub id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RecipientAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub full_address: Option<String>,
    #[serde(default)]
    pub address_detail: Option<String>,
    #[serde(default)]
    pub address_line1: Option<String>,
    #[serde(default)]
    pub address_line2: Option<String>,
    #[serde(default)]
    pub address_line3: Option<String>,
    #[serde(default)]
    pub address_line4: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub region_code: Option<String>,
    #[serde(default)]
    pub post_town: Option<String>,
    #[serde(default)]
    pub district_info: Vec<DistrictInfo>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DistrictInfo {
    #[serde(default)]
    pub address_level: Option<String>,
    #[serde(default)]
    pub address_level_name: Option<String>,
    #[serde(default)]
    pub address_name: Option<String>,
}

/// One unit of one SKU (TikTok has no quantity field).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LineItem {
    pub id: String,
    pub sku_id: String,
    #[serde(default)]
    pub seller_sku: Option<String>,
    #[serde(default)]
    pub product_id: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub sku_name: Option<String>,
    #[serde(default)]
    pub sale_price: Option<String>,
    #[serde(default)]
    pub original_price: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub display_status: Option<String>,
    #[serde(default)]
    pub package_id: Option<String>,
    #[serde(default)]
    pub package_status: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub shipping_provider_id: Option<String>,
    #[serde(default)]
    pub shipping_provider_name: Option<String>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub cancel_user: Option<String>,
}

/// Body of Mark Package As Shipped.
#[derive(Clone, Debug, Serialize)]
pub struct MarkShippedBody {
    pub order_line_item_ids: Vec<String>,
    pub tracking_number: String,
    pub shipping_provider_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MarkShippedData {
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_line_item_ids: Vec<String>,
    pub package_id: String,
    #[serde(default)]
    pub warning: Option<Warning>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Warning {
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct WarehousesData {
    #[serde(default)]
    pub warehouses: Vec<Warehouse>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Warehouse {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `ENABLED` | `DISABLED` | `RESTRICTED`.
    #[serde(default)]
    pub effect_status: String,
    /// `SALES_WAREHOUSE` | `RETURN_WAREHOUSE`.
    #[serde(default, rename = "type")]
    pub warehouse_type: String,
    #[serde(default)]
    pub sub_type: Option<String>,
    #[serde(default)]
    pub is_default: bool,
}

impl Warehouse {
    /// What keeps this warehouse from serving as a `wanted` one (`SALES_WAREHOUSE`
    /// for pickup, `RETURN_WAREHOUSE` for returns): its type and its status.
    pub fn unfit_for(&self, wanted: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.warehouse_type != wanted {
            problems.push(format!(
                "is a {} (needs {wanted})",
                if self.warehouse_type.is_empty() {
                    "warehouse of unknown type"
                } else {
                    &self.warehouse_type
                }
            ));
        }
        if self.effect_status != "ENABLED" {
            problems.push(format!(
                "is {} (needs ENABLED)",
                if self.effect_status.is_empty() {
                    "of unknown status"
                } else {
                    &self.effect_status
                }
            ));
        }
        problems
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeliveryOptionsData {
    #[serde(default)]
    pub delivery_options: Vec<DeliveryOption>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct DeliveryOption {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `STANDARD` | `EXPRESS` | `ECONOMY` | `SEND_BY_SELLER`.
    #[serde(default, rename = "type")]
    pub option_type: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ShippingProvidersData {
    #[serde(default)]
    pub shipping_providers: Vec<ShippingProvider>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ShippingProvider {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// Body of `POST /product/202502/products/search`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProductSearchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seller_skus: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProductListData {
    #[serde(default)]
    pub products: Vec<Product>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub total_count: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Product {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub skus: Vec<ProductSku>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProductSku {
    pub id: String,
    #[serde(default)]
    pub seller_sku: String,
    #[serde(default)]
    pub price: Option<Price>,
    #[serde(default)]
    pub inventory: Vec<WarehouseQuantity>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Price {
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub sale_price: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseQuantity {
    pub warehouse_id: String,
    pub quantity: i64,
}

/// Body of `POST /product/202309/products/{product_id}/inventory/update`.
#[derive(Clone, Debug, Serialize)]
pub struct InventoryUpdateBody {
    pub skus: Vec<InventoryUpdateSku>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InventoryUpdateSku {
    pub id: String,
    pub inventory: Vec<WarehouseQuantity>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct InventoryUpdateData {
    #[serde(default)]
    pub errors: Vec<BatchError>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct BatchError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub detail: Option<BatchErrorDetail>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct BatchErrorDetail {
    #[serde(default)]
    pub sku_id: Option<String>,
    #[serde(default)]
    pub extra_errors: Vec<WarehouseError>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct WarehouseError {
    #[serde(default)]
    pub warehouse_id: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// Body of `POST /product/202309/inventory/search`: `sku_ids` (at most 600) win over
/// `product_ids` (at most 100) when both are given.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InventorySearchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct InventorySearchData {
    #[serde(default)]
    pub inventory: Vec<ProductInventory>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProductInventory {
    #[serde(default)]
    pub product_id: String,
    #[serde(default)]
    pub skus: Vec<SkuInventory>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SkuInventory {
    pub id: String,
    #[serde(default)]
    pub seller_sku: String,
    #[serde(default)]
    pub warehouse_inventory: Vec<WarehouseInventory>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct WarehouseInventory {
    pub warehouse_id: String,
    #[serde(default)]
    pub available_quantity: i64,
    #[serde(default)]
    pub committed_quantity: i64,
}
