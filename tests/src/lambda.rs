//! `cargo lambda watch`, the local emulator of the Lambda runtime API, running the
//! workspace's function binaries as Lambda would: each invocation is a real event handed
//! to the real binary through the runtime API.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `cargo lambda watch`, killed (with everything it started) when dropped.
pub struct LambdaEmulator {
    pub address: String,
    child: Child,
    _env_file: PathBuf,
    /// Everything the functions wrote to stdout (their logs and metrics), as CloudWatch
    /// Logs would receive it.
    stdout_file: PathBuf,
}

/// Where `cargo-lambda` is: the venv of `scripts/test`, else the PATH.
fn cargo_lambda() -> PathBuf {
    let venv = std::env::var_os("CWSYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv"));
    let in_venv = venv.join("bin").join("cargo-lambda");
    if in_venv.exists() {
        in_venv
    } else {
        "cargo-lambda".into()
    }
}

impl LambdaEmulator {
    /// Starts the emulator on a free loopback port with `env` for the functions.
    pub fn start(env: &BTreeMap<String, String>) -> Self {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let env_file =
            std::env::temp_dir().join(format!("cwsync-lambda-env-{}", uuid::Uuid::new_v4()));
        let lines: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&env_file, lines).expect("write the functions' environment");
        let stdout_file =
            std::env::temp_dir().join(format!("cwsync-lambda-stdout-{}", uuid::Uuid::new_v4()));
        let stdout = std::fs::File::create(&stdout_file).expect("create the functions' log");
        let mut command = Command::new(cargo_lambda());
        command
            .args(["lambda", "watch", "--ignore-changes", "--quiet"])
            .args([
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .arg("--env-file")
            .arg(&env_file)
            .current_dir(crate::workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::inherit())
            // Its own process group, so that dropping it stops the functions it started.
            .process_group(0);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("could not start cargo-lambda ({e}); run scripts/test, which installs it")
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Self {
            address: format!("http://127.0.0.1:{port}"),
            child,
            _env_file: env_file,
            stdout_file,
        }
    }

    /// The lines the functions wrote to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stdout_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Invokes `function` (its binary's name) with `event`; returns the HTTP status and
    /// the function's answer. The first invocation of a function builds it.
    pub async fn invoke(
        &self,
        function: &str,
        event: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.address
            ))
            .timeout(Duration::from_secs(600))
            .json(event)
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, body)
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self._env_file);
        let _ = std::fs::remove_file(&self.stdout_file);
    }
}
