//! Which queues are SQS and where they are (`<QUEUE>_QUEUE_URL`). How the SQS client
//! finds its endpoint, region and credentials is the AWS SDK's own reading of the
//! environment (`SqsQueues::from_config`), not a setting of ours.

use std::collections::BTreeMap;

use super::QueueName;
use crate::config::{ConfigError, Env, parse_url};

/// Which SQS queues carry the jobs: the URL of each work queue whose setting is set
/// (`<QUEUE>_QUEUE_URL`, named after the queue: `ROOMS_SYNC_QUEUE_URL`). The queues are the
/// registry's (`Registry::work_queues`). A queue whose URL is unset is served by the
/// embedded queue of the local runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub urls: BTreeMap<QueueName, String>,
}

impl QueueConfig {
    pub fn from_env(env: &Env, queues: &[QueueName]) -> Result<Self, ConfigError> {
        let mut urls = BTreeMap::new();
        for queue in queues {
            // Setting names are `&'static str` in errors; these few are made from queue names.
            let name = crate::text::intern(&queue.url_variable());
            let Some(raw) = env.get(name) else {
                continue;
            };
            let parsed = parse_url(name, raw)?;
            if !parsed.path().ends_with(".fifo") {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "cwsync needs a FIFO queue (its name ends in .fifo)".into(),
                });
            }
            urls.insert(*queue, raw.to_owned());
        }
        Ok(Self { urls })
    }

    /// The queues of `queues` whose URL is not set.
    pub fn missing(&self, queues: &[QueueName]) -> Vec<QueueName> {
        queues
            .iter()
            .filter(|q| !self.urls.contains_key(q))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_must_be_fifo() {
        let env = Env::from_pairs([(
            "ROOMS_SYNC_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/rooms",
        )]);
        let queues = [
            QueueName::work("rooms-sync"),
            QueueName::work("summary-draft"),
        ];
        let line = QueueConfig::from_env(&env, &queues)
            .unwrap_err()
            .to_string();
        assert!(
            line.starts_with("ROOMS_SYNC_QUEUE_URL is malformed"),
            "{line}"
        );
        let env = Env::from_pairs([(
            "ROOMS_SYNC_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/rooms.fifo",
        )]);
        let config = QueueConfig::from_env(&env, &queues).unwrap();
        assert!(config.urls.contains_key(&queues[0]));
        assert_eq!(config.missing(&queues), [queues[1]]);
    }
}
