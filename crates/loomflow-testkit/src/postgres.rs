//! A throwaway Postgres server on a free loopback port.
//!
//! `scripts/test` installs Postgres from Debian. [`TempPostgres::start`]
//! copies a cluster initialised once per machine (`initdb` takes seconds, a
//! copy a fraction of one), starts it on 127.0.0.1 with its socket in its
//! own folder, and stops it when dropped. Missing binaries fail the test
//! with instructions; nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::server::free_port;

/// A running throwaway server.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

static TEMPLATE: Mutex<()> = Mutex::new(());

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "Postgres server binaries not found under /usr/lib/postgresql/*/bin; \
             run scripts/test (it installs postgresql from Debian) or `apt-get install postgresql`"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `program` (as the `postgres` user when we are root: Postgres refuses
/// to run as root).
fn run(as_postgres: bool, program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd.args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {}: {e}", program.display());
    });
    assert!(
        out.status.success(),
        "{} {} failed:\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chown_postgres(path: &Path) {
    let out = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "chown failed: {out:?}");
}

/// The initialised cluster every instance copies, created on first use.
fn template(bin: &Path, as_postgres: bool) -> PathBuf {
    let _one_at_a_time = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = std::env::temp_dir().join(format!("loomflow-pg-template-{version}"));
    if path.join("PG_VERSION").exists() {
        return path;
    }
    let staging = tempfile::Builder::new()
        .prefix("loomflow-pg-initdb-")
        .tempdir()
        .unwrap()
        .keep();
    if as_postgres {
        chown_postgres(&staging);
    }
    let data = staging.join("data");
    run(
        as_postgres,
        &bin.join("initdb"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    );
    if std::fs::rename(&data, &path).is_err() && !path.join("PG_VERSION").exists() {
        panic!("cannot move the Postgres template to {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&staging);
    path
}

impl TempPostgres {
    /// Starts a server tuned for tests (no fsync: nothing here must survive
    /// a power cut).
    pub fn start() -> Self {
        Self::start_with(&["-c", "fsync=off", "-c", "synchronous_commit=off"])
    }

    /// Starts a server with durable settings (fsync on), for benchmarks.
    pub fn start_durable() -> Self {
        Self::start_with(&[])
    }

    fn start_with(settings: &[&str]) -> Self {
        let bin = bin_dir();
        let as_postgres = is_root();
        let template = template(&bin, as_postgres);
        let dir = tempfile::Builder::new()
            .prefix("loomflow-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "copying the template failed: {out:?}");
        if as_postgres {
            chown_postgres(dir.path());
        }
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.path().display()
        );
        for s in settings {
            options.push(' ');
            options.push_str(s);
        }
        let log = dir.path().join("log");
        run(
            as_postgres,
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        Self {
            dir,
            bin,
            port,
            as_postgres,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        run(
            false,
            Path::new("psql"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-X",
                "-q",
                "-c",
                &format!("CREATE DATABASE \"{name}\""),
            ],
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
