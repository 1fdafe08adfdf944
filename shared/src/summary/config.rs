//! The summary consumer's settings (`SUMMARY_*`): which summarizer drafts, in what
//! language and time zone, and how to reach a model when there is one.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::locale::{DraftStyle, LanguageChoice};
use crate::config::{ConfigError, Env, parse_http_url};

/// How summary drafts are written. Without a model the built-in extractive summarizer
/// drafts them (no network, deterministic).
#[derive(Debug, Clone)]
pub struct SummaryConfig {
    /// The OpenAI-compatible model, when `SUMMARY_MODEL_BASE_URL` and `SUMMARY_MODEL` are
    /// set (both or neither).
    pub model: Option<SummaryModelConfig>,
    /// `SUMMARY_CONTEXT_TOKENS` (default 16000, 1024 to 2000000): the model's context
    /// window as cwsync budgets it; a period whose messages do not fit in one request is
    /// split into chunks that do, summarized one by one, then combined.
    pub context_tokens: u32,
    /// `SUMMARY_LANGUAGE` (`auto`, `ja` or `en`; default `auto`: Japanese when most of
    /// the period's text is) and `SUMMARY_TIME_ZONE` (an IANA name; default
    /// `Asia/Tokyo`): the language drafts are written in and the zone of their times.
    pub style: DraftStyle,
}

/// An OpenAI-compatible chat-completions API.
#[derive(Debug, Clone)]
pub struct SummaryModelConfig {
    /// `SUMMARY_MODEL_BASE_URL`, e.g. `https://api.openai.com/v1`; requests go to
    /// `<base>/chat/completions`.
    pub base_url: Url,
    /// `SUMMARY_MODEL`: the model's name, sent in each request and stored with the draft.
    pub model: String,
    /// `SUMMARY_MODEL_API_KEY` (sent as a bearer token). In AWS it comes from the secret
    /// named by `SUMMARY_MODEL_API_KEY_SECRET_ARN`; a local server may need none.
    pub api_key: Option<SecretString>,
    /// `SUMMARY_MODEL_TIMEOUT_SECS` (default 120): the longest one request may take.
    pub timeout: Duration,
}

impl SummaryConfig {
    pub const DEFAULT_CONTEXT_TOKENS: u32 = 16_000;

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let context_tokens: u32 = env
            .parse(
                "SUMMARY_CONTEXT_TOKENS",
                "a whole number of tokens from 1024 to 2000000",
            )?
            .unwrap_or(Self::DEFAULT_CONTEXT_TOKENS);
        if !(1024..=2_000_000).contains(&context_tokens) {
            return Err(ConfigError::Invalid {
                name: "SUMMARY_CONTEXT_TOKENS",
                reason: format!(
                    "expected a whole number of tokens from 1024 to 2000000, got {context_tokens}"
                ),
            });
        }
        let language: LanguageChoice = env
            .parse("SUMMARY_LANGUAGE", "auto, ja or en")?
            .unwrap_or_default();
        let time_zone: chrono_tz::Tz = env
            .parse(
                "SUMMARY_TIME_ZONE",
                "an IANA time zone name such as Asia/Tokyo or UTC",
            )?
            .unwrap_or(chrono_tz::Asia::Tokyo);
        let timeout = env.seconds("SUMMARY_MODEL_TIMEOUT_SECS", 120)?;
        if timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "SUMMARY_MODEL_TIMEOUT_SECS",
                reason: "expected at least 1 second, got 0".into(),
            });
        }
        let api_key = env
            .get("SUMMARY_MODEL_API_KEY")
            .map(|k| SecretString::from(k.to_owned()));
        let model = match (env.get("SUMMARY_MODEL_BASE_URL"), env.get("SUMMARY_MODEL")) {
            (None, None) => {
                if api_key.is_some() {
                    return Err(ConfigError::Missing {
                        name: "SUMMARY_MODEL_BASE_URL",
                        hint: "SUMMARY_MODEL_API_KEY is set; set SUMMARY_MODEL_BASE_URL and SUMMARY_MODEL too, or unset the key for the built-in extractive summarizer",
                    });
                }
                None
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "SUMMARY_MODEL",
                    hint: "SUMMARY_MODEL_BASE_URL is set; name the model too (or unset both for the built-in extractive summarizer)",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "SUMMARY_MODEL_BASE_URL",
                    hint: "SUMMARY_MODEL is set; give the API's base URL too, e.g. https://api.openai.com/v1 (or unset both for the built-in extractive summarizer)",
                });
            }
            (Some(raw), Some(model)) => {
                let base_url = parse_http_url("SUMMARY_MODEL_BASE_URL", raw)?;
                if !base_url.username().is_empty() || base_url.password().is_some() {
                    // Credentials in the URL would end up in logs; the key has its own variable.
                    return Err(ConfigError::Invalid {
                        name: "SUMMARY_MODEL_BASE_URL",
                        reason: "it must not carry credentials; use SUMMARY_MODEL_API_KEY".into(),
                    });
                }
                if model.chars().count() > 200 || model.chars().any(char::is_control) {
                    return Err(ConfigError::Invalid {
                        name: "SUMMARY_MODEL",
                        reason: "expected a model name of at most 200 printable characters".into(),
                    });
                }
                Some(SummaryModelConfig {
                    base_url,
                    model: model.to_owned(),
                    api_key,
                    timeout,
                })
            }
        };
        Ok(Self {
            model,
            context_tokens,
            style: DraftStyle {
                language,
                time_zone,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::summary::locale::Language;

    #[test]
    fn summaries_are_extractive_unless_a_model_is_configured() {
        let config = SummaryConfig::from_env(&Env::default()).unwrap();
        assert!(config.model.is_none());
        assert_eq!(config.context_tokens, 16_000);
        assert_eq!(config.style, DraftStyle::default());
        assert_eq!(config.style.language, LanguageChoice::Auto);
        assert_eq!(config.style.time_zone, chrono_tz::Asia::Tokyo);
        let env = Env::from_pairs([
            ("SUMMARY_MODEL_BASE_URL", "http://127.0.0.1:8080/v1"),
            ("SUMMARY_MODEL", "local-model"),
            ("SUMMARY_MODEL_API_KEY", "sk-very-secret"),
            ("SUMMARY_MODEL_TIMEOUT_SECS", "7"),
            ("SUMMARY_CONTEXT_TOKENS", "4096"),
        ]);
        let config = SummaryConfig::from_env(&env).unwrap();
        assert!(!format!("{config:?}").contains("sk-very-secret"));
        let model = config.model.unwrap();
        assert_eq!(model.model, "local-model");
        assert_eq!(model.timeout, Duration::from_secs(7));
        assert_eq!(model.api_key.unwrap().expose_secret(), "sk-very-secret");
        assert_eq!(config.context_tokens, 4096);
    }

    #[test]
    fn malformed_summary_settings_name_the_variable() {
        let base = ("SUMMARY_MODEL_BASE_URL", "https://api.example.com/v1");
        let model = ("SUMMARY_MODEL", "m");
        for (pairs, name) in [
            (vec![base], "SUMMARY_MODEL is not set"),
            (vec![model], "SUMMARY_MODEL_BASE_URL is not set"),
            (
                vec![("SUMMARY_MODEL_API_KEY", "k")],
                "SUMMARY_MODEL_BASE_URL is not set",
            ),
            (
                vec![("SUMMARY_MODEL_BASE_URL", "ftp://x"), model],
                "SUMMARY_MODEL_BASE_URL is malformed",
            ),
            (
                vec![("SUMMARY_MODEL_BASE_URL", "https://u:pw@x/v1"), model],
                "SUMMARY_MODEL_BASE_URL is malformed",
            ),
            (
                vec![base, model, ("SUMMARY_CONTEXT_TOKENS", "100")],
                "SUMMARY_CONTEXT_TOKENS is malformed",
            ),
            (
                vec![("SUMMARY_CONTEXT_TOKENS", "lots")],
                "SUMMARY_CONTEXT_TOKENS is malformed",
            ),
            (
                vec![base, model, ("SUMMARY_MODEL_TIMEOUT_SECS", "0")],
                "SUMMARY_MODEL_TIMEOUT_SECS is malformed",
            ),
        ] {
            let line = SummaryConfig::from_env(&Env::from_pairs(pairs))
                .unwrap_err()
                .to_string();
            assert!(line.starts_with(name), "{line}");
            assert!(!line.contains('\n') && !line.contains("pw@"), "{line}");
        }
    }

    #[test]
    fn the_summary_language_and_time_zone_are_read_and_checked_in_one_line() {
        let env = Env::from_pairs([
            ("SUMMARY_LANGUAGE", "en"),
            ("SUMMARY_TIME_ZONE", "America/New_York"),
        ]);
        let config = SummaryConfig::from_env(&env).unwrap();
        assert_eq!(
            config.style.language,
            LanguageChoice::Fixed(Language::English)
        );
        assert_eq!(config.style.time_zone, chrono_tz::America::New_York);
        let line = SummaryConfig::from_env(&Env::from_pairs([("SUMMARY_TIME_ZONE", "Tokyo")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            line,
            "SUMMARY_TIME_ZONE is malformed: expected an IANA time zone name such as Asia/Tokyo or UTC, got \"Tokyo\""
        );
        let line = SummaryConfig::from_env(&Env::from_pairs([("SUMMARY_LANGUAGE", "fr")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            line,
            "SUMMARY_LANGUAGE is malformed: expected auto, ja or en, got \"fr\""
        );
    }
}
