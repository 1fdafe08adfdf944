//! Downloading a file's content from the short-lived URL Chatwork gives for it.
//!
//! The URL points at storage, not at the API: it carries its own signature, so no token
//! goes with it, and neither the rate budget nor the outage breaker counts it. While it
//! works it is a credential to the file, so it is never logged, never put in an error,
//! and reqwest's errors are stripped of it. The body is read a chunk at a time up to a
//! cap and no further.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// What a download brought.
#[derive(Clone)]
pub struct Downloaded {
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
}

impl std::fmt::Debug for Downloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloaded")
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Why a download failed. None of them holds the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// The URL no longer works (403, as an expired presigned URL answers; or 404): ask
    /// Chatwork for a new one.
    #[error("the download URL was refused with {status} (expired)")]
    Expired { status: u16 },
    /// Any other status.
    #[error("the download answered {status}")]
    Status { status: u16 },
    /// More than `cap` bytes: reading stopped there.
    #[error("the file is larger than {cap} bytes; not read further")]
    TooLarge { cap: u64 },
    /// No answer, or the body broke off, or the deadline passed.
    #[error("the download failed: {message}")]
    Network { message: String },
    /// Not an http(s) URL.
    #[error("the download URL is not an http(s) URL")]
    BadUrl,
}

impl DownloadError {
    /// Whether a new URL can help (the file is still there).
    pub fn wants_new_url(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }
}

/// GETs `url` with `http`, reading at most `cap` bytes, before `deadline`.
pub(super) async fn fetch(
    http: &reqwest::Client,
    url: &SecretString,
    cap: u64,
    deadline: Instant,
) -> Result<Downloaded, DownloadError> {
    let parsed = url::Url::parse(url.expose_secret()).map_err(|_| DownloadError::BadUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(DownloadError::BadUrl);
    }
    let network = |e: reqwest::Error| DownloadError::Network {
        message: e.without_url().to_string().chars().take(200).collect(),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(DownloadError::Network {
            message: "no time left before the deadline".into(),
        });
    }
    let read = async {
        let mut response = http.get(parsed).send().await.map_err(network)?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            403 | 404 => return Err(DownloadError::Expired { status }),
            _ => return Err(DownloadError::Status { status }),
        }
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(DownloadError::TooLarge { cap });
        }
        let mut bytes = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
        let mut hash = Sha256::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(DownloadError::TooLarge { cap });
            }
            hash.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Downloaded { bytes, sha256 })
    };
    match tokio::time::timeout(left, read).await {
        Ok(result) => result,
        Err(_) => Err(DownloadError::Network {
            message: format!("no complete answer within {} ms", left.as_millis()),
        }),
    }
}
