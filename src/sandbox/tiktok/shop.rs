//! One shop of the simulated app: the rule that gives each shop its own warehouse and
//! delivery-option ids, the id generator every shop draws from (so order, product, SKU and
//! package ids never repeat across shops), and [`ShopSim`], the control handle that acts on
//! one shop's state only.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::packages::{Label, PackageInfo, TrackingUpdate};
use super::state::{
    ApiErr, InventoryPush, NewOrder, NewProduct, OrderEdit, ShipmentRecord, SimOrder, SimProduct,
    State, MAIN_WAREHOUSE, RETURN_WAREHOUSE, SECOND_WAREHOUSE,
};
use super::{Inner, SimShop};
use crate::domain::observed::TikTokOrderStatus;

/// The warehouse ids of one shop.
///
/// Rule: `73` + the shop part + a two-digit index (`01` main sales warehouse, `02` overflow
/// sales warehouse, `03` returns), 19 digits like TikTok's ids. The shop part is the last
/// 15 digits of the shop id (left-padded with zeros); the configured main shop uses fifteen
/// zeros, which keeps its ids [`MAIN_WAREHOUSE`], [`SECOND_WAREHOUSE`] and
/// [`RETURN_WAREHOUSE`]. Delivery options follow the same rule with `74`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopWarehouses {
    pub main: String,
    pub second: String,
    pub return_: String,
}

impl ShopWarehouses {
    /// The configured main shop's warehouses.
    pub fn main_shop() -> Self {
        ShopWarehouses {
            main: MAIN_WAREHOUSE.into(),
            second: SECOND_WAREHOUSE.into(),
            return_: RETURN_WAREHOUSE.into(),
        }
    }

    /// The warehouses of any shop other than the configured main one.
    pub fn derived(shop_id: &str) -> Self {
        let part = shop_part(shop_id);
        ShopWarehouses {
            main: shop_scoped_id(73, &part, 1),
            second: shop_scoped_id(73, &part, 2),
            return_: shop_scoped_id(73, &part, 3),
        }
    }
}

/// The shop's digits in its warehouse and delivery-option ids (see [`ShopWarehouses`]).
pub(super) fn shop_part(shop_id: &str) -> String {
    let digits: String = shop_id.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(15)..];
    format!("{tail:0>15}")
}

/// The main shop's part: its ids stay the ones it always had.
pub(super) const MAIN_SHOP_PART: &str = "000000000000000";

pub(super) fn shop_scoped_id(prefix: u8, part: &str, index: usize) -> String {
    format!("{prefix}{part}{index:02}")
}

/// The one id sequence all shops draw from.
#[derive(Clone, Debug, Default)]
pub struct IdCounter(Arc<AtomicU64>);

impl IdCounter {
    pub fn next(&self) -> u64 {
        // Starts at 2, as the single-shop simulator's ids always did.
        self.0.fetch_add(1, Ordering::Relaxed) + 2
    }
}

/// A shop and the seller who authorised it; id and cipher are fixed, so lookups need no lock.
pub(crate) struct ShopEntry {
    pub id: String,
    pub cipher: String,
    pub seller: usize,
    pub state: Mutex<State>,
}

/// What tests and the sandbox do to one shop; [`super::SimControl`]'s methods of the same
/// names act on the main shop through this.
pub struct ShopSim<'a> {
    pub(super) inner: &'a Arc<Inner>,
    pub(super) entry: &'a ShopEntry,
}

impl ShopSim<'_> {
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    pub fn cipher(&self) -> &str {
        &self.entry.cipher
    }

    /// 0 = the main seller, 1.. = `other_sellers[i - 1]`.
    pub fn seller(&self) -> usize {
        self.entry.seller
    }

    /// The shop as Get Authorized Shops lists it now.
    pub fn info(&self) -> SimShop {
        self.entry.state.lock().shop.clone()
    }

    pub fn warehouses(&self) -> ShopWarehouses {
        self.entry.state.lock().warehouse_ids.clone()
    }

    /// Replaces the shop's catalogue. Product and SKU ids given explicitly must not be used
    /// by another shop: ids are unique across the app's shops.
    pub fn set_catalogue(&self, products: Vec<NewProduct>) -> Result<Vec<SimProduct>, ApiErr> {
        let mut taken = HashSet::new();
        for other in self.inner.shops.iter().filter(|s| s.id != self.entry.id) {
            let st = other.state.lock();
            for p in st.products.values() {
                taken.insert(p.id.clone());
                taken.extend(p.skus.iter().map(|s| s.id.clone()));
            }
        }
        let explicit = products.iter().flat_map(|p| {
            p.id.iter()
                .chain(p.skus.iter().filter_map(|s| s.id.as_ref()))
        });
        for id in explicit {
            if taken.contains(id) {
                return Err(ApiErr::invalid_param(format!(
                    "id {id} belongs to another shop"
                )));
            }
        }
        let now = self.inner.now();
        self.entry.state.lock().set_catalogue(products, now)
    }

    pub fn products(&self) -> Vec<SimProduct> {
        self.entry.state.lock().products.values().cloned().collect()
    }

    pub fn create_order(&self, new: NewOrder) -> Result<SimOrder, ApiErr> {
        let now = self.inner.now();
        let (o, notes) = self.entry.state.lock().create_order(new, now)?;
        self.inner.emit(&self.entry.id, notes);
        Ok(o)
    }

    pub fn edit_order(&self, id: &str, edit: OrderEdit) -> Result<SimOrder, ApiErr> {
        let now = self.inner.now();
        let (o, notes) = self.entry.state.lock().edit_order(id, edit, now)?;
        self.inner.emit(&self.entry.id, notes);
        Ok(o)
    }

    /// Cancels the whole order (`None`) or the given units.
    pub fn cancel_order(
        &self,
        id: &str,
        line_item_ids: Option<Vec<String>>,
    ) -> Result<SimOrder, ApiErr> {
        let now = self.inner.now();
        let (o, notes) = self.entry.state.lock().cancel(id, line_item_ids, now)?;
        self.inner.emit(&self.entry.id, notes);
        Ok(o)
    }

    pub fn set_order_status(
        &self,
        id: &str,
        status: TikTokOrderStatus,
    ) -> Result<SimOrder, ApiErr> {
        let now = self.inner.now();
        let (o, notes) = self.entry.state.lock().set_status(id, status, now)?;
        self.inner.emit(&self.entry.id, notes);
        Ok(o)
    }

    pub fn order(&self, id: &str) -> Option<SimOrder> {
        self.entry.state.lock().orders.get(id).cloned()
    }

    pub fn shipments(&self) -> Vec<ShipmentRecord> {
        self.entry.state.lock().shipments.clone()
    }

    /// Accepted Update Shipping Info calls, oldest first.
    pub fn tracking_updates(&self) -> Vec<TrackingUpdate> {
        self.entry.state.lock().tracking_updates.clone()
    }

    /// The order's packages (ids, units, status, tracking, handover), in unit order.
    pub fn order_packages(&self, order_id: &str) -> Vec<PackageInfo> {
        self.entry.state.lock().order_packages(order_id)
    }

    /// Issues a shipping-label URL for an arranged TikTok-label package, as Get Shipping
    /// Document does (`SHIPPING_LABEL`, A6), without a signed call.
    pub fn issue_label(&self, package_id: &str) -> Result<String, ApiErr> {
        let now = self.inner.now();
        let v = self.entry.state.lock().shipping_document(
            package_id,
            Some("SHIPPING_LABEL"),
            Some("A6"),
            now,
        )?;
        Ok(v["doc_url"].as_str().unwrap_or_default().to_string())
    }

    /// Every shipping document URL handed out, oldest first.
    pub fn labels(&self) -> Vec<Label> {
        let st = self.entry.state.lock();
        let mut v: Vec<Label> = st.labels.values().cloned().collect();
        v.sort_by_key(|l| (l.expires_at, l.token.len(), l.token.clone()));
        v
    }

    pub fn inventory_pushes(&self) -> Vec<InventoryPush> {
        self.entry.state.lock().inventory_pushes.clone()
    }

    /// (sku id -> warehouse id -> quantity) as the simulator holds it now.
    pub fn stock(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        let st = self.entry.state.lock();
        st.products
            .values()
            .flat_map(|p| p.skus.iter())
            .map(|s| (s.id.clone(), s.inventory.iter().cloned().collect()))
            .collect()
    }

    /// (sku id -> warehouse id -> units reserved by orders) as the simulator holds it now.
    pub fn committed(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        let st = self.entry.state.lock();
        st.products
            .values()
            .flat_map(|p| p.skus.iter())
            .map(|s| (s.id.clone(), s.committed.clone()))
            .collect()
    }

    /// Sets a SKU's available quantity at one of its warehouses, as a person in
    /// Seller Center or another tool would.
    pub fn set_available(
        &self,
        sku_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<(), ApiErr> {
        self.entry
            .state
            .lock()
            .set_available(sku_id, warehouse_id, quantity)
    }

    /// Renames the shop, as the seller would in Seller Center.
    pub fn rename_shop(&self, name: &str) {
        self.entry.state.lock().shop.name = name.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_shops_get_warehouse_ids_of_their_own_from_their_shop_id() {
        let w = ShopWarehouses::derived("7494726673780150052");
        assert_eq!(w.main, "7372667378015005201");
        assert_eq!(w.second, "7372667378015005202");
        assert_eq!(w.return_, "7372667378015005203");
        assert_eq!(w.main.len(), MAIN_WAREHOUSE.len());
        assert_ne!(w, ShopWarehouses::derived("7495218830460913307"));
        // A short id is padded, so every id keeps TikTok's length.
        assert_eq!(ShopWarehouses::derived("42").main, "7300000000000004201");
        // The main shop's rule reproduces its historic ids.
        assert_eq!(shop_scoped_id(73, MAIN_SHOP_PART, 1), MAIN_WAREHOUSE);
        assert_eq!(shop_scoped_id(73, MAIN_SHOP_PART, 3), RETURN_WAREHOUSE);
    }
}
