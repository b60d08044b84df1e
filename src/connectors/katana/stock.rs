//! Katana stock read into the SKU aggregates: every variant of the SKUs asked for
//! in one `GET /inventory`, at the locations whose stock counts for TikTok.

use std::collections::BTreeMap;

use super::budget::Priority;
use crate::actors::Execute;
use crate::connectors::is_retryable;
use crate::connectors::ports::KatanaPorts;
use crate::domain::observed::{Quantity, StockLevel};
use crate::domain::sku::SkuCommand;
use crate::seam::SeamError;
use crate::store::EventMeta;

/// The Katana locations whose stock some shop sells (each shop's `locations` or
/// pickup location), or every location that allows sales when a shop names none.
pub async fn stock_locations(ports: &KatanaPorts) -> Result<Vec<i64>, SeamError> {
    let sold_from = ports.settings.stock_locations();
    if !sold_from.is_empty() {
        return Ok(sold_from);
    }
    let katana = &ports.katana;
    Ok(katana
        .locations()
        .await
        .map_err(|e| SeamError::Retry(e.to_string()))?
        .into_iter()
        .filter(|l| l.sales_allowed)
        .map(|l| l.id)
        .collect())
}

/// Reads Katana stock of these SKUs' variants at the mapped locations and records it.
pub async fn read_stock(
    ports: &KatanaPorts,
    skus: &[String],
    cause: &EventMeta,
    priority: Priority,
) -> Result<(), SeamError> {
    let mut by_variant: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for sku in skus {
        if let Some(v) = ports.catalogue.variant_for(sku) {
            by_variant.entry(v).or_default().push(sku.clone());
        }
    }
    if by_variant.is_empty() {
        return Ok(());
    }
    let locations = stock_locations(ports).await?;
    let katana = &ports.katana;
    let variant_ids: Vec<i64> = by_variant.keys().copied().collect();
    let rows = katana.inventory_with(&variant_ids, None, priority).await;
    ports.metrics.api_call("katana", "inventory", rows.is_ok());
    let rows = match rows {
        Ok(r) => r,
        Err(e) if is_retryable(&e) => return Err(SeamError::Retry(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "inventory read refused");
            return Ok(());
        }
    };
    let mut levels: BTreeMap<i64, Vec<StockLevel>> = BTreeMap::new();
    for r in rows
        .into_iter()
        .filter(|r| locations.contains(&r.location_id))
    {
        levels.entry(r.variant_id).or_default().push(r);
    }
    for (variant, skus) in by_variant {
        // No inventory row at a location is Katana's way of saying none there: a
        // known 0, unlike a SKU whose stock was never read.
        let levels = levels.remove(&variant).unwrap_or_else(|| {
            locations
                .iter()
                .map(|&location_id| StockLevel {
                    variant_id: variant,
                    location_id,
                    in_stock: Quantity(0),
                    committed: Quantity(0),
                })
                .collect()
        });
        for sku in skus {
            // A level refused for a variant the SKU no longer has means the mapping
            // moved under the read: reading again takes the new one.
            ports
                .commands
                .skus
                .execute(
                    &sku,
                    Execute::new(SkuCommand::ObserveStock(levels.clone())).caused_by(cause),
                )
                .await
                .map_err(|e| SeamError::Retry(e.to_string()))?;
        }
    }
    Ok(())
}
