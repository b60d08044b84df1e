//! TikTok's package endpoints, wire types and calls: Ship Package (with TikTok's
//! label or the seller's own carrier), handover slots, shipping documents, tracking
//! corrections and order splits.

use serde::{Deserialize, Serialize};

use super::client::{path_id, ApiCall, TikTokClient, TikTokError};

/// How a package leaves: TikTok's carrier (collected in a slot, or dropped off), or
/// the seller's own carrier with its tracking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShipMethod {
    Pickup {
        start_time: i64,
        end_time: i64,
    },
    DropOff,
    SelfShipment {
        tracking_number: String,
        shipping_provider_id: String,
    },
}

impl ShipMethod {
    pub fn handover_name(&self) -> &'static str {
        match self {
            ShipMethod::Pickup { .. } => "PICKUP",
            ShipMethod::DropOff => "DROP_OFF",
            ShipMethod::SelfShipment { .. } => "SELF_SHIPMENT",
        }
    }
}

#[derive(Serialize)]
struct ShipBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    handover_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pickup_slot: Option<SlotBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_shipment: Option<SelfShipmentBody>,
}

#[derive(Serialize)]
struct SlotBody {
    start_time: i64,
    end_time: i64,
}

#[derive(Serialize)]
struct SelfShipmentBody {
    tracking_number: String,
    shipping_provider_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct HandoverSlots {
    #[serde(default)]
    pub can_pickup: bool,
    #[serde(default)]
    pub can_drop_off: bool,
    #[serde(default)]
    pub pickup_slots: Vec<PickupSlotWire>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PickupSlotWire {
    pub start_time: i64,
    pub end_time: i64,
    /// TikTok's spelling.
    #[serde(default = "yes", alias = "available")]
    pub avaliable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ShippingDocument {
    pub doc_url: String,
    #[serde(default)]
    pub tracking_number: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct SplitAttributesData {
    #[serde(default)]
    split_attributes: Vec<SplitAttribute>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SplitAttribute {
    pub order_id: String,
    #[serde(default)]
    pub can_split: bool,
    #[serde(default)]
    pub reason: String,
}

#[derive(Serialize)]
struct SplitBody {
    splittable_groups: Vec<SplitGroup>,
}

#[derive(Serialize)]
struct SplitGroup {
    id: String,
    order_line_item_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct SplitData {
    #[serde(default)]
    packages: Vec<SplitPackage>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SplitPackage {
    pub id: String,
    pub splittable_group_id: String,
}

#[derive(Serialize)]
struct ShippingInfoBody {
    tracking_number: String,
    shipping_provider_id: String,
}

#[derive(Deserialize)]
struct Empty {}

impl TikTokClient {
    /// `POST /fulfillment/202309/packages/{id}/ship`.
    pub async fn ship_package(
        &self,
        package_id: &str,
        method: &ShipMethod,
    ) -> Result<(), TikTokError> {
        let id = path_id("package id", package_id)?;
        let body = match method {
            ShipMethod::Pickup {
                start_time,
                end_time,
            } => ShipBody {
                handover_method: Some("PICKUP"),
                pickup_slot: Some(SlotBody {
                    start_time: *start_time,
                    end_time: *end_time,
                }),
                self_shipment: None,
            },
            ShipMethod::DropOff => ShipBody {
                handover_method: Some("DROP_OFF"),
                pickup_slot: None,
                self_shipment: None,
            },
            ShipMethod::SelfShipment {
                tracking_number,
                shipping_provider_id,
            } => {
                if tracking_number.trim().is_empty() {
                    return Err(TikTokError::InvalidInput("empty tracking number".into()));
                }
                path_id("shipping provider id", shipping_provider_id)?;
                ShipBody {
                    handover_method: None,
                    pickup_slot: None,
                    self_shipment: Some(SelfShipmentBody {
                        tracking_number: tracking_number.trim().to_string(),
                        shipping_provider_id: shipping_provider_id.clone(),
                    }),
                }
            }
        };
        let call = ApiCall::post(format!("/fulfillment/202309/packages/{id}/ship"), &body)?;
        let _: Empty = self.call(call).await?;
        Ok(())
    }

    /// `GET /fulfillment/202309/packages/{id}/handover_time_slots`.
    pub async fn handover_time_slots(
        &self,
        package_id: &str,
    ) -> Result<HandoverSlots, TikTokError> {
        let id = path_id("package id", package_id)?;
        self.call(ApiCall::get(format!(
            "/fulfillment/202309/packages/{id}/handover_time_slots"
        )))
        .await
    }

    /// The package's shipping label: a URL valid 24 h, and TikTok's tracking number.
    pub async fn shipping_label(&self, package_id: &str) -> Result<ShippingDocument, TikTokError> {
        let id = path_id("package id", package_id)?;
        let call = ApiCall::get(format!(
            "/fulfillment/202309/packages/{id}/shipping_documents"
        ))
        .param("document_type", "SHIPPING_LABEL")
        .param("document_size", "A6");
        self.call(call).await
    }

    /// Update Shipping Info: by order, or by package once the order has several.
    pub async fn update_shipping_info(
        &self,
        order_id: &str,
        package_id: Option<&str>,
        tracking_number: &str,
        shipping_provider_id: &str,
    ) -> Result<(), TikTokError> {
        if tracking_number.trim().is_empty() {
            return Err(TikTokError::InvalidInput("empty tracking number".into()));
        }
        path_id("shipping provider id", shipping_provider_id)?;
        let path = match package_id {
            Some(p) => format!(
                "/fulfillment/202309/packages/{}/shipping_info/update",
                path_id("package id", p)?
            ),
            None => format!(
                "/fulfillment/202309/orders/{}/shipping_info/update",
                path_id("order id", order_id)?
            ),
        };
        let body = ShippingInfoBody {
            tracking_number: tracking_number.trim().to_string(),
            shipping_provider_id: shipping_provider_id.to_string(),
        };
        let _: Empty = self.call(ApiCall::post(path, &body)?).await?;
        Ok(())
    }

    /// Whether TikTok lets this order's package be split, and why not.
    pub async fn split_attributes(&self, order_id: &str) -> Result<SplitAttribute, TikTokError> {
        let id = path_id("order id", order_id)?;
        let call =
            ApiCall::get("/fulfillment/202309/orders/split_attributes").param("order_ids", id);
        let data: SplitAttributesData = self.call(call).await?;
        data.split_attributes
            .into_iter()
            .find(|a| a.order_id == order_id)
            .ok_or_else(|| TikTokError::Decode(format!("no split attributes for order {order_id}")))
    }

    /// Splits the order's package into one package per group: `(label, line items)`.
    pub async fn split_order(
        &self,
        order_id: &str,
        groups: &[(String, Vec<String>)],
    ) -> Result<Vec<SplitPackage>, TikTokError> {
        let id = path_id("order id", order_id)?;
        let body = SplitBody {
            splittable_groups: groups
                .iter()
                .map(|(label, ids)| SplitGroup {
                    id: label.clone(),
                    order_line_item_ids: ids.clone(),
                })
                .collect(),
        };
        let call = ApiCall::post(format!("/fulfillment/202309/orders/{id}/split"), &body)?;
        let data: SplitData = self.call(call).await?;
        Ok(data.packages)
    }
}
