//! Argument handling shared by every tool: schemas from Rust types, lenient
//! coercion of what models send, and errors that name the offending field.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ToolError;

/// The JSON Schema of an arguments struct, as sent to the model: `$schema`
/// and `title` removed, and an object schema guaranteed.
pub fn tool_schema<T: JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T))
        .unwrap_or_else(|_| Value::Object(Default::default()));
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
        obj.entry("type").or_insert_with(|| Value::from("object"));
        obj.entry("properties")
            .or_insert_with(|| Value::Object(Default::default()));
    }
    schema
}

/// `object[key]`, found by a scan for the few keys schemas and arguments
/// have (no hashing: `serde_json` maps keep their order, and an ordered
/// map's lookup hashes the key).
fn entry<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    if object.len() <= 8 {
        object.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    } else {
        object.get(key)
    }
}

/// `value[key]` when `value` is an object.
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_object().and_then(|object| entry(object, key))
}

/// Whether `schema` admits JSON type `ty` (`"type": "integer"` or
/// `"type": ["integer", "null"]`).
fn admits(schema: &Value, ty: &str) -> bool {
    match field(schema, "type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(ty)),
        _ => false,
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match field(schema, "$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|ptr| root.pointer(ptr))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The value a string argument stands for when the parameter is not a
/// string, or `None` when it should be left as it is.
fn coerced(root: &Value, schema: &Value, value: &Value) -> Option<Value> {
    let Value::String(s) = value else {
        return None;
    };
    let schema = resolve(root, schema);
    if admits(schema, "string") {
        return None;
    }
    let trimmed = s.trim();
    if admits(schema, "integer") {
        if let Ok(i) = trimmed.parse::<i64>() {
            return Some(Value::from(i));
        }
        if let Ok(f) = trimmed.parse::<f64>()
            && f.fract() == 0.0
            && f.abs() < 9.0e15
        {
            return Some(Value::from(f as i64));
        }
    }
    if admits(schema, "number")
        && let Ok(f) = trimmed.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Some(Value::Number(n));
    }
    if admits(schema, "boolean") {
        return match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(Value::Bool(true)),
            "false" | "0" | "no" | "" => Some(Value::Bool(false)),
            _ => None,
        };
    }
    if admits(schema, "object") || admits(schema, "array") {
        return serde_json::from_str::<Value>(trimmed)
            .ok()
            .filter(|parsed| parsed.is_object() || parsed.is_array());
    }
    None
}

/// Coerces the fields of an argument object in place.
fn coerce_fields(schema: &Value, args: &mut Value) {
    if let (Some(props), Some(obj)) = (
        field(schema, "properties").and_then(Value::as_object),
        args.as_object_mut(),
    ) {
        for (name, value) in obj.iter_mut() {
            if let Some(new) = entry(props, name).and_then(|p| coerced(schema, p, value)) {
                *value = new;
            }
        }
    }
}

/// Applies the lenient coercions models need: a JSON-string argument object is
/// parsed, `"8"` becomes `8` for an integer parameter, `"true"`/`"yes"`/`"1"`
/// become booleans, and a JSON string holding an object or array is parsed for
/// a structured parameter. `null` arguments become `{}`.
///
/// Arguments that need no coercion (the common case) are borrowed, not copied.
///
/// ```
/// use loomflow_core::tool::coerce_args;
/// use serde_json::json;
///
/// let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
/// assert_eq!(*coerce_args(&schema, &json!({"n": "8"})), json!({"n": 8}));
/// assert!(matches!(coerce_args(&schema, &json!({"n": 8})), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn coerce_args<'a>(schema: &Value, args: &'a Value) -> Cow<'a, Value> {
    match args {
        Value::Null => Cow::Owned(Value::Object(Default::default())),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(mut parsed @ Value::Object(_)) => {
                coerce_fields(schema, &mut parsed);
                Cow::Owned(parsed)
            }
            _ => Cow::Borrowed(args),
        },
        Value::Object(obj) => {
            // Only strings are ever coerced: arguments without one need no
            // look at the schema.
            let needs = obj.values().any(Value::is_string)
                && field(schema, "properties")
                    .and_then(Value::as_object)
                    .is_some_and(|props| {
                        obj.iter().any(|(name, value)| {
                            entry(props, name).is_some_and(|p| coerced(schema, p, value).is_some())
                        })
                    });
            if needs {
                let mut owned = args.clone();
                coerce_fields(schema, &mut owned);
                Cow::Owned(owned)
            } else {
                Cow::Borrowed(args)
            }
        }
        _ => Cow::Borrowed(args),
    }
}

/// Coerces and deserialises a tool's arguments. The error names the tool and
/// the field, so the model can correct its call.
pub fn parse_args<T: DeserializeOwned>(
    tool: &str,
    schema: &Value,
    args: &Value,
) -> Result<T, ToolError> {
    let args = coerce_args(schema, args);
    if !args.is_object() {
        return Err(ToolError::InvalidArguments {
            tool: tool.to_owned(),
            message: format!("expected a JSON object of named arguments, got {args}"),
        });
    }
    // The plain deserialiser first: tracking the path allocates on every
    // field, and is only needed to word an error.
    if let Ok(parsed) = T::deserialize(&*args) {
        return Ok(parsed);
    }
    serde_path_to_error::deserialize(&*args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message =
            if path == "." || path.is_empty() || inner.to_string().starts_with("unknown field") {
                inner.to_string()
            } else {
                format!("`{path}`: {inner}")
            };
        ToolError::InvalidArguments {
            tool: tool.to_owned(),
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, schemars::JsonSchema, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Args {
        count: i64,
        ratio: Option<f64>,
        flag: Option<bool>,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn lenient_coercions() {
        let schema = tool_schema::<Args>();
        let parsed: Args = parse_args(
            "t",
            &schema,
            &json!({"count": "8", "ratio": "0.5", "flag": "yes", "tags": "[\"a\"]"}),
        )
        .unwrap();
        assert_eq!(
            parsed,
            Args {
                count: 8,
                ratio: Some(0.5),
                flag: Some(true),
                tags: Some(vec!["a".into()])
            }
        );
        let parsed: Args = parse_args("t", &schema, &json!("{\"count\": \"8.0\"}")).unwrap();
        assert_eq!(parsed.count, 8);
    }

    #[test]
    fn errors_name_the_field() {
        let schema = tool_schema::<Args>();
        let err = parse_args::<Args>("t", &schema, &json!({"count": "eight"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid arguments for tool `t`: `count`: invalid type: string \"eight\", expected i64"
        );
        let err = parse_args::<Args>("t", &schema, &json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid arguments for tool `t`: missing field `count`"
        );
        let err = parse_args::<Args>("t", &schema, &json!({"count": 1, "bogus": 2})).unwrap_err();
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
    }
}
