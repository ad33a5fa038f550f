//! The graph as a diagram: Mermaid and Graphviz DOT.

use std::fmt::Write;

use crate::Workflow;
use crate::graph::Start;
use crate::router::Dest;

fn alias(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("n_{safe}")
}

fn escape(label: &str) -> String {
    label.replace('"', "#quot;")
}

/// An edge label, quoted when it holds characters Mermaid would parse.
fn edge_label(label: &str) -> String {
    if label
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' ' | ':' | '.'))
    {
        label.to_owned()
    } else {
        format!("\"{}\"", escape(label))
    }
}

impl Workflow {
    /// The graph as a Mermaid `flowchart TD`: solid arrows for edges,
    /// labelled arrows for routes, dotted arrows for router defaults,
    /// `START` and `END` as stadium shapes.
    ///
    /// ```
    /// use loomflow_workflow::{Step, Workflow};
    /// async fn a(x: i64) -> i64 { x }
    /// async fn b(x: i64) -> i64 { x }
    /// let wf = Workflow::chain([Step::of(a), Step::of(b)]).build().unwrap();
    /// assert_eq!(
    ///     wf.to_mermaid(),
    ///     "flowchart TD\n    n_a[\"a\"]\n    n_b[\"b\"]\n    START([START]) --> n_a\n    n_a --> n_b\n    n_b --> END([END])"
    /// );
    /// ```
    pub fn to_mermaid(&self) -> String {
        let graph = &self.inner.graph;
        let mut out = String::from("flowchart TD");
        if graph.names.is_empty() {
            out.push_str("\n    empty[\"(empty workflow)\"]");
            return out;
        }
        for name in &graph.names {
            let _ = write!(out, "\n    {}[\"{}\"]", alias(name), escape(name));
        }
        let target = |d: &str| {
            if d == "END" {
                "END([END])".to_owned()
            } else {
                alias(d)
            }
        };
        match &graph.start {
            Start::Node(n) => {
                let _ = write!(out, "\n    START([START]) --> {}", alias(&graph.names[*n]));
            }
            Start::Router { router, .. } => {
                for (key, dest) in &router.routes {
                    let _ = write!(
                        out,
                        "\n    START([START]) -->|{}| {}",
                        edge_label(key),
                        target(dest.label())
                    );
                }
                if let Some(d) = &router.default {
                    let _ = write!(
                        out,
                        "\n    START([START]) -.->|default| {}",
                        target(d.label())
                    );
                }
            }
        }
        for (src, label, dst, dashed) in &graph.drawn {
            let arrow = match (label, dashed) {
                (Some(l), true) => format!("-.->|{}|", edge_label(l)),
                (Some(l), false) => format!("-->|{}|", edge_label(l)),
                (None, _) => "-->".to_owned(),
            };
            let _ = write!(out, "\n    {} {arrow} {}", alias(src), target(dst));
        }
        out
    }

    /// The graph as a Graphviz DOT digraph (`dot -Tpng`), with START and END
    /// as ovals and router defaults dashed.
    pub fn to_dot(&self) -> String {
        let graph = &self.inner.graph;
        let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = format!("digraph \"{}\" {{\n    rankdir=TB;", q(&self.inner.name));
        if graph.names.is_empty() {
            out.push_str("\n    empty [label=\"(empty workflow)\"];\n}");
            return out;
        }
        for name in &graph.names {
            let _ = write!(out, "\n    \"{}\" [shape=box, style=rounded];", q(name));
        }
        out.push_str("\n    \"__start__\" [label=\"START\", shape=oval];");
        let node = |d: &str| {
            if d == "END" {
                "__end__".to_owned()
            } else {
                q(d)
            }
        };
        let mut end_seen = false;
        match &graph.start {
            Start::Node(n) => {
                let _ = write!(out, "\n    \"__start__\" -> \"{}\";", q(&graph.names[*n]));
            }
            Start::Router { router, .. } => {
                for (key, dest) in &router.routes {
                    end_seen |= *dest == Dest::End;
                    let _ = write!(
                        out,
                        "\n    \"__start__\" -> \"{}\" [label=\"{}\"];",
                        node(dest.label()),
                        q(key)
                    );
                }
                if let Some(d) = &router.default {
                    end_seen |= *d == Dest::End;
                    let _ = write!(
                        out,
                        "\n    \"__start__\" -> \"{}\" [label=\"default\", style=dashed];",
                        node(d.label())
                    );
                }
            }
        }
        for (src, label, dst, dashed) in &graph.drawn {
            end_seen |= dst == "END";
            let attrs = match (label, dashed) {
                (Some(l), true) => format!(" [label=\"{}\", style=dashed]", q(l)),
                (Some(l), false) => format!(" [label=\"{}\"]", q(l)),
                (None, _) => String::new(),
            };
            let _ = write!(out, "\n    \"{}\" -> \"{}\"{attrs};", q(src), node(dst));
        }
        if end_seen {
            out.push_str("\n    \"__end__\" [label=\"END\", shape=oval];");
        }
        out.push_str("\n}");
        out
    }
}
