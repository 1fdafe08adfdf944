//! moto's SQS-compatible server, started once per test process.
//!
//! The server is a child of a thread that lives as long as the process and asks the
//! kernel to kill the child when that thread dies (`PR_SET_PDEATHSIG`), so a test run
//! that ends, fails or is killed leaves no server behind.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running moto server.
pub struct SqsEmulator {
    /// `http://127.0.0.1:<port>`, for `endpoint_url` / `AWS_ENDPOINT_URL`.
    pub endpoint: String,
}

impl SqsEmulator {
    /// The region the tests use with the emulator (moto accepts any).
    pub const REGION: &'static str = "us-east-1";

    /// Stores `value` as a new Secrets Manager secret in the emulator (moto serves every
    /// AWS service on one port) and returns its ARN, for the functions' `*_SECRET_ARN`.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let response = reqwest::Client::new()
            .post(&self.endpoint)
            .header("x-amz-target", "secretsmanager.CreateSecret")
            .header("content-type", "application/x-amz-json-1.1")
            // moto picks the service from the credential scope; it checks no signature.
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20260101/{}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
                    Self::REGION
                ),
            )
            .json(&serde_json::json!({"Name": name, "SecretString": value}))
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "CreateSecret: {status} {body}");
        body["ARN"].as_str().expect("an ARN").to_owned()
    }
}

/// The emulator of this test process, started on first use.
pub fn sqs_emulator() -> &'static SqsEmulator {
    static EMULATOR: OnceLock<SqsEmulator> = OnceLock::new();
    EMULATOR.get_or_init(start)
}

/// Where moto's server is: `MOTO_SERVER`, else the venv of `scripts/test`
/// (`CWSYNC_VENV`, default `.venv`), else `moto_server` on the PATH.
fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return path.into();
    }
    let venv = std::env::var_os("CWSYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv"));
    let in_venv = venv.join("bin").join("moto_server");
    if in_venv.exists() {
        in_venv
    } else {
        "moto_server".into()
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start() -> SqsEmulator {
    let binary = moto_binary();
    let port = free_port();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawn_binary = binary.clone();
    std::thread::Builder::new()
        .name("moto-server".into())
        .spawn(move || {
            let mut command = Command::new(&spawn_binary);
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match command.spawn() {
                Ok(child) => {
                    let _ = tx.send(Ok(()));
                    // This thread must outlive the tests: its death kills the server.
                    let _child = child;
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .expect("spawn the moto thread");
    if let Err(e) = rx.recv().expect("the moto thread reports") {
        panic!(
            "could not start moto's server ({}): {e}; run scripts/test, which installs it",
            binary.display()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto's server did not open port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    SqsEmulator {
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// An SQS client for the emulator (moto accepts any credentials).
pub fn sqs_client() -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(SqsEmulator::REGION))
        .endpoint_url(&sqs_emulator().endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "cwsync-tests"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A KMS client for the emulator.
pub fn kms_client() -> aws_sdk_kms::Client {
    use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(SqsEmulator::REGION))
        .endpoint_url(&sqs_emulator().endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "cwsync-tests"))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// An S3 client for the emulator (path-style addressing: moto serves every bucket on
/// its one address).
pub fn s3_client() -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(SqsEmulator::REGION))
        .endpoint_url(&sqs_emulator().endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new("test", "test", None, None, "cwsync-tests"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates a bucket of its own in the emulator (tests never share one) and returns its
/// name.
pub async fn create_test_bucket() -> String {
    let name = format!("cwsync-files-{}", uuid::Uuid::new_v4().simple());
    s3_client()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create a bucket in moto");
    name
}

/// Creates cwsync's FIFO queues (every job type's work queue and its dead-letter queue)
/// under a prefix of their own (so tests never share queues), each work queue redriving
/// to its dead-letter queue after `max_receive_count` receives, and returns them as
/// [`cwsync::queue::SqsQueues`].
pub async fn create_test_queues(
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> cwsync::queue::SqsQueues {
    create_queues_of(
        &cwsync::job_types::registry(),
        visibility_timeout_secs,
        max_receive_count,
    )
    .await
}

/// [`create_test_queues`] for the job types of `registry`.
pub async fn create_queues_of(
    registry: &cwsync::jobs::Registry,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> cwsync::queue::SqsQueues {
    use aws_sdk_sqs::types::QueueAttributeName;
    let client = sqs_client();
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut urls = std::collections::HashMap::new();
    for queue in registry.work_queues() {
        let dlq = queue.dead_letter();
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{prefix}-{dlq}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("create a dead-letter queue in moto")
            .queue_url
            .expect("a queue URL");
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("the dead-letter queue's ARN")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("an ARN");
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        let url = client
            .create_queue()
            .queue_name(format!("{prefix}-{queue}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .expect("create a work queue in moto")
            .queue_url
            .expect("a queue URL");
        urls.insert(queue, url);
        urls.insert(dlq, dlq_url);
    }
    cwsync::queue::SqsQueues::new(client, urls)
}
