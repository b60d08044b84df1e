//! The JSON Schemas under `schema/events/` describe exactly the events this build
//! writes, one file per event type and version; older versions stay, so a log of
//! any age can be read with its schema at hand.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tks::domain::order::OrderEvent;
use tks::domain::sku::SkuEvent;

fn generated() -> BTreeMap<String, Value> {
    OrderEvent::json_schemas()
        .into_iter()
        .chain(SkuEvent::json_schemas())
        .map(|(ty, v, schema)| (format!("{ty}.v{v}.json"), schema))
        .collect()
}

#[test]
fn every_current_event_version_has_its_schema_file_and_it_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/events");
    let record = std::env::var("TKS_RECORD_SCHEMAS").is_ok();
    for (file, schema) in generated() {
        let path = dir.join(&file);
        if record {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("{file} is missing: run TKS_RECORD_SCHEMAS=1 cargo test --test it schemas")
        });
        let on_disk: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(on_disk, schema, "{file} no longer matches the event type: record it again (and bump the event version if the change is not backwards compatible)");
    }
}

#[test]
fn old_event_versions_keep_their_schema_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/events");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // OrderPlaced and OrderEdited were version 1 before observations recorded their source.
    for old in ["OrderPlaced.v1.json", "OrderEdited.v1.json"] {
        assert!(names.contains(&old.to_string()), "{old} was removed");
    }
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            schema.get("type").is_some() || schema.get("$schema").is_some(),
            "{name} is not a JSON Schema"
        );
    }
}
