//! Small helpers for text meant for people and logs.

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
