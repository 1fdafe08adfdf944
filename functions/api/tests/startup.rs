//! The function's binary stops at once, with one line naming the setting, when its
//! configuration is incomplete (a cold start that cannot work must not half-start).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_api");

fn start(env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(BIN)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the api binary");
    (
        output.status.success(),
        String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    )
}

#[test]
fn a_missing_setting_stops_start_up_with_one_line_naming_it() {
    let db = (
        "DATABASE_URL",
        "postgres://cwsync:hunter2@db.internal:5432/cwsync",
    );
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "DATABASE_URL is not set"),
        (&[db], "ROOMS_SYNC_QUEUE_URL is not set"),
        (
            &[
                db,
                (
                    "ROOMS_SYNC_QUEUE_URL",
                    "https://sqs.ap-northeast-1.amazonaws.com/1/rooms-sync.fifo",
                ),
                (
                    "MESSAGES_SYNC_QUEUE_URL",
                    "https://sqs.ap-northeast-1.amazonaws.com/1/messages-sync.fifo",
                ),
                (
                    "SUMMARY_DRAFT_QUEUE_URL",
                    "https://sqs.ap-northeast-1.amazonaws.com/1/summary-draft.fifo",
                ),
                ("JWT_ROLE_CLAIM", "custom role"),
            ],
            "JWT_ROLE_CLAIM is malformed",
        ),
    ];
    for (env, expected) in cases {
        let (ok, stderr) = start(env);
        assert!(!ok, "{expected}: started anyway");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
