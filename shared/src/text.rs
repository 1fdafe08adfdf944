//! Small helpers for text: errors on one line for people and logs, and names kept for
//! the life of the process.

/// An error and its causes on one line, each cause once (reqwest repeats its inner
/// errors' messages in its own). A reqwest error names its URL: pass it through
/// `without_url()` where the URL must not reach the message.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut source = Some(e);
    while let Some(err) = source {
        let part = err.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = err.source();
    }
    text
}

/// `name` as a `&'static str`, kept once per distinct value for the life of the process.
/// For the few names that are made at run time but live as long as the code's own
/// constants (job type values read from the database, queue URL settings).
pub fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "request failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_are_joined_once_each() {
        let e = Outer(std::io::Error::other("connection reset"));
        assert_eq!(error_chain(&e), "request failed: connection reset");
    }
}
