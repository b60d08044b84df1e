//! Ajv-style request validation for the Katana simulator: the same error shapes the
//! real gateway produces (`details[]` with `path`, `code`, `message`, `info`), so a
//! client's unknown field or wrong type fails here exactly as it would in production.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::domain::observed::Quantity;

/// Int32 ids, as Katana's gateway schema says.
pub const MAX_ID: i64 = 2_147_483_647;

#[derive(Default)]
pub struct Ajv {
    pub details: Vec<Value>,
}

impl Ajv {
    pub fn ok(&self) -> bool {
        self.details.is_empty()
    }

    /// A query parameter the endpoint has no filter for.
    pub fn unknown_query_parameter(&mut self, name: &str) {
        self.push(
            "",
            "additionalProperties",
            format!("should NOT have additional properties: unknown query parameter `{name}`"),
            json!({"additionalProperty": name}),
        );
    }

    /// A date filter that is not an ISO-8601 date-time.
    pub fn date_time_query_parameter(&mut self, name: &str, got: &str) {
        self.push(
            &format!(".{name}"),
            "format",
            format!("should match format \"date-time\", got {got:?}"),
            json!({"format": "date-time"}),
        );
    }

    fn push(&mut self, path: &str, code: &str, message: String, info: Value) {
        self.details
            .push(json!({"path": path, "code": code, "message": message, "info": info}));
    }

    /// Checks that `v` is an object with only `allowed` keys and all `required` ones.
    pub fn object<'a>(
        &mut self,
        path: &str,
        v: &'a Value,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.push(
                path,
                "type",
                "should be object".into(),
                json!({"type": "object"}),
            );
            return None;
        };
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.push(
                    path,
                    "additionalProperties",
                    "should NOT have additional properties".into(),
                    json!({"additionalProperty": k}),
                );
            }
        }
        for r in required {
            if !obj.contains_key(*r) {
                self.push(
                    path,
                    "required",
                    format!("should have required property '{r}'"),
                    json!({"missingProperty": r}),
                );
            }
        }
        Some(obj)
    }

    fn type_err(&mut self, path: &str, ty: &str) {
        self.push(path, "type", format!("should be {ty}"), json!({"type": ty}));
    }

    /// An int32 id field; `Ok(None)` when absent or (if `nullable`) null.
    pub fn id(
        &mut self,
        obj: &Map<String, Value>,
        base: &str,
        key: &str,
        nullable: bool,
    ) -> Option<i64> {
        let path = format!("{base}.{key}");
        match obj.get(key) {
            None => None,
            Some(Value::Null) if nullable => None,
            Some(Value::Number(n)) if n.is_i64() => {
                let i = n.as_i64().unwrap_or_default();
                if !(0..=MAX_ID).contains(&i) {
                    self.push(
                        &path,
                        "maximum",
                        format!("should be <= {MAX_ID}"),
                        json!({"limit": MAX_ID}),
                    );
                    None
                } else {
                    Some(i)
                }
            }
            Some(_) => {
                self.type_err(&path, "integer");
                None
            }
        }
    }

    /// A string field with optional length bounds.
    pub fn string(
        &mut self,
        obj: &Map<String, Value>,
        base: &str,
        key: &str,
        nullable: bool,
        min: usize,
        max: usize,
    ) -> Option<String> {
        let path = format!("{base}.{key}");
        match obj.get(key) {
            None => None,
            Some(Value::Null) if nullable => None,
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min {
                    self.push(
                        &path,
                        "minLength",
                        format!("should NOT be shorter than {min} characters"),
                        json!({"limit": min}),
                    );
                    None
                } else if n > max {
                    self.push(
                        &path,
                        "maxLength",
                        format!("should NOT be longer than {max} characters"),
                        json!({"limit": max}),
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.type_err(&path, if nullable { "string,null" } else { "string" });
                None
            }
        }
    }

    /// An RFC 3339 date-time string (`format: date-time` in Katana's schema).
    pub fn date_time(
        &mut self,
        obj: &Map<String, Value>,
        base: &str,
        key: &str,
        nullable: bool,
    ) -> Option<DateTime<Utc>> {
        let s = self.string(obj, base, key, nullable, 0, usize::MAX)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.push(
                    &format!("{base}.{key}"),
                    "format",
                    "should match format \"date-time\"".into(),
                    json!({"format": "date-time"}),
                );
                None
            }
        }
    }

    pub fn enumeration(
        &mut self,
        obj: &Map<String, Value>,
        base: &str,
        key: &str,
        allowed: &[&str],
    ) -> Option<String> {
        let s = self.string(obj, base, key, false, 0, usize::MAX)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            self.push(
                &format!("{base}.{key}"),
                "enum",
                "should be equal to one of the allowed values".into(),
                json!({"allowedValues": allowed}),
            );
            None
        }
    }

    pub fn boolean(&mut self, obj: &Map<String, Value>, base: &str, key: &str) -> Option<bool> {
        match obj.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.type_err(&format!("{base}.{key}"), "boolean");
                None
            }
        }
    }

    /// A JSON number (Katana's DTOs type quantities and prices as `number`), at least `min`
    /// (exclusive when `exclusive`).
    pub fn number(
        &mut self,
        obj: &Map<String, Value>,
        base: &str,
        key: &str,
        min: Quantity,
        exclusive: bool,
    ) -> Option<Quantity> {
        let path = format!("{base}.{key}");
        match obj.get(key) {
            None => None,
            Some(Value::Number(n)) => match n.to_string().parse::<Quantity>() {
                Ok(q) if q < min || (exclusive && q == min) => {
                    let code = if exclusive {
                        "exclusiveMinimum"
                    } else {
                        "minimum"
                    };
                    let op = if exclusive { ">" } else { ">=" };
                    self.push(
                        &path,
                        code,
                        format!("should be {op} {min}"),
                        json!({"limit": min.to_string()}),
                    );
                    None
                }
                Ok(q) => Some(q),
                Err(_) => {
                    self.push(&path, "maximum", "number out of range".into(), json!({}));
                    None
                }
            },
            Some(_) => {
                self.type_err(&path, "number");
                None
            }
        }
    }

    pub fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        base: &str,
        key: &str,
        min_items: usize,
    ) -> Option<&'a Vec<Value>> {
        let path = format!("{base}.{key}");
        match obj.get(key) {
            None => None,
            Some(Value::Array(a)) if a.len() >= min_items => Some(a),
            Some(Value::Array(_)) => {
                self.push(
                    &path,
                    "minItems",
                    format!("should NOT have fewer than {min_items} items"),
                    json!({"limit": min_items}),
                );
                None
            }
            Some(_) => {
                self.type_err(&path, "array");
                None
            }
        }
    }
}
