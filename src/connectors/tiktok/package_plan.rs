//! Which TikTok packages carry a delivery's units. Ship Package works on whole
//! packages, so a partial delivery needs its units split into a package of their
//! own first; units that already left (a retry after a crash) need nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::mapping::map_line_item;
use super::model::LineItem;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackagePlan {
    /// Ship these packages; each holds only wanted units (and every open one of them).
    Ship(Vec<String>),
    /// Every wanted unit is already in a shipped package.
    AlreadyShipped(Vec<String>),
    /// `package_id` also holds units this delivery does not ship.
    Split {
        package_id: String,
        ship: Vec<String>,
        rest: Vec<String>,
    },
    /// A wanted unit is not in any package, cancelled, or not in the order.
    Unplaceable(String),
}

pub fn plan_packages(items: &[LineItem], wanted: &[String]) -> PackagePlan {
    let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    let by_id: BTreeMap<&str, &LineItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut to_ship: BTreeSet<String> = BTreeSet::new();
    let mut shipped: BTreeSet<String> = BTreeSet::new();
    for id in &wanted {
        let Some(item) = by_id.get(id) else {
            return PackagePlan::Unplaceable(format!("line item {id} is not in the order"));
        };
        let unit = map_line_item(item);
        let Some(package) = item.package_id.as_deref().filter(|p| !p.is_empty()) else {
            return PackagePlan::Unplaceable(format!("line item {id} is in no TikTok package"));
        };
        if unit.cancelled {
            return PackagePlan::Unplaceable(format!("line item {id} is cancelled"));
        }
        if unit.shipped {
            shipped.insert(package.to_string());
        } else {
            to_ship.insert(package.to_string());
        }
    }
    if to_ship.is_empty() {
        return PackagePlan::AlreadyShipped(shipped.into_iter().collect());
    }
    for package in &to_ship {
        let open: Vec<&LineItem> = items
            .iter()
            .filter(|i| i.package_id.as_deref() == Some(package.as_str()))
            .filter(|i| {
                let u = map_line_item(i);
                !u.cancelled && !u.shipped
            })
            .collect();
        let (ship, rest): (Vec<&LineItem>, Vec<&LineItem>) = open
            .into_iter()
            .partition(|i| wanted.contains(i.id.as_str()));
        if !rest.is_empty() {
            return PackagePlan::Split {
                package_id: package.clone(),
                ship: ship.iter().map(|i| i.id.clone()).collect(),
                rest: rest.iter().map(|i| i.id.clone()).collect(),
            };
        }
    }
    PackagePlan::Ship(to_ship.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, package: Option<&str>, tracking: Option<&str>) -> LineItem {
        LineItem {
            id: id.into(),
            sku_id: "S".into(),
            package_id: package.map(str::to_string),
            tracking_number: tracking.map(str::to_string),
            display_status: Some("AWAITING_SHIPMENT".into()),
            ..Default::default()
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_whole_package_ships_as_it_is() {
        let items = [item("1", Some("P"), None), item("2", Some("P"), None)];
        assert_eq!(
            plan_packages(&items, &ids(&["1", "2"])),
            PackagePlan::Ship(ids(&["P"]))
        );
    }

    #[test]
    fn part_of_a_package_is_split_off_first() {
        let items = [
            item("1", Some("P"), None),
            item("2", Some("P"), None),
            item("3", Some("P"), None),
        ];
        assert_eq!(
            plan_packages(&items, &ids(&["2"])),
            PackagePlan::Split {
                package_id: "P".into(),
                ship: ids(&["2"]),
                rest: ids(&["1", "3"]),
            }
        );
    }

    #[test]
    fn cancelled_and_shipped_units_do_not_hold_a_package_back() {
        let mut cancelled = item("3", Some("P"), None);
        cancelled.display_status = Some("CANCELLED".into());
        let items = [
            item("1", Some("P"), None),
            item("2", Some("Q"), Some("1Z")),
            cancelled,
        ];
        assert_eq!(
            plan_packages(&items, &ids(&["1"])),
            PackagePlan::Ship(ids(&["P"]))
        );
        assert_eq!(
            plan_packages(&items, &ids(&["2"])),
            PackagePlan::AlreadyShipped(ids(&["Q"]))
        );
    }

    #[test]
    fn units_without_a_package_cannot_be_placed() {
        let items = [item("1", None, None)];
        assert!(matches!(
            plan_packages(&items, &ids(&["1"])),
            PackagePlan::Unplaceable(_)
        ));
        assert!(matches!(
            plan_packages(&items, &ids(&["9"])),
            PackagePlan::Unplaceable(_)
        ));
    }
}
