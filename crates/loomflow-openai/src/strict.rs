//! OpenAI's strict structured-output mode accepts a subset of JSON Schema:
//! every object closed (`additionalProperties: false`) with every property
//! required (optional ones become nullable), no `oneOf` (use `anyOf`), no
//! `default`, and an object at the root. [`to_strict`] rewrites a schemars
//! schema into that subset.

use serde_json::{Map, Value};

/// Keywords strict mode rejects; dropped (validation on our side still
/// applies them).
const UNSUPPORTED: &[&str] = &[
    "default",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "patternProperties",
    "minProperties",
    "maxProperties",
    "$schema",
    "title",
];

/// Whether strict mode can take `schema` at all: the root must be an object
/// schema (a tagged union at the root goes the prompt path instead).
pub fn strict_compatible(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
        && schema.get("oneOf").is_none()
        && schema.get("anyOf").is_none()
}

/// The strict-mode form of `schema`.
///
/// ```
/// use serde_json::json;
/// let strict = loomflow_openai::strict::to_strict(&json!({
///     "type": "object",
///     "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 1}},
///     "required": ["city"]
/// }));
/// assert_eq!(strict, json!({
///     "type": "object",
///     "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
///     "required": ["city", "days"],
///     "additionalProperties": false
/// }));
/// ```
pub fn to_strict(schema: &Value) -> Value {
    let mut out = schema.clone();
    rewrite(&mut out);
    out
}

fn rewrite(node: &mut Value) {
    match node {
        Value::Object(obj) => {
            for k in UNSUPPORTED {
                obj.remove(*k);
            }
            if let Some(one_of) = obj.remove("oneOf") {
                obj.insert("anyOf".into(), one_of);
            }
            let is_object = obj.get("type").and_then(Value::as_str) == Some("object")
                || obj.contains_key("properties");
            if is_object {
                close_object(obj);
            }
            for (_, child) in obj.iter_mut() {
                rewrite(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite),
        _ => {}
    }
}

fn close_object(obj: &mut Map<String, Value>) {
    obj.insert("additionalProperties".into(), Value::Bool(false));
    let required: Vec<String> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(Value::Object(props)) = obj.get_mut("properties") else {
        obj.insert("properties".into(), Value::Object(Map::new()));
        obj.insert("required".into(), Value::Array(Vec::new()));
        return;
    };
    let mut all = Vec::with_capacity(props.len());
    for (name, prop) in props.iter_mut() {
        if !required.contains(name) {
            make_nullable(prop);
        }
        all.push(Value::String(name.clone()));
    }
    obj.insert("required".into(), Value::Array(all));
}

fn make_nullable(prop: &mut Value) {
    let Value::Object(p) = prop else { return };
    match p.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            p.insert("type".into(), Value::Array(vec![t.into(), "null".into()]));
        }
        Some(Value::Array(ts)) => {
            if !ts.iter().any(|t| t == "null") {
                ts.push("null".into());
            }
        }
        Some(_) => {}
        None => {
            // A `$ref` or a union: allow null alongside it.
            let inner = std::mem::take(p);
            let mut wrapped = Map::new();
            wrapped.insert(
                "anyOf".into(),
                Value::Array(vec![
                    Value::Object(inner),
                    serde_json::json!({"type": "null"}),
                ]),
            );
            *p = wrapped;
        }
    }
}
