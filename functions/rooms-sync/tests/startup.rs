//! A consumer whose configuration is incomplete stops at once with one line naming the
//! setting (and never the secrets it was given), before it polls for any event.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rooms-sync");

#[test]
fn a_missing_setting_stops_start_up_with_one_line_naming_it() {
    let db = (
        "DATABASE_URL",
        "postgres://cwsync:hunter2@db.internal:5432/cwsync",
    );
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "DATABASE_URL is not set"),
        (&[db], "CHATWORK_API_TOKEN is not set"),
        (
            &[
                db,
                ("CHATWORK_API_TOKEN", "tok"),
                ("CHATWORK_MAX_ATTEMPTS", "0"),
            ],
            "CHATWORK_MAX_ATTEMPTS",
        ),
    ];
    for (env, expected) in cases {
        let output = Command::new(BIN)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("run the rooms-sync binary");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8 stderr");
        assert!(!output.status.success(), "{expected}: started anyway");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
