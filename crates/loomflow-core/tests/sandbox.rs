//! The filesystem sandbox against a corpus of escape attempts.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use loomflow_core::sandbox::FilesystemSandbox;
use loomflow_core::tool::Tool;
use loomflow_core::{InProcessToolHost, ToolDef, ToolError, ToolHost};
use serde_json::{Value, json};

/// A temporary tree:
///
/// ```text
/// base/
///   root/            the sandbox root
///     file.txt
///     sub/data.txt   ("inside")
///     link_out  -> ../outside/secret.txt
///     dirlink   -> ../outside
///     inlink    -> sub
///     swap      -> sub
///     dangling  -> ../outside/nothing
///     loop1 -> loop2, loop2 -> loop1
///   root-evil/x      a sibling sharing the root's name as a prefix
///   outside/secret.txt ("secret")
/// ```
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::create_dir_all(base.join("root-evil")).unwrap();
    std::fs::write(root.join("file.txt"), "file").unwrap();
    std::fs::write(root.join("sub/data.txt"), "inside").unwrap();
    std::fs::write(base.join("outside/secret.txt"), "secret").unwrap();
    std::fs::write(base.join("root-evil/x"), "evil").unwrap();
    symlink("../outside/secret.txt", root.join("link_out")).unwrap();
    symlink("../outside", root.join("dirlink")).unwrap();
    symlink("sub", root.join("inlink")).unwrap();
    symlink("sub", root.join("swap")).unwrap();
    symlink("../outside/nothing", root.join("dangling")).unwrap();
    symlink("loop2", root.join("loop1")).unwrap();
    symlink("loop1", root.join("loop2")).unwrap();
    Tree {
        _dir: dir,
        base,
        root,
    }
}

/// Reads the file named by `path`.
struct ReadFile {
    def: ToolDef,
    /// Runs between the sandbox's check and the read: an attacker's move.
    before_read: Option<Box<dyn Fn() + Send + Sync>>,
}

impl ReadFile {
    fn new() -> Self {
        Self {
            def: ToolDef {
                name: "read_file".into(),
                description: "Read a file.".into(),
                input_schema: json!({"type": "object"}),
                server: None,
                destructive: false,
                ends_turn: false,
            },
            before_read: None,
        }
    }
}

#[async_trait]
impl Tool for ReadFile {
    fn definition(&self) -> &ToolDef {
        &self.def
    }
    async fn call(&self, args: &Value) -> Result<Value, ToolError> {
        if let Some(attack) = &self.before_read {
            attack();
        }
        let path = args["path"].as_str().unwrap_or_default();
        std::fs::read_to_string(path)
            .map(|text| json!({"path": path, "text": text}))
            .map_err(|e| ToolError::failed(e.to_string()))
    }
}

fn sandbox(root: &Path, tool: ReadFile) -> FilesystemSandbox<InProcessToolHost> {
    let host = InProcessToolHost::new([Arc::new(tool) as Arc<dyn Tool>]);
    FilesystemSandbox::new(host, [root]).unwrap()
}

#[derive(Debug, PartialEq)]
enum Expect {
    Read(&'static str),
    Outside,
    Refused,
}

#[tokio::test]
async fn the_escape_corpus_is_refused_and_honest_paths_pass() {
    let t = tree();
    let sb = sandbox(&t.root, ReadFile::new());
    let root = t.root.display().to_string();
    let outside = t.base.join("outside").display().to_string();
    let cases: Vec<(String, Expect)> = vec![
        // Honest paths.
        ("file.txt".into(), Expect::Read("file")),
        ("./sub/data.txt".into(), Expect::Read("inside")),
        (format!("{root}/sub/data.txt"), Expect::Read("inside")),
        ("inlink/data.txt".into(), Expect::Read("inside")),
        (format!("file://{root}/file.txt"), Expect::Read("file")),
        (
            format!("file://localhost{root}/file.txt"),
            Expect::Read("file"),
        ),
        ("sub/nothing/../data.txt".into(), Expect::Read("inside")),
        // Dot-dot.
        ("../outside/secret.txt".into(), Expect::Outside),
        ("sub/../../outside/secret.txt".into(), Expect::Outside),
        ("sub/../../../../../../etc/passwd".into(), Expect::Outside),
        ("..".into(), Expect::Outside),
        // Absolute paths.
        ("/etc/passwd".into(), Expect::Outside),
        (format!("{outside}/secret.txt"), Expect::Outside),
        (format!("{root}-evil/x"), Expect::Outside),
        // Symlinks to a file and to a directory.
        ("link_out".into(), Expect::Outside),
        ("dirlink/secret.txt".into(), Expect::Outside),
        ("dangling".into(), Expect::Refused),
        ("loop1".into(), Expect::Refused),
        // /proc tricks.
        ("/proc/self/root/etc/passwd".into(), Expect::Outside),
        (
            format!("/proc/self/root{outside}/secret.txt"),
            Expect::Outside,
        ),
        // URLs, escapes, home.
        ("file:///etc/passwd".into(), Expect::Outside),
        (
            format!("file://{root}/%2e%2e/outside/secret.txt"),
            Expect::Outside,
        ),
        ("file://evil.example/etc/passwd".into(), Expect::Refused),
        (format!("file://{root}/%zz"), Expect::Refused),
        ("~/.ssh/id_rsa".into(), Expect::Outside),
        ("~root/.ssh/id_rsa".into(), Expect::Refused),
        // Look-alikes and invisible characters.
        (
            "\u{FF0E}\u{FF0E}/outside/secret.txt".into(),
            Expect::Refused,
        ),
        (
            "sub\u{2215}..\u{2215}..\u{2215}outside".into(),
            Expect::Refused,
        ),
        ("file.txt\u{202E}".into(), Expect::Refused),
        ("fi\u{200B}le.txt".into(), Expect::Refused),
        ("..\\..\\etc\\passwd".into(), Expect::Refused),
        ("file.txt\u{0}.png".into(), Expect::Refused),
        ("".into(), Expect::Refused),
    ];
    let mut wrong = Vec::new();
    for (path, expect) in cases {
        let got = match sb.call("read_file", &json!({ "path": path }), "c").await {
            Ok(v) => match v["text"].as_str() {
                Some("file") => Expect::Read("file"),
                Some("inside") => Expect::Read("inside"),
                other => panic!("{path:?} read {other:?}"),
            },
            Err(ToolError::Refused { reason, .. })
                if reason.contains("outside the allowed roots") =>
            {
                Expect::Outside
            }
            Err(ToolError::Refused { reason, .. }) if reason.contains("cannot be checked") => {
                Expect::Refused
            }
            Err(e) => panic!("{path:?}: unexpected {e}"),
        };
        if got != expect {
            wrong.push(format!("{path:?}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn paths_are_found_by_name_and_value_in_nested_arguments() {
    let t = tree();
    let sb = sandbox(&t.root, ReadFile::new());
    for args in [
        json!({"options": {"files": ["file.txt", "../outside/secret.txt"]}}),
        json!({"query": "see ../outside/secret.txt"}),
        json!({"output_dir": "../outside"}),
        json!({"batch": [{"source": "/etc/shadow"}]}),
    ] {
        let err = sb.check(&args).unwrap_err();
        assert!(err.contains("outside the allowed roots"), "{args}: {err}");
    }
    // Not paths: a web URL, plain words, numbers.
    let fine = json!({"url": "https://example.com/a/../b", "q": "weather in Paris", "n": 3});
    assert_eq!(sb.check(&fine).unwrap(), fine);
    // Allowed paths come back resolved.
    let checked = sb.check(&json!({"to": "inlink/data.txt"})).unwrap();
    assert_eq!(
        checked["to"],
        t.root.join("sub/data.txt").display().to_string()
    );
    // An explicit argument name is a path whatever it looks like.
    let strict = sandbox(&t.root, ReadFile::new())
        .path_args(["name"])
        .explicit_only();
    assert!(strict.check(&json!({"name": "link_out"})).is_err());
    assert!(strict.check(&json!({"other": "../x"})).is_ok());
}

#[tokio::test]
async fn a_symlink_swapped_after_the_check_cannot_redirect_the_call() {
    let t = tree();
    let swap = t.root.join("swap");
    let outside = t.base.join("outside");
    let mut tool = ReadFile::new();
    // Between the check and the read, `swap` is re-pointed outside.
    tool.before_read = Some(Box::new(move || {
        std::fs::remove_file(&swap).unwrap();
        symlink(&outside, &swap).unwrap();
    }));
    // `swap/data.txt` passes the check (swap -> sub). The tool then reads
    // the resolved path it was handed, not `swap/data.txt`, which would now
    // be outside.
    let sb = sandbox(&t.root, tool);
    let out = sb
        .call("read_file", &json!({"path": "swap/data.txt"}), "c")
        .await
        .unwrap();
    assert_eq!(out["text"], "inside");
    assert_eq!(
        out["path"],
        t.root.join("sub/data.txt").display().to_string()
    );
    assert_eq!(
        std::fs::read_link(t.root.join("swap")).unwrap(),
        t.base.join("outside"),
        "the swap did happen"
    );
}

#[test]
fn roots_must_exist() {
    let err = FilesystemSandbox::new(InProcessToolHost::default(), ["/no/such/dir"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/dir"), "{err}");
    assert!(FilesystemSandbox::new(InProcessToolHost::default(), Vec::<PathBuf>::new()).is_err());
}
