//! The summary consumer whose summary settings cannot work stops at once with one line
//! naming the setting, before it polls for any event: a time zone or language it does
//! not know is refused at the cold start, not in the middle of a draft.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_summary-draft");

#[test]
fn a_malformed_summary_setting_stops_start_up_with_one_line_naming_it() {
    let db = (
        "DATABASE_URL",
        "postgres://cwsync:hunter2@db.internal:5432/cwsync",
    );
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[db, ("SUMMARY_TIME_ZONE", "Tokyo")],
            "SUMMARY_TIME_ZONE is malformed: expected an IANA time zone name such as Asia/Tokyo or UTC, got \"Tokyo\"",
        ),
        (
            &[db, ("SUMMARY_LANGUAGE", "japanese")],
            "SUMMARY_LANGUAGE is malformed: expected auto, ja or en, got \"japanese\"",
        ),
        (
            &[db, ("SUMMARY_CONTEXT_TOKENS", "lots")],
            "SUMMARY_CONTEXT_TOKENS is malformed",
        ),
    ];
    for (env, expected) in cases {
        let output = Command::new(BIN)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("run the summary-draft binary");
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
