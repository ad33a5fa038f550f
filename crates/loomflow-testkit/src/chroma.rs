//! A throwaway Chroma server on a free loopback port.
//!
//! `scripts/test` installs the `chromadb` package (pinned) into a virtual
//! environment, `$LOOMFLOW_CHROMA_VENV` or `~/.cache/loomflow-chroma-venv`;
//! [`TempChroma::start`] runs its `chroma run` on 127.0.0.1 with a data
//! folder of its own and kills it when dropped. A missing server fails the
//! test with instructions; nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running throwaway server.
#[derive(Debug)]
pub struct TempChroma {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
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
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .arg("run")
            .arg("--path")
            .arg(dir.path())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /api/v2/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.port
                );
                let mut reply = String::new();
                if s.write_all(request.as_bytes()).is_ok()
                    && s.read_to_string(&mut reply).is_ok()
                    && reply.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the Chroma server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the Chroma server did not answer on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for TempChroma {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
