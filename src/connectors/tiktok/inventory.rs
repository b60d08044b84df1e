//! What one SKU's inventory update sends per warehouse (F29). TikTok wants every
//! warehouse assigned to a SKU in each update, none missing and none extra; we own
//! only the mapped pickup warehouse. The others are sent with the quantity TikTok
//! holds for them right now, so the update leaves them as they are.
//!
//! An update sets the *available* quantity (what `skus[].inventory[]` shows, equal to
//! Inventory Search's `available_quantity`); `committed_quantity` is what TikTok's
//! own orders reserved and is not part of it. So a foreign warehouse is sent its
//! current `available_quantity`: sending available + committed would hand the
//! reserved units back to buyers, and a quantity remembered from an earlier read
//! would undo every order placed from that warehouse since.

use std::collections::BTreeMap;

use super::model::{WarehouseInventory, WarehouseQuantity};

/// Inventory quantities TikTok accepts.
pub const MAX_QUANTITY: i64 = 99_999;

/// A warehouse we were asked to set that TikTok has not assigned to the SKU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("warehouse {warehouse} is not assigned to SKU {sku_id} (assigned: {})", .assigned.join(", "))]
pub struct NotAssigned {
    pub sku_id: String,
    pub warehouse: String,
    pub assigned: Vec<String>,
}

/// The quantities a multi-warehouse SKU's update carries, read from Inventory Search:
/// what a foreign warehouse holds is its `available_quantity`.
pub fn current_available(read: &[WarehouseInventory]) -> Vec<WarehouseQuantity> {
    read.iter()
        .map(|w| WarehouseQuantity {
            warehouse_id: w.warehouse_id.clone(),
            quantity: w.available_quantity,
        })
        .collect()
}

/// Every assigned warehouse in TikTok's order: ours with the quantity we set (clamped
/// to TikTok's range), the others unchanged from `current`. A SKU TikTok shows with
/// no warehouse at all gets ours alone.
pub fn warehouse_quantities(
    sku_id: &str,
    current: &[WarehouseQuantity],
    ours: &BTreeMap<String, i64>,
) -> Result<Vec<WarehouseQuantity>, NotAssigned> {
    if let Some(missing) = ours
        .keys()
        .find(|w| !current.is_empty() && !current.iter().any(|c| &c.warehouse_id == *w))
    {
        return Err(NotAssigned {
            sku_id: sku_id.to_string(),
            warehouse: missing.clone(),
            assigned: current.iter().map(|c| c.warehouse_id.clone()).collect(),
        });
    }
    if current.is_empty() {
        return Ok(ours
            .iter()
            .map(|(w, q)| WarehouseQuantity {
                warehouse_id: w.clone(),
                quantity: (*q).clamp(0, MAX_QUANTITY),
            })
            .collect());
    }
    Ok(current
        .iter()
        .map(|c| WarehouseQuantity {
            warehouse_id: c.warehouse_id.clone(),
            quantity: ours
                .get(&c.warehouse_id)
                .map_or(c.quantity, |q| (*q).clamp(0, MAX_QUANTITY)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wq(w: &str, q: i64) -> WarehouseQuantity {
        WarehouseQuantity {
            warehouse_id: w.into(),
            quantity: q,
        }
    }

    fn ours(w: &str, q: i64) -> BTreeMap<String, i64> {
        BTreeMap::from([(w.to_string(), q)])
    }

    #[test]
    fn ours_gets_the_atp_and_a_foreign_warehouse_keeps_what_it_holds_now() {
        let now = [wq("OTHER", 4), wq("PICKUP", 9)];
        assert_eq!(
            warehouse_quantities("S", &now, &ours("PICKUP", 12)).unwrap(),
            vec![wq("OTHER", 4), wq("PICKUP", 12)]
        );
    }

    #[test]
    fn a_foreign_warehouse_is_sent_its_available_not_its_committed_stock() {
        let read = [
            WarehouseInventory {
                warehouse_id: "OTHER".into(),
                available_quantity: 3,
                committed_quantity: 2,
            },
            WarehouseInventory {
                warehouse_id: "PICKUP".into(),
                available_quantity: 9,
                committed_quantity: 0,
            },
        ];
        let sent = warehouse_quantities("S", &current_available(&read), &ours("PICKUP", 5));
        assert_eq!(sent.unwrap(), vec![wq("OTHER", 3), wq("PICKUP", 5)]);
    }

    #[test]
    fn quantities_are_clamped_and_a_bare_sku_gets_ours_alone() {
        assert_eq!(
            warehouse_quantities("S", &[], &ours("PICKUP", 250_000)).unwrap(),
            vec![wq("PICKUP", MAX_QUANTITY)]
        );
        assert_eq!(
            warehouse_quantities("S", &[wq("PICKUP", 1)], &ours("PICKUP", -3)).unwrap(),
            vec![wq("PICKUP", 0)]
        );
    }

    #[test]
    fn a_warehouse_tiktok_has_not_assigned_is_refused_before_any_call() {
        let err = warehouse_quantities("S", &[wq("A", 1), wq("B", 2)], &ours("C", 1)).unwrap_err();
        assert_eq!(err.warehouse, "C");
        assert_eq!(err.assigned, vec!["A".to_string(), "B".to_string()]);
    }
}
