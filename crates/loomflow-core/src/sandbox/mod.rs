//! Sandboxes: tool hosts that wrap other tool hosts and refuse what their
//! tools must not touch.
//!
//! [`FilesystemSandbox`] confines path arguments to allowed roots. It finds
//! path-like arguments by name (`path`, `file`, `*_dir`, …, or the names you
//! give) and by value (anything with a `/` or `\`, `~`, `file://`), in
//! nested objects and arrays too; resolves `~`, `file://` URLs,
//! percent-escapes, relative paths (against the first root) and every
//! symlink on the way; and refuses a call when any path lands outside the
//! roots, or cannot be decided (a NUL byte, `~otheruser`, look-alike
//! characters that normalise to `.` or `/`, invisible direction or
//! zero-width characters, a symlink loop). An allowed call reaches the tool
//! with its paths rewritten to the resolved absolute paths, so a symlink
//! swapped after the check cannot redirect it.
//!
//! **What it does not do**: it checks arguments, not what the tool's code
//! opens. A tool that builds paths of its own, or a hostile process that
//! swaps a *directory* inside a root for a symlink between the check and
//! the open, is outside what argument checking can see: run such tools
//! under the OS sandbox, which the kernel enforces on every open.
//!
//! [`ProcessSandbox`] is that OS sandbox for subprocesses: bubblewrap
//! namespaces or Landlock rules, a minimal environment, no network unless
//! allowed, a timeout; [`SandboxedShell`] is a shell tool over it. Every
//! output reports the [`Isolation`] it actually ran under.
//!
//! ```
//! use loomflow_core::sandbox::FilesystemSandbox;
//! use loomflow_core::{InProcessToolHost, ToolHost};
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let root = std::env::temp_dir().join(format!("sandbox-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&root).unwrap();
//! let sandbox = FilesystemSandbox::new(InProcessToolHost::default(), [&root]).unwrap();
//! let err = sandbox
//!     .call("read_file", &json!({"path": "../../etc/passwd"}), "c1")
//!     .await
//!     .unwrap_err();
//! assert!(err.to_string().contains("outside the allowed roots"), "{err}");
//! # std::fs::remove_dir_all(&root).unwrap();
//! # });
//! ```

mod path;
mod process;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{ConfigError, ToolError};
use crate::message::ToolDef;
use crate::tool::ToolHost;

pub use path::{PathVerdict, resolve_within};
pub use process::{
    Backend, Isolation, Mechanism, NetworkIsolation, ProcessOutput, ProcessSandbox, SandboxError,
    SandboxedShell,
};

/// A tool host whose tools may only touch paths under its roots.
pub struct FilesystemSandbox<H> {
    inner: H,
    roots: Arc<[PathBuf]>,
    path_args: HashSet<String>,
    auto_detect: bool,
    base: PathBuf,
}

impl<H> std::fmt::Debug for FilesystemSandbox<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesystemSandbox")
            .field("roots", &self.roots)
            .field("path_args", &self.path_args)
            .field("auto_detect", &self.auto_detect)
            .finish_non_exhaustive()
    }
}

impl<H: ToolHost> FilesystemSandbox<H> {
    /// Confines `inner`'s tools to `roots` (which must exist; they are
    /// resolved once, symlinks included). Relative paths resolve against
    /// the first root.
    pub fn new<P: AsRef<Path>>(
        inner: H,
        roots: impl IntoIterator<Item = P>,
    ) -> Result<Self, ConfigError> {
        let mut resolved = Vec::new();
        for root in roots {
            let root = root.as_ref();
            let canonical = std::fs::canonicalize(root).map_err(|e| {
                ConfigError::invalid(
                    "sandbox roots",
                    format!(
                        "{}: {e}; a root must be an existing directory",
                        root.display()
                    ),
                )
            })?;
            if !canonical.is_dir() {
                return Err(ConfigError::invalid(
                    "sandbox roots",
                    format!("{} is not a directory", root.display()),
                ));
            }
            resolved.push(canonical);
        }
        let Some(base) = resolved.first().cloned() else {
            return Err(ConfigError::invalid(
                "sandbox roots",
                "give at least one root directory",
            ));
        };
        Ok(Self {
            inner,
            roots: resolved.into(),
            path_args: HashSet::new(),
            auto_detect: true,
            base,
        })
    }

    /// Also treats arguments with these names as paths, whatever their
    /// value looks like.
    pub fn path_args<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.path_args.extend(names.into_iter().map(Into::into));
        self
    }

    /// Turns off detection by name and value: only [`path_args`](Self::path_args)
    /// are checked.
    pub fn explicit_only(mut self) -> Self {
        self.auto_detect = false;
        self
    }

    /// Resolves relative paths against `base` (which must lie under a root)
    /// instead of the first root.
    pub fn base(mut self, base: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let base = std::fs::canonicalize(base.as_ref()).map_err(|e| {
            ConfigError::invalid("sandbox base", format!("{}: {e}", base.as_ref().display()))
        })?;
        if !self.roots.iter().any(|r| base.starts_with(r)) {
            return Err(ConfigError::invalid(
                "sandbox base",
                format!("{} is not under any root", base.display()),
            ));
        }
        self.base = base;
        Ok(self)
    }

    /// The resolved roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Checks `args` and returns them with every path rewritten to its
    /// resolved absolute form, or the first refusal.
    pub fn check(&self, args: &Value) -> Result<Value, String> {
        let mut out = args.clone();
        self.visit(&mut out, None, false)?;
        Ok(out)
    }

    fn visit(&self, value: &mut Value, key: Option<&str>, by_name: bool) -> Result<(), String> {
        match value {
            Value::String(s) => {
                let named = by_name || key.is_some_and(|k| self.is_path_name(k));
                if named {
                    // A path argument: checked whole, and handed on resolved.
                    let resolved = self.judge(s, key)?;
                    *s = resolved.to_string_lossy().into_owned();
                } else if self.auto_detect && path::looks_like_path(s) {
                    // Text that mentions paths (`cat ../x`, a note): every
                    // path-like word is checked; the text goes on unchanged.
                    for word in s.split_whitespace() {
                        let word = word.trim_matches(|c: char| {
                            matches!(
                                c,
                                '"' | '\'' | '`' | ',' | ';' | '(' | ')' | '<' | '>' | '='
                            )
                        });
                        if path::looks_like_path(word) {
                            self.judge(word, key)?;
                        }
                    }
                }
                Ok(())
            }
            Value::Array(items) => {
                let named = by_name || key.is_some_and(|k| self.is_path_name(k));
                for item in items {
                    self.visit(item, key, named)?;
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.visit(v, Some(k), false)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Resolves one path, or says why it is refused.
    fn judge(&self, raw: &str, key: Option<&str>) -> Result<PathBuf, String> {
        let arg = key
            .map(|k| format!(" (argument `{k}`)"))
            .unwrap_or_default();
        match resolve_within(raw, &self.base, &self.roots) {
            PathVerdict::Inside(p) => Ok(p),
            PathVerdict::Outside(p) => Err(format!(
                "`{raw}`{arg} resolves to {}, outside the allowed roots ({})",
                p.display(),
                self.roots_list()
            )),
            PathVerdict::Undecidable(why) => Err(format!(
                "`{}`{arg}: {why}; refused because it cannot be checked",
                raw.escape_debug()
            )),
        }
    }

    fn is_path_name(&self, key: &str) -> bool {
        self.path_args.contains(key) || (self.auto_detect && path::is_path_like_name(key))
    }

    fn roots_list(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[async_trait]
impl<H: ToolHost> ToolHost for FilesystemSandbox<H> {
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError> {
        self.inner.list_tools().await
    }

    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        self.inner.tools_at_hand()
    }

    async fn call(&self, name: &str, args: &Value, call_id: &str) -> Result<Value, ToolError> {
        let checked = self.check(args).map_err(|reason| ToolError::Refused {
            tool: name.to_owned(),
            reason,
        })?;
        self.inner.call(name, &checked, call_id).await
    }
}
