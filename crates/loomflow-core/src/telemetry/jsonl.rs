//! The JSONL file sink.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use super::layer::Sink;
use super::record::{MetricRecord, SpanRecord};

enum Message {
    Line(String),
    Flush(mpsc::SyncSender<()>),
}

/// Appends one JSON object per line to a file: `{"kind":"span", …}` for
/// each finished span, `{"kind":"metric", …}` for each metric point. Lines
/// are written by a background thread, so a run never waits on the disk.
///
/// Query it with `jq`:
///
/// ```text
/// jq -c 'select(.kind == "span" and .name == "loom.tool") | .attributes."gen_ai.tool.name"' spans.jsonl
/// jq -c 'select(.kind == "span" and .duration_ms > 1000)' spans.jsonl
/// ```
///
/// No rotation: leave that to logrotate or the platform.
#[derive(Debug, Clone)]
pub struct JsonlSink {
    path: PathBuf,
    tx: mpsc::Sender<Message>,
}

#[derive(Serialize)]
struct Line<'a, T> {
    kind: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

impl JsonlSink {
    /// Appends to `path`, creating it and its folder when missing.
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("loomflow-jsonl".into())
            .spawn(move || write_lines(file, &rx))?;
        Ok(Self { path, tx })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send<T: Serialize>(&self, kind: &'static str, record: &T) {
        if let Ok(line) = serde_json::to_string(&Line { kind, record }) {
            let _ = self.tx.send(Message::Line(line));
        }
    }
}

/// The writer thread: writes lines as they come, flushing whenever the
/// queue is empty; ends when every sender is gone.
fn write_lines(file: File, rx: &mpsc::Receiver<Message>) {
    let mut out = BufWriter::new(file);
    let mut failed = false;
    while let Ok(mut message) = rx.recv() {
        loop {
            match message {
                Message::Line(line) => {
                    if !failed
                        && (out.write_all(line.as_bytes()).is_err()
                            || out.write_all(b"\n").is_err())
                    {
                        failed = true;
                        tracing::warn!(
                            "telemetry: the JSONL file can no longer be written; spans are dropped"
                        );
                    }
                }
                Message::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            match rx.try_recv() {
                Ok(next) => message = next,
                Err(_) => break,
            }
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

impl Sink for JsonlSink {
    fn span_ended(&self, span: &SpanRecord) {
        self.send("span", span);
    }

    fn metric(&self, metric: &MetricRecord) {
        self.send("metric", metric);
    }

    fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}
