//! Katana's stock rules in the simulator: a NOT_SHIPPED sales order commits its
//! rows, a fulfillment moves the delivered units out of stock and releases their
//! commitment, and the status follows from what the fulfillments cover.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::model::{Fulfillment, SalesOrder, SoRow, Tracking};
use super::state::SimState;
use crate::domain::observed::Quantity;

fn row_location(so: &SalesOrder, row: &SoRow) -> i64 {
    row.location_id.unwrap_or(so.location_id)
}
impl SimState {
    /// Quantity of each SO row covered by fulfillments.
    pub(super) fn fulfilled(&self, so_id: i64) -> BTreeMap<i64, (Quantity, Quantity)> {
        let mut m: BTreeMap<i64, (Quantity, Quantity)> = BTreeMap::new();
        for f in self
            .fulfillments
            .values()
            .filter(|f| f.sales_order_id == so_id)
        {
            for (_, row, q) in &f.rows {
                let e = m.entry(*row).or_default();
                e.0 = Quantity(e.0 .0 + q.0);
                if f.status == "DELIVERED" {
                    e.1 = Quantity(e.1 .0 + q.0);
                }
            }
        }
        m
    }

    /// NOT_SHIPPED / PENDING until something is fulfilled, then PARTIALLY_* or the full
    /// PACKED / DELIVERED, computed like Katana from the fulfillments.
    pub fn so_status(&self, so_id: i64) -> Option<String> {
        let so = self.sales_orders.get(&so_id)?;
        let done = self.fulfilled(so_id);
        if done.is_empty() {
            return Some(so.base_status.clone());
        }
        let all_covered = so
            .rows
            .iter()
            .all(|r| done.get(&r.id).is_some_and(|d| d.0 >= r.quantity));
        let all_delivered = so
            .rows
            .iter()
            .all(|r| done.get(&r.id).is_some_and(|d| d.1 >= r.quantity));
        let any_delivered = done.values().any(|d| d.1 > Quantity(0));
        Some(
            match (all_delivered, all_covered, any_delivered) {
                (true, _, _) => "DELIVERED",
                (false, true, _) => "PACKED",
                (false, false, true) => "PARTIALLY_DELIVERED",
                (false, false, false) => "PARTIALLY_PACKED",
            }
            .to_string(),
        )
    }

    pub(super) fn commits(so: &SalesOrder) -> bool {
        so.base_status == "NOT_SHIPPED"
    }

    /// Adds (`sign` = 1) or releases (-1) the unfulfilled remainder's commitment.
    pub(super) fn commit_remainder(&mut self, so_id: i64, sign: i64) {
        let Some(so) = self.sales_orders.get(&so_id).cloned() else {
            return;
        };
        let done = self.fulfilled(so_id);
        for r in &so.rows {
            let left = r.quantity.0 - done.get(&r.id).map_or(0, |d| d.0 .0);
            if left > 0 {
                let s = self
                    .inventory
                    .entry((r.variant_id, row_location(&so, r)))
                    .or_default();
                s.committed = Quantity(s.committed.0 + sign * left);
            }
        }
    }

    /// Creates a fulfillment after checking rows; moves stock out.
    pub fn fulfil(
        &mut self,
        so_id: i64,
        status: &str,
        rows: &[(i64, Quantity)],
        tracking: &Tracking,
        tracking_method: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<i64, String> {
        let so = match self.sales_orders.get(&so_id) {
            Some(s) if s.deleted_at.is_none() => s.clone(),
            _ => return Err(format!("Sales order {so_id} not found")),
        };
        if so.base_status == "PENDING" {
            return Err("A quote (PENDING) cannot be fulfilled".into());
        }
        if rows.is_empty() {
            return Err("A fulfillment needs at least one row".into());
        }
        let done = self.fulfilled(so_id);
        let mut asked: BTreeMap<i64, i64> = BTreeMap::new();
        for (row_id, q) in rows {
            let Some(row) = so.rows.iter().find(|r| r.id == *row_id) else {
                return Err(format!(
                    "Sales order row {row_id} does not belong to sales order {so_id}"
                ));
            };
            if *q <= Quantity(0) {
                return Err(format!(
                    "Fulfillment quantity for row {row_id} must be positive"
                ));
            }
            let a = asked.entry(*row_id).or_default();
            *a += q.0;
            let left = row.quantity.0 - done.get(row_id).map_or(0, |d| d.0 .0);
            if *a > left {
                return Err(format!(
                    "Fulfillment quantity {} exceeds the remaining quantity {} of sales order row {row_id}",
                    Quantity(*a),
                    Quantity(left)
                ));
            }
        }
        let before = self.so_status(so_id);
        let id = self.next_id();
        let mut frows = Vec::new();
        for (row_id, q) in rows {
            let fr = self.next_id();
            frows.push((fr, *row_id, *q));
        }
        for (row_id, q) in rows {
            let row = so.rows.iter().find(|r| r.id == *row_id).cloned();
            if let Some(row) = row {
                let s = self
                    .inventory
                    .entry((row.variant_id, row_location(&so, &row)))
                    .or_default();
                s.in_stock = Quantity(s.in_stock.0 - q.0);
                if Self::commits(&so) {
                    s.committed = Quantity(s.committed.0 - q.0);
                }
            }
        }
        self.fulfillments.insert(
            id,
            Fulfillment {
                id,
                sales_order_id: so_id,
                status: status.to_string(),
                tracking_number: tracking.tracking_number.clone(),
                tracking_url: tracking.tracking_url.clone(),
                tracking_carrier: tracking.tracking_carrier.clone(),
                tracking_method,
                picked_date: now,
                rows: frows,
                conversion_rate: None,
                conversion_date: None,
                packer_id: None,
                created_at: now,
                updated_at: now,
            },
        );
        let touches_so = self.fulfillment_touches_so;
        if touches_so {
            if let Some(so) = self.sales_orders.get_mut(&so_id) {
                so.updated_at = now;
            }
        }
        let after = self.so_status(so_id);
        let variants: std::collections::BTreeSet<i64> = rows
            .iter()
            .filter_map(|(r, _)| so.rows.iter().find(|x| x.id == *r).map(|x| x.variant_id))
            .collect();
        for v in variants {
            self.emit_inventory(v);
        }
        if !touches_so {
            return Ok(id);
        }
        if before != after {
            match after.as_deref() {
                Some("DELIVERED") => self.emit_so("sales_order.delivered", so_id),
                Some("PACKED") => self.emit_so("sales_order.packed", so_id),
                _ => {}
            }
        }
        self.emit_so("sales_order.updated", so_id);
        Ok(id)
    }

    /// Fulfils everything not yet fulfilled (PATCH status, or the control surface).
    pub fn fulfil_remainder(
        &mut self,
        so_id: i64,
        status: &str,
        tracking: &Tracking,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, String> {
        let so = self
            .sales_orders
            .get(&so_id)
            .cloned()
            .ok_or_else(|| format!("Sales order {so_id} not found"))?;
        let done = self.fulfilled(so_id);
        let rows: Vec<(i64, Quantity)> = so
            .rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    Quantity(r.quantity.0 - done.get(&r.id).map_or(0, |d| d.0 .0)),
                )
            })
            .filter(|(_, q)| q.0 > 0)
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        self.fulfil(so_id, status, &rows, tracking, None, now)
            .map(Some)
    }
}
