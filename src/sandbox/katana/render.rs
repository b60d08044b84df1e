//! The simulator's JSON read models: sales orders, fulfillments, customers,
//! variants, locations, inventory and webhooks as Katana's API shows them.

use serde_json::{json, Value};

use super::model::{
    iso, qnum, Customer, Fulfillment, Location, SalesOrder, Stock, Variant, Webhook,
};
use super::state::SimState;
use crate::domain::observed::Quantity;

impl SimState {
    pub fn so_json(&self, so: &SalesOrder) -> Value {
        let rows: Vec<Value> = so
            .rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "sales_order_id": so.id, "quantity": qnum(r.quantity), "variant_id": r.variant_id,
                    "tax_rate_id": null, "location_id": r.location_id.unwrap_or(so.location_id),
                    "price_per_unit": format!("{}00000", r.price_per_unit),
                    "total": qnum(Quantity(((r.price_per_unit.0 as i128 * r.quantity.0 as i128) / Quantity::SCALE as i128) as i64)),
                    "total_discount": null, "attributes": [],
                    "created_at": iso(so.created_at), "updated_at": iso(so.updated_at), "deleted_at": null,
                })
            })
            .collect();
        let total: i64 = so
            .rows
            .iter()
            .map(|r| {
                ((r.price_per_unit.0 as i128 * r.quantity.0 as i128) / Quantity::SCALE as i128)
                    as i64
            })
            .sum();
        let addresses: Vec<Value> = so
            .addresses
            .iter()
            .map(|a| Value::Object(a.clone()))
            .collect();
        let shipping_id = so
            .addresses
            .iter()
            .find(|a| a["entity_type"] == "shipping")
            .map(|a| a["id"].clone());
        let billing_id = so
            .addresses
            .iter()
            .find(|a| a["entity_type"] == "billing")
            .map(|a| a["id"].clone());
        let f: Vec<&Fulfillment> = self
            .fulfillments
            .values()
            .filter(|f| f.sales_order_id == so.id)
            .collect();
        json!({
            "id": so.id, "customer_id": so.customer_id, "order_no": so.order_no, "source": "api",
            "order_created_date": so.order_created_date.clone().unwrap_or_else(|| iso(so.created_at)),
            "delivery_date": null,
            "picked_date": f.iter().map(|f| f.picked_date).max().map(iso),
            "location_id": so.location_id,
            "status": self.so_status(so.id),
            "currency": so.currency, "conversion_rate": null, "conversion_date": null,
            "invoicing_status": "notInvoiced",
            "total": qnum(Quantity(total)), "total_in_base_currency": qnum(Quantity(total)),
            "additional_info": so.additional_info, "customer_ref": so.customer_ref,
            "sales_order_rows": rows,
            "ecommerce_order_type": so.ecommerce_order_type, "ecommerce_store_name": so.ecommerce_store_name,
            "ecommerce_order_id": so.ecommerce_order_id,
            "tracking_number": null, "tracking_number_url": null,
            "billing_address_id": billing_id, "shipping_address_id": shipping_id,
            "addresses": addresses,
            "created_at": iso(so.created_at), "updated_at": iso(so.updated_at),
            "deleted_at": so.deleted_at.map(iso),
        })
    }

    pub(super) fn fulfillment_json(f: &Fulfillment) -> Value {
        let rows: Vec<Value> = f
            .rows
            .iter()
            .map(|(id, row, q)| json!({"id": id, "sales_order_row_id": row, "quantity": qnum(*q), "batch_transactions": [], "serial_numbers": []}))
            .collect();
        json!({
            "id": f.id, "sales_order_id": f.sales_order_id, "picked_date": iso(f.picked_date), "status": f.status,
            "invoice_status": "NOT_INVOICED", "conversion_rate": f.conversion_rate, "conversion_date": f.conversion_date,
            "tracking_number": f.tracking_number, "tracking_url": f.tracking_url,
            "tracking_carrier": f.tracking_carrier, "tracking_method": f.tracking_method, "packer_id": f.packer_id,
            "sales_order_fulfillment_rows": rows, "created_at": iso(f.created_at), "updated_at": iso(f.updated_at),
        })
    }

    pub(super) fn customer_json(c: &Customer) -> Value {
        json!({
            "id": c.id, "name": c.name, "first_name": c.first_name, "last_name": c.last_name, "company": null,
            "email": c.email, "phone": null, "comment": c.comment, "currency": "USD", "reference_id": null,
            "category": null, "discount_rate": null, "default_billing_id": null, "default_shipping_id": null,
            "addresses": [], "created_at": iso(c.created_at), "updated_at": iso(c.created_at), "deleted_at": null,
        })
    }

    pub(super) fn variant_json(v: &Variant) -> Value {
        json!({
            "id": v.id, "sku": v.sku, "sales_price": qnum(v.sales_price), "purchase_price": null,
            "product_id": v.product_id, "material_id": null, "type": "product", "internal_barcode": null,
            "registered_barcode": null, "supplier_item_codes": [], "config_attributes": [],
            "created_at": iso(v.created_at), "updated_at": iso(v.created_at), "deleted_at": null,
        })
    }

    pub(super) fn location_json(l: &Location) -> Value {
        json!({
            "id": l.id, "name": l.name, "legal_name": l.name, "address_id": null, "address": null,
            "is_primary": false, "sales_allowed": l.sales_allowed, "manufacturing_allowed": true,
            "purchase_allowed": true, "created_at": iso(l.created_at), "updated_at": iso(l.created_at), "deleted_at": null,
        })
    }

    pub(super) fn inventory_json(variant_id: i64, location_id: i64, s: &Stock) -> Value {
        json!({
            "variant_id": variant_id, "location_id": location_id,
            "safety_stock_level": "0.00000", "reorder_point": "0.00000", "average_cost": "0.00000",
            "value_in_stock": "0.00000",
            "quantity_in_stock": s.in_stock.to_string(), "quantity_committed": s.committed.to_string(),
            "quantity_expected": "0.00000",
            "quantity_missing_or_excess": Quantity(s.in_stock.0 - s.committed.0).to_string(),
            "quantity_potential": "0.00000", "archived_at": null, "default_storage_bin": null,
        })
    }

    pub fn webhook_json(w: &Webhook) -> Value {
        json!({
            "id": w.id, "url": w.url, "token": w.token, "enabled": w.enabled, "description": w.description,
            "subscribed_events": w.subscribed_events, "created_at": null, "updated_at": null,
        })
    }

    /// Every SO as the read model shows it, deleted ones included (for tests).
    pub fn all_sales_orders(&self) -> Vec<Value> {
        self.sales_orders
            .values()
            .map(|s| self.so_json(s))
            .collect()
    }
}
