//! A workflow as a tool an Agent can call.

use async_trait::async_trait;
use loomflow_core::{Tool, ToolDef, ToolError};
use serde_json::{Value, json};

use crate::Workflow;

/// A [`Workflow`] exposed as a [`Tool`] with one string parameter (`input`
/// by default). The whole workflow runs as one tool call, in the calling
/// run's user, session and metadata, and goes through the agent's tool gate
/// like any other tool.
///
/// ```
/// use loomflow_workflow::{Step, Workflow};
/// use loomflow_core::Tool;
///
/// async fn shout(s: String) -> String { s.to_uppercase() }
/// let wf = Workflow::chain([Step::of(shout)]).name("shouter").build().unwrap();
/// let tool = wf.as_tool().description("Shouts the input.");
/// assert_eq!(tool.definition().name, "shouter");
/// assert_eq!(tool.definition().input_schema["required"][0], "input");
/// ```
#[derive(Debug, Clone)]
pub struct WorkflowTool {
    workflow: Workflow,
    def: ToolDef,
    input_arg: String,
}

impl Workflow {
    /// This workflow as a tool named after it.
    pub fn as_tool(&self) -> WorkflowTool {
        WorkflowTool {
            workflow: self.clone(),
            def: ToolDef {
                name: self.inner.name.clone(),
                description: format!("Run the '{}' workflow.", self.inner.name),
                input_schema: schema("input"),
                server: None,
                destructive: false,
                ends_turn: false,
            },
            input_arg: "input".into(),
        }
    }
}

fn schema(arg: &str) -> Value {
    json!({
        "type": "object",
        "properties": { arg: { "type": "string" } },
        "required": [arg],
    })
}

impl WorkflowTool {
    /// Renames the tool.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.def.name = name.into();
        self
    }

    /// Sets the description the model sees.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.def.description = description.into();
        self
    }

    /// Renames the string parameter.
    pub fn input_arg(mut self, arg: impl Into<String>) -> Self {
        self.input_arg = arg.into();
        self.def.input_schema = schema(&self.input_arg);
        self
    }

    /// Marks the tool destructive, so the permission gate asks first.
    pub fn destructive(mut self, destructive: bool) -> Self {
        self.def.destructive = destructive;
        self
    }
}

#[async_trait]
impl Tool for WorkflowTool {
    fn definition(&self) -> &ToolDef {
        &self.def
    }

    async fn call(&self, args: &Value) -> Result<Value, ToolError> {
        let input = match args.get(&self.input_arg) {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(other) => Value::String(other.to_string()),
            None => {
                return Err(ToolError::InvalidArguments {
                    tool: self.def.name.clone(),
                    message: format!("missing required string argument `{}`", self.input_arg),
                });
            }
        };
        let result = self
            .workflow
            .run_value(input)
            .in_live_context()
            .await
            .map_err(|e| ToolError::Failed {
                message: e.to_string(),
            })?;
        Ok(result.output)
    }
}
