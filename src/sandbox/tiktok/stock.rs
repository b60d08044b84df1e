//! Per-warehouse stock of the simulated shop: orders move units from a warehouse's
//! available quantity to its committed quantity and cancellations move them back,
//! Inventory Search reads both, and a control sets a warehouse's available quantity
//! behind the service's back (another tool or a person in Seller Center).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{ApiErr, SimSku, SimUnit, State};

/// Inventory Search takes at most this many SKU ids, or this many product ids.
pub const MAX_SEARCH_SKU_IDS: usize = 600;
pub const MAX_SEARCH_PRODUCT_IDS: usize = 100;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySearchRequest {
    pub product_ids: Option<Vec<String>>,
    pub sku_ids: Option<Vec<String>>,
}

fn sku_wire(s: &SimSku) -> Value {
    let committed = |w: &str| s.committed.get(w).copied().unwrap_or(0);
    let available: i64 = s.inventory.iter().map(|(_, q)| q).sum();
    let total_committed: i64 = s.committed.values().sum();
    json!({
        "id": s.id,
        "seller_sku": s.seller_sku,
        "total_available_quantity": available,
        "total_committed_quantity": total_committed,
        "warehouse_inventory": s.inventory.iter().map(|(w, q)| json!({
            "warehouse_id": w, "available_quantity": q, "committed_quantity": committed(w),
        })).collect::<Vec<_>>(),
        "total_available_inventory_distribution": {
            "in_shop_inventory": {"quantity": available},
            "campaign_inventory": [],
            "creator_inventory": [],
        },
    })
}

impl State {
    /// The warehouse a new order ships from: the one asked for, which must be a sales
    /// warehouse every SKU of the order is assigned to, or the main warehouse.
    pub(super) fn order_warehouse(
        &self,
        asked: Option<&str>,
        units: &[SimUnit],
    ) -> Result<String, ApiErr> {
        let Some(w) = asked else {
            return Ok(self.warehouse_ids.main.clone());
        };
        if !self
            .warehouses
            .iter()
            .any(|x| x.id == w && x.warehouse_type == "SALES_WAREHOUSE")
        {
            return Err(ApiErr::invalid_param(format!(
                "warehouse_id {w} is not a sales warehouse"
            )));
        }
        for u in units {
            let assigned = self
                .sku(&u.sku_id)
                .is_some_and(|s| s.inventory.iter().any(|(x, _)| x == w));
            if !assigned {
                return Err(ApiErr::invalid_param(format!(
                    "SKU {} is not assigned to warehouse {w}",
                    u.seller_sku
                )));
            }
        }
        Ok(w.to_string())
    }

    fn sku(&self, sku_id: &str) -> Option<&SimSku> {
        self.products
            .values()
            .flat_map(|p| p.skus.iter())
            .find(|s| s.id == sku_id)
    }

    fn sku_mut(&mut self, sku_id: &str) -> Option<&mut SimSku> {
        self.products
            .values_mut()
            .flat_map(|p| p.skus.iter_mut())
            .find(|s| s.id == sku_id)
    }

    /// Moves an order's units of each SKU from available to committed at `warehouse`.
    /// TikTok sells no more than is available; the simulator takes such orders anyway
    /// (tests and scripted days order before any stock is pushed), and a SKU's units
    /// that exceed what is available reserve nothing, as if sold elsewhere, rather
    /// than some of them: a partly reserved order would leave TikTok showing less
    /// than the seller's own count once the seller's stock catches up.
    pub(super) fn reserve(&mut self, warehouse: &str, units: &mut [SimUnit]) {
        let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
        for u in units.iter() {
            *wanted.entry(u.sku_id.clone()).or_default() += 1;
        }
        for (sku_id, n) in wanted {
            let Some(sku) = self.sku_mut(&sku_id) else {
                continue;
            };
            let Some(slot) = sku.inventory.iter_mut().find(|(w, _)| w == warehouse) else {
                continue;
            };
            if slot.1 < n {
                continue;
            }
            slot.1 -= n;
            *sku.committed.entry(warehouse.to_string()).or_default() += n;
            for u in units.iter_mut().filter(|u| u.sku_id == sku_id) {
                u.reserved_at = Some(warehouse.to_string());
            }
        }
    }

    /// Gives reserved units back: (sku id, warehouse) per unit.
    pub(super) fn release(&mut self, reservations: Vec<(String, String)>) {
        for (sku_id, warehouse) in reservations {
            let Some(sku) = self.sku_mut(&sku_id) else {
                continue;
            };
            let Some(committed) = sku.committed.get_mut(&warehouse).filter(|c| **c > 0) else {
                continue;
            };
            *committed -= 1;
            if let Some(slot) = sku.inventory.iter_mut().find(|(w, _)| *w == warehouse) {
                slot.1 += 1;
            }
        }
    }

    /// `POST /product/202309/inventory/search`: `sku_ids` wins over `product_ids`;
    /// every id must exist.
    pub fn inventory_search(&self, req: &InventorySearchRequest) -> Result<Value, ApiErr> {
        let sku_ids = req.sku_ids.as_ref().filter(|v| !v.is_empty());
        let product_ids = req.product_ids.as_ref().filter(|v| !v.is_empty());
        let groups: Vec<Value> = match (sku_ids, product_ids) {
            (Some(ids), _) => {
                if ids.len() > MAX_SEARCH_SKU_IDS {
                    return Err(ApiErr::invalid_param(format!(
                        "sku_ids holds at most {MAX_SEARCH_SKU_IDS} values, got {}",
                        ids.len()
                    )));
                }
                if let Some(unknown) = ids.iter().find(|id| self.sku(id).is_none()) {
                    return Err(ApiErr::invalid_param(format!(
                        "sku_ids: SKU {unknown} does not exist"
                    )));
                }
                self.products
                    .values()
                    .filter_map(|p| {
                        let skus: Vec<Value> = p
                            .skus
                            .iter()
                            .filter(|s| ids.contains(&s.id))
                            .map(sku_wire)
                            .collect();
                        (!skus.is_empty()).then(|| json!({"product_id": p.id, "skus": skus}))
                    })
                    .collect()
            }
            (None, Some(ids)) => {
                if ids.len() > MAX_SEARCH_PRODUCT_IDS {
                    return Err(ApiErr::invalid_param(format!(
                        "product_ids holds at most {MAX_SEARCH_PRODUCT_IDS} values, got {}",
                        ids.len()
                    )));
                }
                let mut out = Vec::new();
                for id in ids {
                    let p = self.products.get(id).ok_or_else(|| {
                        ApiErr::new(
                            super::state::sim_codes::PRODUCT_NOT_FOUND,
                            format!("product {id} does not exist"),
                        )
                    })?;
                    out.push(json!({
                        "product_id": p.id,
                        "skus": p.skus.iter().map(sku_wire).collect::<Vec<_>>(),
                    }));
                }
                out
            }
            (None, None) => {
                return Err(ApiErr::invalid_param(
                    "one of product_ids or sku_ids is required",
                ))
            }
        };
        Ok(json!({ "inventory": groups }))
    }

    /// Sets the available quantity of a SKU at one of its warehouses.
    pub fn set_available(
        &mut self,
        sku_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<(), ApiErr> {
        if !(0..=99_999).contains(&quantity) {
            return Err(ApiErr::invalid_param(format!(
                "quantity {quantity} outside 0..=99999"
            )));
        }
        let sku = self
            .sku_mut(sku_id)
            .ok_or_else(|| ApiErr::invalid_param(format!("SKU {sku_id} does not exist")))?;
        let slot = sku
            .inventory
            .iter_mut()
            .find(|(w, _)| w == warehouse_id)
            .ok_or_else(|| {
                ApiErr::invalid_param(format!(
                    "SKU {sku_id} is not assigned to warehouse {warehouse_id}"
                ))
            })?;
        slot.1 = quantity;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{NewOrder, NewProduct, NewSku, MAIN_WAREHOUSE, SECOND_WAREHOUSE};
    use super::*;
    use crate::domain::observed::TikTokOrderStatus;

    fn shop() -> State {
        let mut st = State::new();
        st.set_catalogue(
            vec![NewProduct {
                id: Some("P1".into()),
                title: "Mug".into(),
                status: "ACTIVATE".into(),
                skus: vec![NewSku {
                    id: Some("S1".into()),
                    seller_sku: "MUG".into(),
                    price: "10.00".into(),
                    inventory: vec![(MAIN_WAREHOUSE.into(), 5), (SECOND_WAREHOUSE.into(), 2)],
                }],
            }],
            0,
        )
        .unwrap();
        st
    }

    fn quantities(st: &State) -> Value {
        st.inventory_search(&InventorySearchRequest {
            sku_ids: Some(vec!["S1".into()]),
            product_ids: None,
        })
        .unwrap()["inventory"][0]["skus"][0]["warehouse_inventory"]
            .clone()
    }

    #[test]
    fn an_order_moves_stock_of_its_warehouse_to_committed_and_a_cancellation_back() {
        let mut st = shop();
        let from_second = |units: u32| {
            let mut new = NewOrder::of(&[("MUG", units)], TikTokOrderStatus::AwaitingShipment);
            new.warehouse_id = Some(SECOND_WAREHOUSE.into());
            new
        };
        let (order, _) = st.create_order(from_second(2), 1).unwrap();
        let w = quantities(&st);
        assert_eq!(
            w[0]["available_quantity"], 5,
            "the main warehouse is untouched"
        );
        assert_eq!(w[1]["available_quantity"], 0);
        assert_eq!(w[1]["committed_quantity"], 2);
        // More than is available reserves nothing.
        st.create_order(from_second(1), 2).unwrap();
        assert_eq!(quantities(&st)[1]["committed_quantity"], 2);
        st.cancel(&order.id, None, 3).unwrap();
        let w = quantities(&st);
        assert_eq!(w[1]["available_quantity"], 2);
        assert_eq!(w[1]["committed_quantity"], 0);
    }

    #[test]
    fn inventory_search_is_strict_about_its_ids() {
        let st = shop();
        let search = |sku_ids: Option<Vec<String>>, product_ids: Option<Vec<String>>| {
            st.inventory_search(&InventorySearchRequest {
                sku_ids,
                product_ids,
            })
        };
        assert!(search(None, None).is_err());
        assert!(search(Some(vec!["nope".into()]), None).is_err());
        assert!(search(Some(vec!["S1".into(); MAX_SEARCH_SKU_IDS + 1]), None).is_err());
        assert!(search(None, Some(vec!["P9".into()])).is_err());
        let by_product = search(None, Some(vec!["P1".into()])).unwrap();
        assert_eq!(by_product["inventory"][0]["skus"][0]["id"], "S1");
        let mut st = st;
        assert!(st.set_available("S1", "7300000000000000003", 1).is_err());
        st.set_available("S1", SECOND_WAREHOUSE, 9).unwrap();
        assert_eq!(quantities(&st)[1]["available_quantity"], 9);
    }
}
