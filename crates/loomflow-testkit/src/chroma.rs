//! A throwaway Chroma server on a free loopback port.
//!
//! `scripts/test` installs the `chromadb` package (pinned) into a virtual
//! environment, `$LOOMFLOW_CHROMA_VENV` or `~/.cache/loomflow-chroma-venv`;
//! [`TempChroma::start`] runs its `chroma run` on 127.0.0.1 with a data
//! folder of its own and kills it when dropped. A missing server fails the
//! test with instructions; nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::server::{ChildServer, free_port};

/// A running throwaway server.
#[derive(Debug)]
pub struct TempChroma {
    server: ChildServer,
}

/// Whether a Chroma server answers its heartbeat on `port`.
fn heartbeat(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "GET /api/v2/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    let mut reply = String::new();
    s.write_all(request.as_bytes()).is_ok()
        && s.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.1 200")
}

fn chroma_binary() -> PathBuf {
    let venv = std::env::var_os("LOOMFLOW_CHROMA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/loomflow-chroma-venv")
        });
    let bin = venv.join("bin/chroma");
    assert!(
        bin.exists(),
        "the Chroma server is not installed at {}; run scripts/test (it installs the pinned \
         `chromadb` package from PyPI into that virtual environment)",
        bin.display()
    );
    bin
}

impl TempChroma {
    /// Starts a server with an empty data folder.
    pub fn start() -> Self {
        let bin = chroma_binary();
        let dir = tempfile::Builder::new()
            .prefix("loomflow-chroma-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut command = Command::new(&bin);
        command
            .arg("run")
            .arg("--path")
            .arg(dir.path())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ANONYMIZED_TELEMETRY", "False");
        let server = ChildServer::start(
            "the Chroma server",
            command,
            port,
            dir,
            Duration::from_secs(30),
            heartbeat,
        );
        Self { server }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }
}
