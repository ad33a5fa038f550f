//! [`ProcessSandbox`]: runs subprocesses (shell commands, interpreters)
//! under kernel-enforced isolation, and [`SandboxedShell`], a tool that
//! runs the model's commands through it.
//!
//! Two mechanisms, picked in this order unless one is required:
//!
//! - **bubblewrap** (`bwrap` on `PATH`): the command runs in fresh mount,
//!   pid, ipc and uts namespaces (and a network namespace with nothing in
//!   it unless the network is allowed), where only the system directories
//!   (read-only), the granted paths and a private `/tmp` exist.
//! - **Landlock** (Linux 5.13+): the kernel refuses the command every file
//!   access outside the granted paths (system directories read-only), and
//!   TCP `bind`/`connect` unless the network is allowed (Linux 6.7+).
//!   Landlock does not govern UDP or Unix sockets: the report says
//!   `TcpOnly`.
//!
//! Either way the command starts with a minimal environment (`PATH`,
//! `HOME`, `LANG` and what [`env`](ProcessSandbox::env) adds; nothing
//! inherited), in its own process group, and is killed with its children
//! when it outlasts the timeout. With neither mechanism available a run is
//! refused, unless [`Backend::Unsandboxed`] was chosen explicitly; every
//! output says which [`Isolation`] it actually ran under.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{ConfigError, ToolError};
use crate::message::ToolDef;
use crate::tool::Tool;

/// Which mechanism a [`ProcessSandbox`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// bubblewrap when it works here, else Landlock when the kernel
    /// enforces it, else refuse to run.
    #[default]
    Auto,
    /// bubblewrap or refuse.
    Bubblewrap,
    /// Landlock or refuse.
    Landlock,
    /// No isolation: the command runs with this process's rights (still
    /// with the minimal environment and the timeout). Only when chosen.
    Unsandboxed,
}

/// The mechanism a command actually ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mechanism {
    /// bubblewrap namespaces.
    Bubblewrap,
    /// Landlock rules.
    Landlock,
    /// Nothing.
    None,
}

/// How much of the network a command could reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NetworkIsolation {
    /// No network at all (an empty network namespace).
    Blocked,
    /// TCP `bind` and `connect` refused; UDP and Unix sockets not governed.
    TcpOnly,
    /// The network is open (allowed, or not enforceable here).
    Open,
}

/// What isolation a command ran under (or would run under): the honest
/// answer, from what the kernel reported, never from what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Isolation {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// True when only the granted paths (and read-only system directories)
    /// were reachable.
    pub filesystem: bool,
    /// The network the command could reach.
    pub network: NetworkIsolation,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mechanism = match self.mechanism {
            Mechanism::Bubblewrap => "bubblewrap",
            Mechanism::Landlock => "landlock",
            Mechanism::None => "none",
        };
        let network = match self.network {
            NetworkIsolation::Blocked => "blocked",
            NetworkIsolation::TcpOnly => "tcp blocked, udp and unix sockets open",
            NetworkIsolation::Open => "open",
        };
        write!(
            f,
            "{mechanism} (filesystem {}, network {network})",
            if self.filesystem { "confined" } else { "open" }
        )
    }
}

/// What went wrong running a sandboxed command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The isolation asked for is not available on this machine.
    #[error("no {wanted} isolation here: {reason}")]
    Unavailable {
        /// What was asked for.
        wanted: &'static str,
        /// Why it is missing, and what to do.
        reason: String,
    },
    /// The command could not be started.
    #[error("cannot start `{program}`: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// The command outlasted the timeout and was killed with its children.
    #[error("`{program}` killed after {:.1}s (the sandbox's timeout)", .after.as_secs_f64())]
    Timeout {
        /// The program.
        program: String,
        /// The timeout.
        after: Duration,
    },
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessOutput {
    /// The exit code (`None` when a signal ended it).
    pub exit_code: Option<i32>,
    /// Standard output (lossy UTF-8), cut at the output cap.
    pub stdout: String,
    /// Standard error (lossy UTF-8), cut at the output cap.
    pub stderr: String,
    /// True when either stream was cut.
    pub truncated: bool,
    /// What it ran under.
    pub isolation: Isolation,
}

/// Read-only system directories and files every command may need.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
const SYSTEM_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
];
/// Device files a command may read and write.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"];

/// Runs subprocesses under kernel-enforced isolation (see the module docs).
///
/// ```no_run
/// use loomflow_core::sandbox::{Mechanism, ProcessSandbox};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = ProcessSandbox::new()
///     .writable("/srv/workspace")?
///     .current_dir("/srv/workspace")?;
/// let out = sandbox.run("sh", ["-c", "ls -la && cat /etc/shadow"]).await?;
/// assert_ne!(out.exit_code, Some(0));
/// assert_ne!(out.isolation.mechanism, Mechanism::None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessSandbox {
    backend: Backend,
    writable: Vec<PathBuf>,
    readable: Vec<PathBuf>,
    network: bool,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    max_output: usize,
}

impl Default for ProcessSandbox {
    fn default() -> Self {
        Self::new()
    }
}

fn existing(what: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    path.canonicalize().map_err(|e| {
        ConfigError::invalid(
            format!("sandbox.{what}"),
            format!("`{}`: {e}; grant a directory that exists", path.display()),
        )
    })
}

impl ProcessSandbox {
    /// No granted paths, no network, a 30 s timeout, 1 MiB of output per
    /// stream, [`Backend::Auto`].
    pub fn new() -> Self {
        Self {
            backend: Backend::Auto,
            writable: Vec::new(),
            readable: Vec::new(),
            network: false,
            env: Vec::new(),
            cwd: None,
            timeout: Duration::from_secs(30),
            max_output: 1 << 20,
        }
    }

    /// Grants read and write access under `path` (resolved now: a symlink
    /// swapped later does not move the grant).
    pub fn writable(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        self.writable.push(existing("writable", path.as_ref())?);
        Ok(self)
    }

    /// Grants read access under `path`.
    pub fn readable(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        self.readable.push(existing("readable", path.as_ref())?);
        Ok(self)
    }

    /// Lets the command reach the network (default: no).
    pub fn allow_network(mut self, allow: bool) -> Self {
        self.network = allow;
        self
    }

    /// Adds an environment variable (the rest of the environment is not
    /// inherited).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs commands in `dir`, which must be granted.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let dir = existing("current_dir", dir.as_ref())?;
        if !self.grants(&dir) {
            return Err(ConfigError::invalid(
                "sandbox.current_dir",
                format!(
                    "`{}` is not under a granted path; grant it with writable() or readable() first",
                    dir.display()
                ),
            ));
        }
        self.cwd = Some(dir);
        Ok(self)
    }

    /// Kills a command (and its children) after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps at most `bytes` of each output stream.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Chooses the mechanism.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    fn grants(&self, path: &Path) -> bool {
        self.writable
            .iter()
            .chain(&self.readable)
            .any(|root| path.starts_with(root))
    }

    /// The isolation a command would run under here, or why it cannot run.
    pub fn isolation(&self) -> Result<Isolation, SandboxError> {
        match self.backend {
            Backend::Unsandboxed => Ok(self.unsandboxed()),
            Backend::Bubblewrap => self.bubblewrap_isolation(),
            Backend::Landlock => self.landlock_isolation(),
            Backend::Auto => self.bubblewrap_isolation().or_else(|bwrap| {
                self.landlock_isolation()
                    .map_err(|landlock| SandboxError::Unavailable {
                        wanted: "process",
                        reason: format!(
                            "{bwrap}; {landlock}. Install bubblewrap (apt-get install bubblewrap) \
                             or run on Linux 5.13+ with Landlock enabled, or choose \
                             Backend::Unsandboxed knowingly"
                        ),
                    })
            }),
        }
    }

    fn unsandboxed(&self) -> Isolation {
        Isolation {
            mechanism: Mechanism::None,
            filesystem: false,
            network: NetworkIsolation::Open,
        }
    }

    fn bubblewrap_isolation(&self) -> Result<Isolation, SandboxError> {
        match bubblewrap() {
            Some(_) => Ok(Isolation {
                mechanism: Mechanism::Bubblewrap,
                filesystem: true,
                network: if self.network {
                    NetworkIsolation::Open
                } else {
                    NetworkIsolation::Blocked
                },
            }),
            None => Err(SandboxError::Unavailable {
                wanted: "bubblewrap",
                reason: "`bwrap` is not on PATH or cannot create namespaces here".into(),
            }),
        }
    }

    fn landlock_isolation(&self) -> Result<Isolation, SandboxError> {
        let support = landlock_support();
        if !support.filesystem {
            return Err(SandboxError::Unavailable {
                wanted: "landlock",
                reason: "the kernel does not enforce Landlock (Linux 5.13+ with `landlock` in the \
                         `lsm=` boot list)"
                    .into(),
            });
        }
        Ok(Isolation {
            mechanism: Mechanism::Landlock,
            filesystem: true,
            network: match (self.network, support.tcp) {
                (true, _) | (false, false) => NetworkIsolation::Open,
                (false, true) => NetworkIsolation::TcpOnly,
            },
        })
    }

    /// Runs `program` with `args` in the sandbox, waiting for it to exit
    /// (or killing it at the timeout).
    pub async fn run<I, S>(&self, program: &str, args: I) -> Result<ProcessOutput, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let isolation = self.isolation()?;
        let spawn_error = |e: std::io::Error| SandboxError::Spawn {
            program: program.to_owned(),
            message: e.to_string(),
        };
        let mut command = match isolation.mechanism {
            Mechanism::Bubblewrap => {
                let mut c = tokio::process::Command::new(bubblewrap().unwrap_or("bwrap"));
                c.args(self.bubblewrap_args(program, &args));
                c
            }
            _ => {
                let mut c = tokio::process::Command::new(program);
                c.args(&args);
                if let Some(dir) = &self.cwd {
                    c.current_dir(dir);
                }
                c
            }
        };
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env(
                "HOME",
                self.cwd
                    .as_deref()
                    .or(self.writable.first().map(PathBuf::as_path))
                    .unwrap_or(Path::new("/")),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match isolation.mechanism {
            Mechanism::Landlock => self.spawn_landlocked(command).await?,
            _ => command.spawn().map_err(spawn_error)?,
        };
        let pid = child.id();
        let cap = self.max_output;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let collect = async {
            let (out, err) = tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap));
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = match tokio::time::timeout(self.timeout, collect).await {
            Ok(done) => done,
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                return Err(SandboxError::Timeout {
                    program: program.to_owned(),
                    after: self.timeout,
                });
            }
        };
        let status = status.map_err(spawn_error)?;
        Ok(ProcessOutput {
            exit_code: status.code(),
            truncated: out.1 || err.1,
            stdout: String::from_utf8_lossy(&out.0).into_owned(),
            stderr: String::from_utf8_lossy(&err.0).into_owned(),
            isolation,
        })
    }

    fn bubblewrap_args(&self, program: &str, args: &[String]) -> Vec<String> {
        let mut a: Vec<String> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-user-try",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        .map(String::from)
        .to_vec();
        if !self.network {
            a.push("--unshare-net".into());
        }
        let mut push = |words: &[&str]| a.extend(words.iter().map(|w| (*w).to_owned()));
        for dir in SYSTEM_DIRS {
            match std::fs::read_link(dir) {
                // Merged /usr: keep the link, so /bin resolves as outside.
                Ok(target) => push(&["--symlink", &target.to_string_lossy(), dir]),
                Err(_) => push(&["--ro-bind-try", dir, dir]),
            }
        }
        for file in SYSTEM_FILES {
            push(&["--ro-bind-try", file, file]);
        }
        push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        for path in &self.readable {
            let p = path.to_string_lossy();
            push(&["--ro-bind", &p, &p]);
        }
        for path in &self.writable {
            let p = path.to_string_lossy();
            push(&["--bind", &p, &p]);
        }
        if let Some(dir) = &self.cwd {
            push(&["--chdir", &dir.to_string_lossy()]);
        }
        push(&["--", program]);
        a.extend(args.iter().cloned());
        a
    }

    /// Spawns `command` from a short-lived thread that first restricts
    /// itself with Landlock: the child inherits the thread's restrictions,
    /// and nothing else in this process is restricted.
    async fn spawn_landlocked(
        &self,
        mut command: tokio::process::Command,
    ) -> Result<tokio::process::Child, SandboxError> {
        let rules = LandlockRules {
            writable: self.writable.clone(),
            readable: self.readable.clone(),
            network: self.network,
        };
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let program = format!("{:?}", command.as_std().get_program());
        std::thread::Builder::new()
            .name("loomflow-landlock".into())
            .spawn(move || {
                let _enter = runtime.enter();
                let spawned = match rules.restrict_this_thread() {
                    Ok(()) => command.spawn().map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                let _ = tx.send(spawned);
            })
            .map_err(|e| SandboxError::Spawn {
                program: program.clone(),
                message: e.to_string(),
            })?;
        match rx.await {
            Ok(Ok(child)) => Ok(child),
            Ok(Err(message)) => Err(SandboxError::Spawn { program, message }),
            Err(_) => Err(SandboxError::Spawn {
                program,
                message: "the spawning thread ended without an answer".into(),
            }),
        }
    }
}

/// Reads `stream` to its end, keeping the first `cap` bytes.
async fn read_capped(stream: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}

/// `bwrap`'s path when it is installed and can build a sandbox here (a
/// container may forbid the namespaces it needs), checked once.
fn bubblewrap() -> Option<&'static str> {
    static FOUND: OnceLock<Option<&'static str>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let path = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let works = std::process::Command::new(path)
            .args([
                "--unshare-user-try",
                "--unshare-pid",
                "--unshare-net",
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--",
                "/bin/sh",
                "-c",
                "exit 0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        works.then_some(path)
    })
}

/// What the kernel enforces of Landlock, checked once.
#[derive(Debug, Clone, Copy)]
struct LandlockSupport {
    filesystem: bool,
    tcp: bool,
}

struct LandlockRules {
    writable: Vec<PathBuf>,
    readable: Vec<PathBuf>,
    network: bool,
}

#[cfg(target_os = "linux")]
mod landlock_impl {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
    };

    use super::{DEVICES, LandlockRules, LandlockSupport, SYSTEM_DIRS, SYSTEM_FILES};

    /// The newest ABI whose rights we ask for; older kernels enforce what
    /// they know (best effort) and the status says how much.
    const ABI_WANTED: ABI = ABI::V6;

    impl LandlockRules {
        /// Restricts the calling thread (and the children it spawns).
        pub(super) fn restrict_this_thread(&self) -> Result<(), String> {
            let status = self.apply().map_err(|e| format!("landlock: {e}"))?;
            match status {
                RulesetStatus::NotEnforced => Err(
                    "landlock: the kernel enforced none of the rules; the command was not run"
                        .into(),
                ),
                _ => Ok(()),
            }
        }

        fn apply(&self) -> Result<RulesetStatus, landlock::RulesetError> {
            let read = AccessFs::from_read(ABI_WANTED);
            let all = AccessFs::from_all(ABI_WANTED);
            let mut ruleset = Ruleset::default()
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(all)?
                .scope(Scope::AbstractUnixSocket | Scope::Signal)?;
            if !self.network {
                ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
            }
            let created = ruleset
                .create()?
                .add_rules(path_beneath_rules(SYSTEM_DIRS, read))?
                .add_rules(path_beneath_rules(SYSTEM_FILES, read))?
                .add_rules(path_beneath_rules(
                    DEVICES,
                    AccessFs::ReadFile | AccessFs::WriteFile,
                ))?
                .add_rules(path_beneath_rules(&self.readable, read))?
                .add_rules(path_beneath_rules(&self.writable, all))?;
            Ok(created.restrict_self()?.ruleset)
        }
    }

    /// Restricts a throwaway thread with every rule and reads the status.
    pub(super) fn probe() -> LandlockSupport {
        let probe = std::thread::spawn(|| {
            let fs = LandlockRules {
                writable: Vec::new(),
                readable: Vec::new(),
                network: true,
            }
            .apply();
            let tcp = Ruleset::default()
                .set_compatibility(CompatLevel::HardRequirement)
                .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
                .and_then(|r| r.create())
                .is_ok();
            (fs, tcp)
        });
        match probe.join() {
            Ok((Ok(status), tcp)) => LandlockSupport {
                filesystem: status != RulesetStatus::NotEnforced,
                tcp,
            },
            _ => LandlockSupport {
                filesystem: false,
                tcp: false,
            },
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod landlock_impl {
    use super::{LandlockRules, LandlockSupport};

    impl LandlockRules {
        pub(super) fn restrict_this_thread(&self) -> Result<(), String> {
            Err("Landlock exists on Linux only".into())
        }
    }

    pub(super) fn probe() -> LandlockSupport {
        LandlockSupport {
            filesystem: false,
            tcp: false,
        }
    }
}

fn landlock_support() -> LandlockSupport {
    static SUPPORT: OnceLock<LandlockSupport> = OnceLock::new();
    *SUPPORT.get_or_init(landlock_impl::probe)
}

/// A tool that runs the model's shell commands (`sh -c`) in a
/// [`ProcessSandbox`]: `{"command": "…"}` in, `{exit_code, stdout, stderr,
/// truncated, isolation}` out. Destructive, so the permission gate asks
/// before it runs unless a policy allows it.
///
/// ```no_run
/// use loomflow_core::sandbox::{ProcessSandbox, SandboxedShell};
/// use loomflow_core::Agent;
///
/// let shell = SandboxedShell::new(ProcessSandbox::new().writable("/srv/workspace").unwrap());
/// let agent = Agent::builder().model("echo").tool(shell).build().unwrap();
/// # let _ = agent;
/// ```
#[derive(Debug, Clone)]
pub struct SandboxedShell {
    sandbox: ProcessSandbox,
    def: ToolDef,
}

impl SandboxedShell {
    /// A tool named `bash` over `sandbox`.
    pub fn new(sandbox: ProcessSandbox) -> Self {
        Self::named("bash", sandbox)
    }

    /// A tool named `name` over `sandbox`.
    pub fn named(name: impl Into<String>, sandbox: ProcessSandbox) -> Self {
        Self {
            sandbox,
            def: ToolDef {
                name: name.into(),
                description: "Run a shell command (sh -c) in an isolated sandbox: only the \
                              workspace is writable, no network unless allowed. Returns the exit \
                              code, stdout and stderr."
                    .into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "command": {"type": "string", "description": "The shell command."}
                    },
                    "required": ["command"],
                    "additionalProperties": false
                }),
                server: None,
                destructive: true,
                ends_turn: false,
            },
        }
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &ProcessSandbox {
        &self.sandbox
    }
}

#[async_trait]
impl Tool for SandboxedShell {
    fn definition(&self) -> &ToolDef {
        &self.def
    }

    async fn call(&self, args: &Value) -> Result<Value, ToolError> {
        let Some(command) = args.get("command").and_then(Value::as_str) else {
            return Err(ToolError::InvalidArguments {
                tool: self.def.name.clone(),
                message: "`command` must be a string, e.g. {\"command\": \"ls -la\"}".into(),
            });
        };
        match self.sandbox.run("/bin/sh", ["-c", command]).await {
            Ok(out) => serde_json::to_value(&out).map_err(|e| ToolError::Failed {
                message: e.to_string(),
            }),
            Err(e @ SandboxError::Unavailable { .. }) => Err(ToolError::Refused {
                tool: self.def.name.clone(),
                reason: e.to_string(),
            }),
            Err(e) => Err(ToolError::Failed {
                message: e.to_string(),
            }),
        }
    }
}
