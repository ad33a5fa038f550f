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

mod os {
    //! The OS sandbox (bubblewrap and Landlock) against escape attempts made
    //! by a real shell: the kernel, not argument checking, must stop them.

    use std::path::Path;
    use std::time::Duration;

    use loomflow_core::sandbox::{
        Backend, Mechanism, NetworkIsolation, ProcessSandbox, SandboxError,
    };

    async fn sh(sb: &ProcessSandbox, cmd: &str) -> loomflow_core::sandbox::ProcessOutput {
        sb.run("/bin/sh", ["-c", cmd]).await.unwrap()
    }

    async fn corpus(backend: Backend, mechanism: Mechanism, network: NetworkIsolation) {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link_out")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dirlink")).unwrap();

        let sb = ProcessSandbox::new()
            .backend(backend)
            .writable(&root)
            .unwrap()
            .current_dir(&root)
            .unwrap()
            .env("GREETING", "hi")
            .timeout(Duration::from_secs(10));
        let isolation = sb.isolation().unwrap_or_else(|e| {
            panic!("{mechanism:?} must be available here (scripts/test installs bubblewrap; Landlock needs Linux 5.13+): {e}")
        });
        assert_eq!(isolation.mechanism, mechanism);
        assert!(isolation.filesystem);
        assert_eq!(isolation.network, network);

        // Honest work inside the root succeeds.
        let ok = sh(
            &sb,
            "echo hello > note.txt && cat note.txt && echo $GREETING",
        )
        .await;
        assert_eq!(ok.exit_code, Some(0), "{ok:?}");
        assert_eq!(ok.stdout, "hello\nhi\n");
        assert_eq!(
            ok.isolation, isolation,
            "the output reports what it ran under"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("note.txt")).unwrap(),
            "hello\n"
        );

        let o = outside.display();
        let lookalike = base.join("outs\u{0456}de");
        let escapes = [
            format!("cat {o}/secret.txt"),
            "cat ../outside/secret.txt".to_owned(),
            "cat link_out".to_owned(),
            "cat dirlink/secret.txt".to_owned(),
            "echo x > dirlink/planted".to_owned(),
            format!("echo x > {o}/planted"),
            format!("cat /proc/self/root{o}/secret.txt"),
            // The directory swapped for a link to the outside mid-run.
            format!("mv sub sub.bak && ln -s {o} sub && echo x > sub/planted"),
            "cp link_out copied && cat copied".to_owned(),
            "cat /etc/shadow".to_owned(),
            "ls /root /home".to_owned(),
        ];
        for cmd in &escapes {
            let out = sh(&sb, cmd).await;
            assert_ne!(out.exit_code, Some(0), "escaped with `{cmd}`: {out:?}");
            assert!(
                !out.stdout.contains("secret"),
                "`{cmd}` read the secret: {out:?}"
            );
        }
        // A look-alike of the outside dir's name is just another path outside
        // the root: bubblewrap lets the command create it in its private
        // /tmp, Landlock refuses; neither touches the host.
        let _ = sh(&sb, &format!("mkdir {}", lookalike.display())).await;
        assert!(
            !lookalike.exists(),
            "a look-alike path was created on the host"
        );
        assert!(
            !outside.join("planted").exists(),
            "nothing was written outside"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);

        // A minimal environment: nothing inherited (cargo sets CARGO_* here).
        let env = sh(&sb, "env").await.stdout;
        assert!(
            env.contains("GREETING=hi") && env.contains("PATH="),
            "{env}"
        );
        assert!(
            !env.contains("CARGO"),
            "the parent's environment leaked: {env}"
        );

        // No network unless allowed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dial = format!("bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'");
        let out = sh(&sb, &dial).await;
        assert_ne!(out.exit_code, Some(0), "reached the network: {out:?}");
        let open = sb.clone().allow_network(true);
        assert_eq!(open.isolation().unwrap().network, NetworkIsolation::Open);
        let out = sh(&open, &dial).await;
        assert_eq!(out.exit_code, Some(0), "allowed network: {out:?}");

        // The timeout kills the command and its children.
        let quick = sb.clone().timeout(Duration::from_millis(300));
        let err = quick
            .run(
                "/bin/sh",
                ["-c", "(sleep 1; echo late > late.txt) & sleep 30"],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SandboxError::Timeout { .. }), "{err}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !root.join("late.txt").exists(),
            "a child outlived the timeout"
        );

        // Output is capped.
        let capped = sb.clone().max_output(10);
        let out = sh(&capped, "yes | head -c 100000").await;
        assert_eq!(out.stdout.len(), 10);
        assert!(out.truncated);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bubblewrap_stops_the_escape_corpus() {
        corpus(
            Backend::Bubblewrap,
            Mechanism::Bubblewrap,
            NetworkIsolation::Blocked,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn landlock_stops_the_escape_corpus() {
        corpus(
            Backend::Landlock,
            Mechanism::Landlock,
            NetworkIsolation::TcpOnly,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_shell_tool_reports_output_and_isolation_and_is_destructive() {
        use loomflow_core::sandbox::SandboxedShell;
        use loomflow_core::tool::Tool;
        use serde_json::json;

        let dir = tempfile::tempdir().unwrap();
        let shell = SandboxedShell::new(ProcessSandbox::new().writable(dir.path()).unwrap());
        assert!(
            shell.definition().destructive,
            "the gate asks before it runs"
        );
        let out = shell
            .call(&json!({"command": "echo out; echo err >&2; exit 3"}))
            .await
            .unwrap();
        assert_eq!(out["exit_code"], 3);
        assert_eq!(out["stdout"], "out\n");
        assert_eq!(out["stderr"], "err\n");
        assert_eq!(out["isolation"]["filesystem"], true);
        assert_ne!(out["isolation"]["mechanism"], "none");
        let err = shell.call(&json!({"cmd": "ls"})).await.unwrap_err();
        assert!(
            err.to_string().contains("`command` must be a string"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unsandboxed_is_only_by_choice_and_says_so() {
        let sb = ProcessSandbox::new().backend(Backend::Unsandboxed);
        let out = sb.run("/bin/sh", ["-c", "echo ok"]).await.unwrap();
        assert_eq!(out.stdout, "ok\n");
        assert_eq!(out.isolation.mechanism, Mechanism::None);
        assert!(!out.isolation.filesystem);
        assert_eq!(
            out.isolation.to_string(),
            "none (filesystem open, network open)"
        );
        // Auto picks a real mechanism here.
        let auto = ProcessSandbox::new().isolation().unwrap();
        assert_ne!(auto.mechanism, Mechanism::None);
        let err = ProcessSandbox::new()
            .current_dir(Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not under a granted path"), "{err}");
    }
}
