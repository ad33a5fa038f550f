//! What the throwaway servers share: a free loopback port, and a child
//! process that is waited for until it answers and killed when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server running as a child process, with its data folder; killed (and
/// the folder removed) when dropped.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ChildServer {
    /// Spawns `command` (output discarded) and polls `ready(port)` every
    /// 20 ms until it returns true; panics, naming `what`, if the process
    /// exits first or `timeout` passes.
    pub fn start(
        what: &str,
        mut command: Command,
        port: u16,
        dir: tempfile::TempDir,
        timeout: Duration,
        ready: impl Fn(u16) -> bool,
    ) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + timeout;
        while !ready(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{what} exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not answer on port {port} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
