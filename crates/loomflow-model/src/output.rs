//! Structured output: a JSON Schema the final answer must match.
//!
//! Build one with [`OutputSchema::of`] for any `T: DeserializeOwned +
//! JsonSchema`. A Rust enum gives a tagged union. When the model has native
//! structured output the schema goes to the provider; otherwise the system
//! prompt gets a directive, the answer is validated, and validation errors go
//! back to the model up to the retry limit.

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// The schema a run's final answer must satisfy, with its validator.
///
/// ```
/// use loomflow_model::OutputSchema;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Weather { city: String, temp_c: f64 }
///
/// let schema = OutputSchema::of::<Weather>();
/// assert_eq!(schema.name(), "Weather");
/// assert!(schema.validate("```json\n{\"city\": \"Oslo\", \"temp_c\": 3.5}\n```").is_ok());
/// let err = schema.validate("{\"city\": \"Oslo\"}").unwrap_err();
/// assert!(err.contains("missing field `temp_c`"), "{err}");
/// ```
#[derive(Clone)]
pub struct OutputSchema {
    name: Arc<str>,
    schema: Arc<serde_json::Value>,
    check: fn(&serde_json::Value) -> Result<(), String>,
}

fn check_as<T: DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

impl OutputSchema {
    /// The schema of `T`, validated by deserialising into `T`.
    pub fn of<T: DeserializeOwned + JsonSchema>() -> Self {
        let mut schema = serde_json::to_value(schemars::schema_for!(T))
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$schema");
        }
        Self {
            name: Arc::from(T::schema_name().as_ref()),
            schema: Arc::new(schema),
            check: check_as::<T>,
        }
    }

    /// The schema's name (the Rust type's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as providers accept it for a response format (`[A-Za-z0-9_-]`,
    /// at most 64 characters, `"output"` when nothing is left).
    ///
    /// ```
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Weather { c: f64 }
    /// assert_eq!(loomflow_model::OutputSchema::of::<Weather>().wire_name(), "Weather");
    /// assert_eq!(loomflow_model::OutputSchema::of::<Vec<u8>>().wire_name(), "Array_of_uint8");
    /// ```
    pub fn wire_name(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if name.is_empty() {
            "output".into()
        } else {
            name
        }
    }

    /// The JSON Schema.
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }

    /// The JSON Schema, shared (a reference count, not a copy).
    pub fn shared_schema(&self) -> Arc<serde_json::Value> {
        Arc::clone(&self.schema)
    }

    /// Parses and validates a model's answer, tolerating code fences around
    /// the JSON. Returns the JSON value, or a message saying what was wrong.
    pub fn validate(&self, raw: &str) -> Result<serde_json::Value, String> {
        let text = strip_json_fences(raw);
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        (self.check)(&value)?;
        Ok(value)
    }

    /// The system-prompt block that asks for JSON matching the schema.
    pub fn directive(&self) -> String {
        let schema =
            serde_json::to_string_pretty(&*self.schema).unwrap_or_else(|_| self.schema.to_string());
        format!(
            "\n\n---\n**STRUCTURED OUTPUT REQUIRED.**\nYour final answer must be a single valid JSON object that conforms\nexactly to this JSON Schema:\n\n```json\n{schema}\n```\n\nReturn ONLY the JSON object — no surrounding prose, no markdown\nfences, no explanation. The receiver will validate your response\nand reject any extra text."
        )
    }

    /// The user message that asks for a corrected answer after `error`.
    pub fn retry_prompt(&self, error: &str) -> String {
        format!(
            "Your previous response failed schema validation:\n- {error}\n\nReturn a corrected response — ONLY a single valid JSON object that matches this schema, with no prose, no markdown fences, no explanation:\n{}",
            self.schema
        )
    }
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSchema")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Strips a Markdown code fence (with or without a language tag) around JSON.
///
/// ```
/// use loomflow_model::output::strip_json_fences;
/// assert_eq!(strip_json_fences("```json\n{\"a\":1}\n```"), "{\"a\":1}");
/// assert_eq!(strip_json_fences("  {\"a\":1} "), "{\"a\":1}");
/// ```
pub fn strip_json_fences(text: &str) -> &str {
    let stripped = text.trim();
    let Some(after_open) = stripped.strip_prefix("```") else {
        return stripped;
    };
    let Some(newline) = after_open.find('\n') else {
        return stripped;
    };
    let body = &after_open[newline + 1..];
    body.strip_suffix("```").unwrap_or(body).trim()
}
