//! Driving the `tc` command-line tool in tests: personas (each with its own `$TC_HOME` and
//! working directory) running the real binary against a node it serves (`tc node serve`,
//! started with [`crate::process::Launch`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

use crate::process::Node;

/// Someone using `tc`: their own state directory, a working directory for files, one node.
pub struct Persona {
    pub home: tempfile::TempDir,
    pub host: String,
    /// The `tc` binary.
    pub tc: PathBuf,
}

impl Persona {
    /// A user of the `tc` binary that serves `node` (`tc node serve`).
    pub fn new(node: &Node) -> Persona {
        Persona {
            home: tempfile::tempdir().expect("a temporary home"),
            host: node.url.clone(),
            tc: node.program.clone(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// `tc --host <node> …` with a clean environment.
    pub fn command(&self, args: &[&str]) -> StdCommand {
        let mut c = StdCommand::new(&self.tc);
        c.env_clear()
            .env("TC_HOME", self.dir().join("state"))
            .env("HOME", self.dir())
            .current_dir(self.dir())
            .args(["--host", &self.host])
            .args(args);
        c
    }

    /// [`Persona::command`], to run and assert on.
    pub fn tc(&self, args: &[&str]) -> Command {
        Command::from_std(self.command(args))
    }

    /// `tc …` started in the background (stdout and stderr piped).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tc")
    }

    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        self.tc(args).assert().success().get_output().stdout.clone()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        parse(&self.ok(&all))
    }

    /// `tc --json …` that must exit with `code`; returns the `error` object it printed on stderr.
    pub fn json_error(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stderr = self
            .tc(&all)
            .assert()
            .code(code)
            .get_output()
            .stderr
            .clone();
        parse(&stderr)["error"].clone()
    }
}

pub fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Waits for a background `tc` to exit (killing it after `secs`); returns its exit code,
/// stdout and stderr.
pub fn finish(mut child: Child, secs: u64) -> (Option<i32>, String, String) {
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("tc did not exit within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |r: Option<&mut dyn std::io::Read>| {
        let mut text = String::new();
        if let Some(r) = r {
            r.read_to_string(&mut text).unwrap();
        }
        text
    };
    let out = read(child.stdout.as_mut().map(|s| s as &mut dyn std::io::Read));
    let err = read(child.stderr.as_mut().map(|s| s as &mut dyn std::io::Read));
    (status.code(), out, err)
}

/// A session-only persona holding a delegation from `owner` for `--service/--path/--actions`;
/// returns it and the delegation's CID.
pub fn delegate(
    node: &Node,
    owner: &Persona,
    service: &str,
    path: &str,
    actions: &str,
) -> (Persona, String) {
    let agent = Persona::new(node);
    let did = String::from_utf8(agent.ok(&["init", "--session-only"])).unwrap();
    let file = owner.file(&format!("deleg-{service}.json"));
    owner
        .tc(&[
            "delegate",
            "create",
            "--to",
            did.trim(),
            "--service",
            service,
            "--path",
            path,
        ])
        .args(["--actions", actions, "--yes", "-o"])
        .arg(&file)
        .assert()
        .success();
    agent.tc(&["delegate", "use"]).arg(&file).assert().success();
    let cid = parse(&std::fs::read(&file).unwrap())["cid"]
        .as_str()
        .unwrap()
        .to_owned();
    (agent, cid)
}

pub fn owner(node: &Node) -> Persona {
    let p = Persona::new(node);
    let login = p.json(&["auth", "login", "--generate"]);
    assert!(login["did"]
        .as_str()
        .unwrap()
        .starts_with("did:pkh:eip155:1:"));
    assert!(login["spaceId"].as_str().unwrap().ends_with(":default"));
    p
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}
