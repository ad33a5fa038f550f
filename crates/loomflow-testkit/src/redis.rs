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
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::server::{ChildServer, free_port};

/// A running throwaway server.
#[derive(Debug)]
pub struct TempRedis {
    server: ChildServer,
}

/// Where `scripts/services/redis.sh` installs Redis 8.
const WITH_VECTOR_SETS: &str = "/usr/local/bin/redis-server";
/// Debian bookworm's Redis 7.
const WITHOUT_VECTOR_SETS: &str = "/usr/bin/redis-server";

/// Whether a Redis server answers `PING` on `port`.
fn pong(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
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
        let ok = Command::new(binary)
            .arg("--version")
            .output()
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
        let mut command = Command::new(binary);
        command
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
            .arg(dir.path());
        let server = ChildServer::start(
            "redis-server",
            command,
            port,
            dir,
            Duration::from_secs(10),
            pong,
        );
        Self { server }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }
}
