//! Structured output on Claude: JSON outputs (`output_config.format`) on the
//! models that have them, in the JSON-Schema subset the API accepts; a
//! forced synthetic tool on the others.

use serde_json::{Map, Value};

/// Models with JSON outputs (`output_config.format`), by prefix.
const JSON_OUTPUT_MODELS: &[&str] = &[
    "claude-fable",
    "claude-mythos",
    "claude-opus-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-opus-4-5",
    "claude-sonnet-5",
    "claude-sonnet-4-6",
    "claude-sonnet-4-5",
    "claude-haiku-5",
    "claude-haiku-4-5",
];

/// Whether `model` (canonical name) constrains output to a JSON Schema.
pub(crate) fn has_json_outputs(model: &str) -> bool {
    JSON_OUTPUT_MODELS.iter().any(|p| model.starts_with(p))
}

/// Keywords JSON outputs reject; their values move into the description
/// (the agent still validates the answer against the full schema).
const UNSUPPORTED: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "patternProperties",
];

const FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "uri",
    "ipv4",
    "ipv6",
    "uuid",
];

/// The schema in the subset JSON outputs accept, or `None` when it cannot be
/// said there (recursive definitions, free-form maps).
///
/// ```
/// use serde_json::json;
/// let s = loomflow_anthropic::json_output_schema(&json!({
///     "type": "object",
///     "properties": {"n": {"type": "integer", "minimum": 1}},
///     "required": ["n"]
/// })).unwrap();
/// assert_eq!(s, json!({
///     "type": "object",
///     "properties": {"n": {"type": "integer", "description": "(minimum: 1)"}},
///     "required": ["n"],
///     "additionalProperties": false
/// }));
/// ```
pub fn json_output_schema(schema: &Value) -> Option<Value> {
    if is_recursive(schema) {
        return None;
    }
    subset(schema)
}

fn subset(node: &Value) -> Option<Value> {
    let obj = match node {
        Value::Array(items) => return items.iter().map(subset).collect::<Option<_>>(),
        Value::Object(obj) => obj,
        other => return Some(other.clone()),
    };
    let mut out = Map::new();
    let mut notes = Vec::new();
    for (key, value) in obj {
        match key.as_str() {
            k if UNSUPPORTED.contains(&k) => notes.push(format!("{k}: {value}")),
            "format" if !value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                notes.push(format!("format: {}", value.as_str().unwrap_or_default()));
            }
            "pattern" if value.as_str().is_some_and(unsupported_regex) => {
                notes.push(format!("pattern: {}", value.as_str().unwrap_or_default()));
            }
            "minItems" if value.as_u64().is_some_and(|n| n > 1) => {
                notes.push(format!("minItems: {value}"));
                out.insert("minItems".into(), Value::from(1));
            }
            "oneOf" => {
                out.insert("anyOf".into(), subset(value)?);
            }
            "allOf" if value.as_array().is_some_and(|a| a.len() == 1) => {
                // `allOf: [{"$ref": …}]` wrappers: the plain `$ref` is accepted.
                if let Some(Value::Object(inner)) = subset(&value[0]) {
                    out.extend(inner);
                }
            }
            "additionalProperties" => match value {
                Value::Bool(false) | Value::Null => {}
                Value::Object(o) if o.is_empty() => {}
                // A free-form map field cannot be said in JSON outputs.
                _ => return None,
            },
            "properties" | "$defs" | "definitions" => {
                let mut map = Map::new();
                for (name, sub) in value.as_object()? {
                    map.insert(name.clone(), subset(sub)?);
                }
                out.insert(key.clone(), Value::Object(map));
            }
            _ => {
                out.insert(key.clone(), subset(value)?);
            }
        }
    }
    if out.get("type").and_then(Value::as_str) == Some("object") || out.contains_key("properties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if !notes.is_empty() {
        let note = format!("({})", notes.join("; "));
        let description = match out.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d} {note}"),
            _ => note,
        };
        out.insert("description".into(), Value::String(description));
    }
    Some(Value::Object(out))
}

/// Lookarounds and backreferences are not supported in `pattern`.
fn unsupported_regex(pattern: &str) -> bool {
    ["(?=", "(?!", "(?<"].iter().any(|l| pattern.contains(l))
        || pattern
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'\\' && matches!(w[1], b'b' | b'B' | b'1'..=b'9'))
}

/// A definition that reaches itself through `$ref`s.
fn is_recursive(schema: &Value) -> bool {
    let mut defs: Vec<(&str, Vec<String>)> = Vec::new();
    for key in ["$defs", "definitions"] {
        if let Some(map) = schema.get(key).and_then(Value::as_object) {
            for (name, body) in map {
                let mut refs = Vec::new();
                collect_refs(body, &mut refs);
                defs.push((name, refs));
            }
        }
    }
    let edges = |name: &str| {
        defs.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r.as_slice())
            .unwrap_or_default()
    };
    defs.iter().any(|(start, _)| {
        let mut stack: Vec<&str> = edges(start).iter().map(String::as_str).collect();
        let mut seen: Vec<&str> = Vec::new();
        while let Some(next) = stack.pop() {
            if next == *start {
                return true;
            }
            if !seen.contains(&next) {
                seen.push(next);
                stack.extend(edges(next).iter().map(String::as_str));
            }
        }
        false
    })
}

fn collect_refs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(obj) => {
            if let Some(r) = obj.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/").and_then(|r| r.rsplit('/').next())
            {
                out.push(name.to_owned());
            }
            obj.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recursive_and_free_form_schemas_are_inexpressible() {
        let tree = json!({
            "type": "object",
            "properties": {"root": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}
        });
        assert_eq!(json_output_schema(&tree), None);
        let map = json!({"type": "object", "properties": {
            "tags": {"type": "object", "additionalProperties": {"type": "string"}}}});
        assert_eq!(json_output_schema(&map), None);
    }

    #[test]
    fn one_of_becomes_any_of_and_notes_keep_constraints() {
        let s = json_output_schema(&json!({
            "oneOf": [{"type": "string", "format": "color", "pattern": "^(?!x)"}],
            "minItems": 3
        }))
        .unwrap();
        assert_eq!(
            s,
            json!({
                "anyOf": [{"type": "string", "description": "(format: color; pattern: ^(?!x))"}],
                "minItems": 1,
                "description": "(minItems: 3)"
            })
        );
    }
}
