//! The Python oracles (numpy, h5py, zarr-python): where the interpreter is, running a script
//! with it, and the local S3 server (moto) the object storage tests talk to.

use std::path::PathBuf;
use std::process::Command;

/// The Python interpreter of the environment `cargo xtask setup` made, if there is one.
///
/// `NDSTORE_PYTHON` names it; otherwise the default location under the target directory is
/// tried. `Err` says what to run to get it.
pub fn interpreter() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("NDSTORE_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let python = target.join("py-venv").join("bin").join("python");
    if python.is_file() {
        Ok(python)
    } else {
        Err("numpy is not set up: run `cargo xtask setup` (or `cargo xtask test`) once".to_owned())
    }
}

/// Whether the oracles can run: true when they are set up; false (with a note naming `what`
/// was skipped) when they are not and not required; a panic when they are required
/// (`NDSTORE_REQUIRE_ORACLES`, which `cargo xtask test` sets), so a missing oracle fails tests.
pub fn available_or_skip(what: &str) -> bool {
    match interpreter() {
        Ok(_) => true,
        Err(e) if std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_some() => panic!("{e}"),
        Err(e) => {
            eprintln!("{what} not run: {e}");
            false
        }
    }
}

/// Runs a Python script and returns its standard output, or its error output when it fails.
pub fn run_script(script: &str) -> Result<String, String> {
    let python = interpreter()?;
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The bucket the local S3 server creates.
pub const S3_BUCKET: &str = "ndstore-test";

/// A local S3-compatible server (moto's `ThreadedMotoServer` on 127.0.0.1 at a free port, with
/// [`S3_BUCKET`] created), run by the Python environment's interpreter and stopped when this
/// is dropped (its standard input closes, and the process is killed if it lingers).
#[derive(Debug)]
pub struct S3Server {
    child: std::process::Child,
    port: u16,
}

impl S3Server {
    /// Starts the server and waits until its bucket exists.
    ///
    /// # Errors
    ///
    /// Why it could not start: no Python environment, moto missing, no port printed.
    pub fn start() -> Result<S3Server, String> {
        use std::io::BufRead;
        use std::process::Stdio;
        let python = interpreter()?;
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(include_str!("s3_server.py"))
            .arg(S3_BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        match (read, line.trim().parse::<u16>()) {
            (Some(Ok(_)), Ok(port)) => Ok(S3Server { child, port }),
            _ => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "the local S3 server (moto) did not start ({status}); is moto[server] installed? run `cargo xtask setup`"
                ))
            }
        }
    }

    /// The server's endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The settings a client needs, named as the AWS environment variables are.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        s3_settings(&self.endpoint())
    }
}

/// The settings a client of the local S3 server at `endpoint` needs (a server another process
/// started, say), named as the AWS environment variables are.
pub fn s3_settings(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing standard input ends the launcher; a kill makes sure.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local S3 server, or `None` with a note naming `what` was skipped and why; under
/// `CI=true` (or `NDSTORE_REQUIRE_ORACLES`) a server that cannot start is a failure (a panic).
pub fn s3_server_or_skip(what: &str) -> Option<S3Server> {
    match S3Server::start() {
        Ok(server) => Some(server),
        Err(e)
            if std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var_os("NDSTORE_REQUIRE_ORACLES").is_some() =>
        {
            panic!("{what}: {e}")
        }
        Err(e) => {
            eprintln!("SKIP {what}: {e}");
            None
        }
    }
}
