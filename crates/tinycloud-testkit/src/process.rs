//! The one process launcher: starts a server binary (`tinycloud-node`, or `tc node serve`) on
//! port 0 with a data directory, waits for the `listening on URL` line it prints on stdout
//! (after `metrics on URL` when telemetry is on), keeps draining stdout so the child never
//! blocks on a full pipe, and kills it on drop.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};

/// How to start a server process. The environment is cleared, then `TINYCLOUD_PORT=0`,
/// `TINYCLOUD_STORAGE__DATADIR=<data dir>`, `RUST_LOG=warn` and the given variables are set
/// (later ones win); the working directory is the data directory when it exists.
#[derive(Debug, Clone)]
pub struct Launch {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    data_dir: Option<PathBuf>,
    shell_prefix: Option<String>,
    capture_stderr: bool,
}

impl Launch {
    /// A launch of `program` (e.g. `env!("CARGO_BIN_EXE_tinycloud-node")`). A relative path
    /// is taken from the current directory (the child runs in its data directory).
    pub fn new(program: impl AsRef<OsStr>) -> Launch {
        let path = Path::new(program.as_ref());
        let program = if path.is_relative() && path.components().count() > 1 {
            std::path::absolute(path).map_or_else(|_| path.into(), PathBuf::into_os_string)
        } else {
            path.into()
        };
        Launch {
            program,
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            shell_prefix: None,
            capture_stderr: false,
        }
    }

    /// Command-line arguments (e.g. `["node", "serve"]` for `tc`).
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Launch {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Environment variables set after the defaults.
    pub fn env(mut self, vars: &[(&str, &str)]) -> Launch {
        self.env
            .extend(vars.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        self
    }

    /// Runs on an existing data directory (a restart) instead of a fresh temporary one.
    pub fn data_dir(mut self, dir: &Path) -> Launch {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Runs the program through `sh -c '<prefix> && exec …'` (e.g. `ulimit -Sn 256`).
    pub fn shell_prefix(mut self, prefix: &str) -> Launch {
        self.shell_prefix = Some(prefix.to_owned());
        self
    }

    /// Pipes stderr to [`Node::stderr`] instead of inheriting it.
    pub fn capture_stderr(mut self) -> Launch {
        self.capture_stderr = true;
        self
    }

    fn command(&self, dir: &Path) -> Command {
        let mut cmd = match &self.shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix} && exec \"$0\" \"$@\""))
                    .arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args)
            .env_clear()
            .env("TINYCLOUD_PORT", "0")
            .env("TINYCLOUD_STORAGE__DATADIR", dir)
            .env("RUST_LOG", "warn");
        // In its data directory when that exists (a restart may name one the server creates).
        if dir.is_dir() {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the process and waits until it listens. Panics if it exits first.
    pub fn start(self) -> Node {
        let (tmp, dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::tempdir().expect("temporary data directory");
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let mut cmd = self.command(&dir);
        cmd.stdout(Stdio::piped()).stderr(if self.capture_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.program));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut metrics_url = None;
        let url = loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .expect("read the server's stdout");
            assert!(n > 0, "{:?} exited before listening", self.program);
            // Printed before the listening line when telemetry is on.
            if let Some(u) = line.trim().strip_prefix("metrics on ") {
                metrics_url = Some(u.to_owned());
            }
            if let Some(u) = line.trim().strip_prefix("listening on ") {
                break u.to_owned();
            }
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Node {
            child,
            program: PathBuf::from(&self.program),
            url,
            metrics_url,
            dir,
            tmp,
        }
    }

    /// Runs the process to completion without waiting for it to listen: for servers that must
    /// refuse to start. Its data directory is a fresh temporary one unless [`Self::data_dir`].
    pub fn output(self) -> Output {
        let tmp = tempfile::tempdir().expect("temporary data directory");
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| tmp.path().to_path_buf());
        self.command(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {:?}: {e}", self.program))
    }
}

/// A running server process, killed on drop. Its temporary data directory (if it made one) is
/// removed after that, unless taken with [`Node::take_tmp`] for a restart.
#[derive(Debug)]
pub struct Node {
    pub child: Child,
    /// The binary it runs (for `tc node serve`: the `tc` that [`crate::cli::Persona`] drives).
    pub program: PathBuf,
    /// `http://<addr>` from the `listening on` line.
    pub url: String,
    /// `http://…/metrics` when started with `TINYCLOUD_TELEMETRY__ENABLED=true`.
    pub metrics_url: Option<String>,
    /// The data directory.
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl Node {
    /// `program` on a fresh temporary data directory with `env`.
    pub fn start(program: impl AsRef<OsStr>, env: &[(&str, &str)]) -> Node {
        Launch::new(program).env(env).start()
    }

    /// `program` (re)started on an existing data directory.
    pub fn start_in(program: impl AsRef<OsStr>, dir: &Path, env: &[(&str, &str)]) -> Node {
        Launch::new(program).env(env).data_dir(dir).start()
    }

    /// Takes the temporary directory so it outlives this process (for restarts).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self.tmp.take()
    }

    /// Kills the process (`SIGKILL`) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process and returns everything it wrote to stderr (needs
    /// [`Launch::capture_stderr`]).
    pub fn kill_and_read_stderr(&mut self) -> String {
        self.kill9();
        let mut err = String::new();
        if let Some(mut s) = self.child.stderr.take() {
            let _ = <ChildStderr as Read>::read_to_string(&mut s, &mut err);
        }
        err
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
