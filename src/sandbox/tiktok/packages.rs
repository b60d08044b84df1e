//! Packages of the simulated shop and the fulfilment calls that act on them: Ship Package
//! (TikTok label or self shipment), handover slots, shipping documents, Update Shipping Info
//! and splitting, with the market rules that decide whether Mark Package As Shipped exists.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::state::{
    recompute_shipping_status, shippable, sim_codes, status_str, ApiErr, Notification,
    ShipmentRecord, SimOrder, State,
};
use crate::domain::observed::TikTokOrderStatus;

/// Markets where Mark Package As Shipped exists (TikTok reports the UK as `GB`).
pub const MPAS_MARKETS: [&str; 9] = ["US", "GB", "UK", "ES", "IE", "IT", "DE", "FR", "JP"];

pub fn mpas_market(region: &str) -> bool {
    MPAS_MARKETS.contains(&region.to_ascii_uppercase().as_str())
}

/// The platform carrier behind TikTok's own labels; deliberately absent from the seller
/// provider list, so it cannot be used for self shipment.
pub const TIKTOK_PROVIDER_ID: &str = "7117000000000000001";
pub const TIKTOK_PROVIDER_NAME: &str = "TikTok Shipping";
/// A shipping document URL works this long (sim clock).
pub const LABEL_TTL: i64 = 24 * 3600;
/// Update Shipping Info is accepted this long after the package shipped.
pub const SHIPPING_INFO_WINDOW: i64 = 72 * 3600;
pub const DROP_OFF_POINT_URL: &str = "https://seller-us.tiktok.com/logistics/drop-off-points";

const DOCUMENT_TYPES: [&str; 3] = [
    "SHIPPING_LABEL",
    "PACKING_SLIP",
    "SHIPPING_LABEL_AND_PACKING_SLIP",
];
const DOCUMENT_SIZES: [&str; 2] = ["A6", "A5"];

#[derive(Clone, Debug, Serialize)]
pub struct SimPackage {
    pub id: String,
    pub order_id: String,
    pub create_time: i64,
    pub shipped_at: Option<i64>,
    pub handover_method: Option<String>,
    pub pickup_slot: Option<PickupSlot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickupSlot {
    pub start_time: i64,
    pub end_time: i64,
}

/// One accepted Update Shipping Info call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingUpdate {
    pub order_id: String,
    pub package_id: String,
    /// `order` or `package`: which form of the endpoint was called.
    pub via: String,
    pub previous_tracking_number: Option<String>,
    pub tracking_number: String,
    pub shipping_provider_id: String,
    pub time: i64,
}

/// A shipping document URL handed out by Get Shipping Document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub token: String,
    pub package_id: String,
    pub document_type: String,
    pub document_size: String,
    pub tracking_number: String,
    pub doc_url: String,
    pub expires_at: i64,
}

/// What `GET /_sim/labels/{token}` finds.
pub enum LabelFetch {
    Valid(Label),
    Expired,
    Unknown,
}

/// A package as tests read it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    pub id: String,
    pub order_id: String,
    /// `TO_FULFILL`, `PROCESSING` (shipped/arranged) or `CANCELLED`.
    pub status: String,
    pub line_item_ids: Vec<String>,
    pub shipping_type: String,
    pub tracking_number: Option<String>,
    pub shipping_provider_id: Option<String>,
    pub shipped_at: Option<i64>,
    pub handover_method: Option<String>,
    pub pickup_slot: Option<PickupSlot>,
}

// ----- strict request DTOs ----------------------------------------------------------------

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipPackageRequest {
    #[serde(default)]
    pub handover_method: Option<String>,
    #[serde(default)]
    pub pickup_slot: Option<PickupSlot>,
    #[serde(default)]
    pub self_shipment: Option<SelfShipment>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfShipment {
    pub tracking_number: String,
    pub shipping_provider_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingInfoUpdateRequest {
    pub tracking_number: String,
    pub shipping_provider_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    pub splittable_groups: Vec<SplitGroup>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitGroup {
    pub id: String,
    pub order_line_item_ids: Vec<String>,
}

/// The next two days' morning and afternoon collection windows (UTC), from the sim clock.
pub fn handover_slots(now: i64) -> Vec<PickupSlot> {
    let day = now - now.rem_euclid(86_400);
    (1..=2)
        .flat_map(|d| {
            let base = day + d * 86_400;
            [(9, 12), (13, 17)].map(|(a, b)| PickupSlot {
                start_time: base + a * 3600,
                end_time: base + b * 3600,
            })
        })
        .collect()
}

fn package_not_found(id: &str) -> ApiErr {
    ApiErr::new(
        sim_codes::PACKAGE_NOT_FOUND,
        format!("package {id} not found"),
    )
}

fn mode(message: impl Into<String>) -> ApiErr {
    ApiErr::new(sim_codes::SHIPPING_MODE_MISMATCH, message)
}

impl State {
    /// A fresh, unshipped package for an order (ids from the shared generator).
    pub(super) fn new_package(&mut self, order_id: &str, now: i64) -> String {
        let id = self.id(1156);
        self.packages.insert(
            id.clone(),
            SimPackage {
                id: id.clone(),
                order_id: order_id.to_string(),
                create_time: now,
                shipped_at: None,
                handover_method: None,
                pickup_slot: None,
            },
        );
        id
    }

    fn package_and_order(&self, package_id: &str) -> Result<(SimPackage, SimOrder), ApiErr> {
        let p = self
            .packages
            .get(package_id)
            .cloned()
            .ok_or_else(|| package_not_found(package_id))?;
        let o = self
            .orders
            .get(&p.order_id)
            .cloned()
            .ok_or_else(|| package_not_found(package_id))?;
        Ok((p, o))
    }

    pub fn package_info(&self, package_id: &str) -> Option<PackageInfo> {
        let (p, o) = self.package_and_order(package_id).ok()?;
        let units: Vec<_> = o
            .units
            .iter()
            .filter(|u| u.package_id.as_deref() == Some(package_id))
            .collect();
        let live: Vec<_> = units.iter().filter(|u| !u.cancelled).collect();
        let status = if live.is_empty() || o.status == TikTokOrderStatus::Cancelled {
            "CANCELLED"
        } else if p.shipped_at.is_some() {
            "PROCESSING"
        } else {
            "TO_FULFILL"
        };
        Some(PackageInfo {
            id: p.id.clone(),
            order_id: o.id.clone(),
            status: status.into(),
            line_item_ids: units.iter().map(|u| u.id.clone()).collect(),
            shipping_type: o.shipping_type.clone(),
            tracking_number: live.iter().find_map(|u| u.tracking_number.clone()),
            shipping_provider_id: live.iter().find_map(|u| u.shipping_provider_id.clone()),
            shipped_at: p.shipped_at,
            handover_method: p.handover_method.clone(),
            pickup_slot: p.pickup_slot.clone(),
        })
    }

    pub fn order_packages(&self, order_id: &str) -> Vec<PackageInfo> {
        self.orders
            .get(order_id)
            .map(|o| {
                o.package_ids()
                    .iter()
                    .filter_map(|p| self.package_info(p))
                    .collect()
            })
            .unwrap_or_default()
    }

    // ----- Ship Package -------------------------------------------------------------------

    pub fn ship_package(
        &mut self,
        package_id: &str,
        req: ShipPackageRequest,
        now: i64,
    ) -> Result<(Value, Vec<Notification>), ApiErr> {
        let info = self
            .package_info(package_id)
            .ok_or_else(|| package_not_found(package_id))?;
        match info.status.as_str() {
            "CANCELLED" => {
                return Err(ApiErr::new(
                    sim_codes::PACKAGE_NOT_SHIPPABLE,
                    format!("package {package_id} is cancelled"),
                ))
            }
            "PROCESSING" => {
                return Err(ApiErr::new(
                    sim_codes::PACKAGE_NOT_SHIPPABLE,
                    format!("package {package_id} is already shipped"),
                ))
            }
            _ => {}
        }
        let (_, order) = self.package_and_order(package_id)?;
        shippable(&order)?;
        let (tracking, provider_id, provider_name, method) = if order.is_tiktok_shipping() {
            if req.self_shipment.is_some() {
                return Err(mode(
                    "order is shipped with TikTok's label: self_shipment is not accepted, give handover_method",
                ));
            }
            match req.handover_method.as_deref() {
                None => {
                    return Err(mode(
                        "order is shipped with TikTok's label: handover_method (PICKUP or DROP_OFF) is required",
                    ))
                }
                Some("PICKUP") => {
                    let Some(slot) = &req.pickup_slot else {
                        return Err(ApiErr::new(
                            sim_codes::PICKUP_SLOT_INVALID,
                            "PICKUP needs a pickup_slot from Get Handover Time Slots",
                        ));
                    };
                    if !handover_slots(now).contains(slot) {
                        return Err(ApiErr::new(
                            sim_codes::PICKUP_SLOT_INVALID,
                            format!(
                                "pickup_slot {}-{} is not one of the package's handover slots",
                                slot.start_time, slot.end_time
                            ),
                        ));
                    }
                }
                Some("DROP_OFF") => {
                    if req.pickup_slot.is_some() {
                        return Err(ApiErr::invalid_param(
                            "pickup_slot is only accepted with handover_method PICKUP",
                        ));
                    }
                }
                Some(other) => {
                    return Err(ApiErr::invalid_param(format!(
                        "handover_method {other} (PICKUP or DROP_OFF)"
                    )))
                }
            }
            (
                format!("TT{}", self.id(9)),
                TIKTOK_PROVIDER_ID.to_string(),
                TIKTOK_PROVIDER_NAME.to_string(),
                "tiktok_label",
            )
        } else {
            if req.handover_method.is_some() || req.pickup_slot.is_some() {
                return Err(mode(
                    "order is shipped by the seller: handover_method and pickup_slot are not accepted, give self_shipment",
                ));
            }
            let Some(ss) = &req.self_shipment else {
                return Err(mode(
                    "order is shipped by the seller: self_shipment {tracking_number, shipping_provider_id} is required",
                ));
            };
            let provider = self.seller_provider(&ss.shipping_provider_id)?;
            if ss.tracking_number.trim().is_empty() {
                return Err(ApiErr::invalid_param(
                    "self_shipment.tracking_number is empty",
                ));
            }
            (
                ss.tracking_number.trim().to_string(),
                provider.0,
                provider.1,
                "self_shipment",
            )
        };
        let order = self.order_mut(&info.order_id)?;
        let mut line_item_ids = Vec::new();
        for u in order
            .units
            .iter_mut()
            .filter(|u| u.package_id.as_deref() == Some(package_id) && !u.cancelled)
        {
            u.tracking_number = Some(tracking.clone());
            u.shipping_provider_id = Some(provider_id.clone());
            u.shipping_provider_name = Some(provider_name.clone());
            line_item_ids.push(u.id.clone());
        }
        order.update_time = now;
        let notes: Vec<Notification> = recompute_shipping_status(order).into_iter().collect();
        if let Some(p) = self.packages.get_mut(package_id) {
            p.shipped_at = Some(now);
            p.handover_method = req.handover_method.clone();
            p.pickup_slot = req.pickup_slot.clone();
        }
        self.shipments.push(ShipmentRecord {
            package_id: package_id.to_string(),
            order_id: info.order_id,
            line_item_ids,
            tracking_number: tracking,
            shipping_provider_id: provider_id,
            time: now,
            method: method.into(),
            handover_method: req.handover_method,
        });
        Ok((json!({}), notes))
    }

    /// (id, name) of a provider the seller may name for self shipment.
    fn seller_provider(&self, id: &str) -> Result<(String, String), ApiErr> {
        self.providers
            .iter()
            .find(|p| p.id == id)
            .map(|p| (p.id.clone(), p.name.clone()))
            .ok_or_else(|| {
                ApiErr::new(
                    sim_codes::PROVIDER_INVALID,
                    format!("shipping_provider_id {id} is invalid"),
                )
            })
    }

    // ----- handover slots and documents ---------------------------------------------------

    pub fn handover_time_slots(&self, package_id: &str, now: i64) -> Result<Value, ApiErr> {
        let (_, order) = self.package_and_order(package_id)?;
        if !order.is_tiktok_shipping() {
            return Err(mode(
                "handover time slots exist only for packages shipped with TikTok's label",
            ));
        }
        Ok(json!({
            "can_pickup": true,
            "can_drop_off": true,
            "drop_off_point_url": DROP_OFF_POINT_URL,
            "pickup_slots": handover_slots(now).iter().map(|s| json!({
                "start_time": s.start_time, "end_time": s.end_time, "avaliable": true,
            })).collect::<Vec<_>>(),
        }))
    }

    pub fn shipping_document(
        &mut self,
        package_id: &str,
        document_type: Option<&str>,
        document_size: Option<&str>,
        now: i64,
    ) -> Result<Value, ApiErr> {
        let document_type = match document_type {
            Some(t) if DOCUMENT_TYPES.contains(&t) => t.to_string(),
            Some(t) => {
                return Err(ApiErr::invalid_param(format!(
                    "document_type {t} (one of {})",
                    DOCUMENT_TYPES.join(", ")
                )))
            }
            None => return Err(ApiErr::invalid_param("document_type is required")),
        };
        let document_size = match document_size {
            None => "A6".to_string(),
            Some(s) if DOCUMENT_SIZES.contains(&s) => s.to_string(),
            Some(s) => {
                return Err(ApiErr::invalid_param(format!(
                    "document_size {s} (A6 or A5)"
                )))
            }
        };
        let info = self
            .package_info(package_id)
            .ok_or_else(|| package_not_found(package_id))?;
        if info.shipping_type != "TIKTOK" {
            return Err(mode(
                "shipping documents exist only for packages shipped with TikTok's label",
            ));
        }
        let (Some(tracking), Some(_)) = (info.tracking_number.clone(), info.shipped_at) else {
            return Err(ApiErr::new(
                sim_codes::DOCUMENT_NOT_READY,
                format!("package {package_id} is not arranged yet; call Ship Package first"),
            ));
        };
        let token = format!("L{}", self.id(3));
        let doc_url = format!("{}/_sim/labels/{token}", self.base_url);
        self.labels.insert(
            token.clone(),
            Label {
                token,
                package_id: package_id.to_string(),
                document_type,
                document_size,
                tracking_number: tracking.clone(),
                doc_url: doc_url.clone(),
                expires_at: now + LABEL_TTL,
            },
        );
        Ok(json!({"doc_url": doc_url, "tracking_number": tracking}))
    }

    pub fn label(&self, token: &str, now: i64) -> LabelFetch {
        match self.labels.get(token) {
            None => LabelFetch::Unknown,
            Some(l) if now >= l.expires_at => LabelFetch::Expired,
            Some(l) => LabelFetch::Valid(l.clone()),
        }
    }

    // ----- Update Shipping Info -----------------------------------------------------------

    /// The order-level form: only for an order with exactly one shipped package.
    pub fn update_order_shipping_info(
        &mut self,
        order_id: &str,
        req: ShippingInfoUpdateRequest,
        now: i64,
    ) -> Result<Value, ApiErr> {
        self.order_mut(order_id)?;
        let shipped: Vec<String> = self
            .order_packages(order_id)
            .into_iter()
            .filter(|p| p.shipped_at.is_some())
            .map(|p| p.id)
            .collect();
        match shipped.as_slice() {
            [] => Err(ApiErr::new(
                sim_codes::PACKAGE_NOT_SHIPPABLE,
                format!("order {order_id} has no shipped package to update"),
            )),
            [one] => {
                let one = one.clone();
                self.update_shipping_info(&one, "order", req, now)
            }
            many => Err(ApiErr::new(
                sim_codes::MULTIPLE_PACKAGES,
                format!(
                    "order {order_id} has {} shipped packages; use the package-level form",
                    many.len()
                ),
            )),
        }
    }

    pub fn update_shipping_info(
        &mut self,
        package_id: &str,
        via: &str,
        req: ShippingInfoUpdateRequest,
        now: i64,
    ) -> Result<Value, ApiErr> {
        let info = self
            .package_info(package_id)
            .ok_or_else(|| package_not_found(package_id))?;
        if info.shipping_type == "TIKTOK" {
            return Err(mode(
                "package is shipped with TikTok's label; its tracking cannot be changed",
            ));
        }
        let Some(shipped_at) = info.shipped_at else {
            return Err(ApiErr::new(
                sim_codes::PACKAGE_NOT_SHIPPABLE,
                format!("package {package_id} is not shipped yet"),
            ));
        };
        if now > shipped_at + SHIPPING_INFO_WINDOW {
            return Err(ApiErr::new(
                sim_codes::SHIPPING_INFO_LOCKED,
                format!(
                    "shipping info can only be updated within 72 hours of shipping; package {package_id} shipped {} hours ago",
                    (now - shipped_at) / 3600
                ),
            ));
        }
        let (pid, pname) = self.seller_provider(&req.shipping_provider_id)?;
        let tracking = req.tracking_number.trim().to_string();
        if tracking.is_empty() {
            return Err(ApiErr::invalid_param("tracking_number is empty"));
        }
        let order = self.order_mut(&info.order_id)?;
        for u in order
            .units
            .iter_mut()
            .filter(|u| u.package_id.as_deref() == Some(package_id) && u.shipped())
        {
            u.tracking_number = Some(tracking.clone());
            u.shipping_provider_id = Some(pid.clone());
            u.shipping_provider_name = Some(pname.clone());
        }
        order.update_time = now;
        self.tracking_updates.push(TrackingUpdate {
            order_id: info.order_id,
            package_id: package_id.to_string(),
            via: via.to_string(),
            previous_tracking_number: info.tracking_number,
            tracking_number: tracking,
            shipping_provider_id: pid,
            time: now,
        });
        Ok(json!({}))
    }

    // ----- split --------------------------------------------------------------------------

    /// The package an order could be split from, or why it cannot.
    fn splittable_package(&self, order: &SimOrder) -> Result<String, String> {
        if !order.splittable {
            return Err("this order cannot be split".into());
        }
        if !matches!(
            order.status,
            TikTokOrderStatus::AwaitingShipment | TikTokOrderStatus::PartiallyShipping
        ) {
            return Err(format!(
                "order status {} does not allow splitting",
                status_str(order.status)
            ));
        }
        order
            .package_ids()
            .into_iter()
            .find(|p| {
                self.packages.get(p).is_some_and(|k| k.shipped_at.is_none())
                    && order
                        .units
                        .iter()
                        .filter(|u| {
                            u.package_id.as_deref() == Some(p.as_str())
                                && !u.cancelled
                                && !u.shipped()
                        })
                        .count()
                        >= 2
            })
            .ok_or_else(|| {
                "the order needs at least two unshipped units in one unshipped package".into()
            })
    }

    pub fn split_attributes(&self, order_ids: &[String]) -> Value {
        let rows: Vec<Value> = order_ids
            .iter()
            .map(|id| {
                let check = self
                    .orders
                    .get(id)
                    .ok_or_else(|| format!("order {id} not found"))
                    .and_then(|o| self.splittable_package(o));
                json!({
                    "order_id": id,
                    "can_split": check.is_ok(),
                    "must_split": false,
                    "must_split_reasons": [],
                    "reason": check.err().unwrap_or_default(),
                })
            })
            .collect();
        json!({ "split_attributes": rows })
    }

    pub fn split(
        &mut self,
        order_id: &str,
        req: SplitRequest,
        now: i64,
    ) -> Result<(Value, Vec<Notification>), ApiErr> {
        let order = self.orders.get(order_id).cloned().ok_or_else(|| {
            ApiErr::new(
                sim_codes::ORDER_NOT_FOUND,
                format!("order {order_id} not found"),
            )
        })?;
        let old = self
            .splittable_package(&order)
            .map_err(|r| ApiErr::new(sim_codes::SPLIT_NOT_ALLOWED, r))?;
        let groups_err = |m: String| ApiErr::new(sim_codes::SPLIT_GROUPS_INVALID, m);
        if req.splittable_groups.len() < 2 {
            return Err(groups_err("a split needs at least two groups".into()));
        }
        let open: HashSet<&str> = order
            .units
            .iter()
            .filter(|u| {
                u.package_id.as_deref() == Some(old.as_str()) && !u.cancelled && !u.shipped()
            })
            .map(|u| u.id.as_str())
            .collect();
        let mut group_ids = HashSet::new();
        let mut seen = HashSet::new();
        for g in &req.splittable_groups {
            if g.id.trim().is_empty() || !group_ids.insert(g.id.as_str()) {
                return Err(groups_err(format!(
                    "group id {:?} is empty or repeated",
                    g.id
                )));
            }
            if g.order_line_item_ids.is_empty() {
                return Err(groups_err(format!("group {} is empty", g.id)));
            }
            for lid in &g.order_line_item_ids {
                if !open.contains(lid.as_str()) {
                    return Err(groups_err(format!(
                        "line item {lid} is not an unshipped unit of package {old}"
                    )));
                }
                if !seen.insert(lid.as_str()) {
                    return Err(groups_err(format!("line item {lid} is in two groups")));
                }
            }
        }
        if seen.len() != open.len() {
            let mut missing: Vec<&str> = open.difference(&seen).copied().collect();
            missing.sort_unstable();
            return Err(groups_err(format!(
                "the groups must cover every unit of package {old}; missing {}",
                missing.join(", ")
            )));
        }
        let mut created = Vec::new();
        for g in &req.splittable_groups {
            created.push((self.new_package(order_id, now), g));
        }
        self.packages.remove(&old);
        let first = created[0].0.clone();
        let order = self.order_mut(order_id)?;
        for u in order
            .units
            .iter_mut()
            .filter(|u| u.package_id.as_deref() == Some(old.as_str()))
        {
            let target = created
                .iter()
                .find(|(_, g)| g.order_line_item_ids.contains(&u.id))
                .map(|(p, _)| p.clone());
            // Cancelled units travel with the first new package so none is left dangling.
            u.package_id = Some(target.unwrap_or_else(|| first.clone()));
        }
        order.split_or_combine_tag = Some("SPLIT".into());
        order.update_time = now;
        let note = Notification {
            kind: 4,
            data: json!({
                "sc_type": "SPLIT",
                "role_type": "SELLER",
                "package_list": created.iter().map(|(p, _)| json!({"package_id": p, "order_id_list": [order_id]})).collect::<Vec<_>>(),
                "update_time": now,
            }),
        };
        Ok((
            json!({"packages": created.iter().map(|(p, g)| json!({"id": p, "splittable_group_id": g.id})).collect::<Vec<_>>()}),
            vec![note],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handover_slots_are_the_next_two_days_windows_in_utc() {
        // 2026-01-01T10:30:00Z
        let now = 1_767_263_400;
        let day = 1_767_225_600;
        let hours: Vec<(i64, i64)> = handover_slots(now)
            .iter()
            .map(|s| ((s.start_time - day) / 3600, (s.end_time - day) / 3600))
            .collect();
        assert_eq!(hours, vec![(33, 36), (37, 41), (57, 60), (61, 65)]);
    }

    #[test]
    fn mark_package_as_shipped_markets() {
        for r in ["US", "GB", "uk", "ES", "IE", "IT", "DE", "FR", "JP"] {
            assert!(mpas_market(r), "{r}");
        }
        for r in ["MY", "ID", "TH", "VN", "PH", "SG", "MX", "BR", ""] {
            assert!(!mpas_market(r), "{r}");
        }
    }
}
