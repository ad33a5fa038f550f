//! A throwaway Redis server on a free loopback port.
//!
//! `scripts/test` installs two servers: Redis 8 built from Debian trixie's
//! source into `/usr/local/bin` (it has Vector Sets) and Debian bookworm's
//! Redis 7 in `/usr/bin` (it has not: the Redis memory scores vectors on
//! the client there). [`TempRedis::start`] runs the first,
//! [`TempRedis::start_without_vector_sets`] the second; each runs without
//! persistence in its own folder and is killed when dropped. A missing
//! binary fails the test with instructions; nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running throwaway server.
#[derive(Debug)]
pub struct TempRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Where `scripts/services/redis.sh` installs Redis 8.
const WITH_VECTOR_SETS: &str = "/usr/local/bin/redis-server";
/// Debian bookworm's Redis 7.
const WITHOUT_VECTOR_SETS: &str = "/usr/bin/redis-server";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TempRedis {
    /// Starts Redis 8 (with Vector Sets).
    pub fn start() -> Self {
        Self::start_binary(Path::new(WITH_VECTOR_SETS), "8.")
    }

    /// Starts Debian's Redis 7 (no Vector Sets).
    pub fn start_without_vector_sets() -> Self {
        Self::start_binary(Path::new(WITHOUT_VECTOR_SETS), "7.")
    }

    fn start_binary(binary: &Path, version: &str) -> Self {
        let out = Command::new(binary).arg("--version").output();
        let ok = out
            .as_ref()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("v={version}")))
            .unwrap_or(false);
        assert!(
            ok,
            "Redis {version}x not found at {}; run scripts/test (scripts/services/redis.sh builds \
             Redis 8 into /usr/local/bin; `apt-get install redis-server` gives Redis 7 in /usr/bin)",
            binary.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("loomflow-redis-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut reply = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TempRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
