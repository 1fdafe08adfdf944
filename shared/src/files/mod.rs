//! Where the content of Chatwork files is kept: a [`FileStore`], S3 in AWS ([`S3FileStore`],
//! encrypted at rest by the bucket and by every put) and a folder for the local runner
//! ([`FolderFileStore`]); tests use moto's S3. The sync copies a file once, from the
//! download URL Chatwork gives for about 30 seconds, and the API streams it back to people
//! allowed to read it, so nobody ever depends on Chatwork's expiring URL
//! (docs/architecture.md, "Tasks, files and members").
//!
//! Keys are made of Chatwork's room and file ids ([`storage_key`]), never of the file's
//! name: a name is chosen by whoever uploaded the file and can be anything.

mod folder;
mod s3;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ConfigError, Env};

pub use folder::FolderFileStore;
pub use s3::S3FileStore;

/// Why storage failed. Never holds the content, and its `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum FileStoreError {
    /// The storage service or the disk failed; another try may work.
    #[error("file storage failed: {0}")]
    Unavailable(String),
}

/// A stored file's content, ready to stream.
pub struct StoredContent {
    /// Its length in bytes, when the store knows it.
    pub length: Option<u64>,
    pub body: axum::body::Body,
}

impl std::fmt::Debug for StoredContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredContent")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Where file content lives. Puts replace (a copy redone after a crash writes the same
/// bytes again); a missing key reads as `None`.
#[async_trait::async_trait]
pub trait FileStore: Send + Sync + std::fmt::Debug {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileStoreError>;
    async fn get(&self, key: &str) -> Result<Option<StoredContent>, FileStoreError>;
}

/// The key of a file's content: `rooms/<room id>/files/<file id>`.
pub fn storage_key(room_id: i64, file_id: i64) -> String {
    format!("rooms/{room_id}/files/{file_id}")
}

/// The default cap of a copied file: 50 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 50 << 20;

/// How files are kept, as the environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    pub storage: Storage,
    /// Files larger than this are recorded and not copied (`FILE_MAX_BYTES`).
    pub max_bytes: u64,
}

/// Which store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// An S3 bucket (`FILES_BUCKET`).
    Bucket(String),
    /// A folder (`FILES_DIR`).
    Folder(PathBuf),
    /// None configured: files are recorded, their content left `pending`.
    None,
}

impl FilesConfig {
    /// `FILES_BUCKET` (S3) or else `FILES_DIR` (a folder; `default_dir` when neither is
    /// set, for the local runner), and `FILE_MAX_BYTES` (default 50 MiB).
    pub fn from_env(env: &Env, default_dir: Option<PathBuf>) -> Result<Self, ConfigError> {
        let storage = match (env.get("FILES_BUCKET"), env.get("FILES_DIR")) {
            (Some(bucket), _) => Storage::Bucket(bucket.to_owned()),
            (None, Some(dir)) => Storage::Folder(PathBuf::from(dir)),
            (None, None) => default_dir.map_or(Storage::None, Storage::Folder),
        };
        let max_bytes: Option<u64> = env.parse("FILE_MAX_BYTES", "a whole number of bytes")?;
        if max_bytes == Some(0) {
            return Err(ConfigError::Invalid {
                name: "FILE_MAX_BYTES",
                reason: "expected at least 1 byte".into(),
            });
        }
        Ok(Self {
            storage,
            max_bytes: max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
        })
    }

    /// The store these settings name (an S3 client from the environment's AWS settings:
    /// region, credentials, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`).
    pub async fn store(&self) -> Option<Arc<dyn FileStore>> {
        match &self.storage {
            Storage::Bucket(bucket) => {
                let aws = aws_config::load_from_env().await;
                Some(Arc::new(S3FileStore::new(
                    aws_sdk_s3::Client::new(&aws),
                    bucket.clone(),
                )))
            }
            Storage::Folder(dir) => Some(Arc::new(FolderFileStore::new(dir.clone()))),
            Storage::None => None,
        }
    }
}

/// The store and the cap a sync copies files with.
#[derive(Debug, Clone)]
pub struct FileCopies {
    pub store: Arc<dyn FileStore>,
    pub max_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_the_environment() {
        let env = Env::from_pairs([("FILES_BUCKET", "b"), ("FILE_MAX_BYTES", "10")]);
        let config = FilesConfig::from_env(&env, None).unwrap();
        assert_eq!(config.storage, Storage::Bucket("b".into()));
        assert_eq!(config.max_bytes, 10);
        let none = FilesConfig::from_env(&Env::default(), None).unwrap();
        assert_eq!(none.storage, Storage::None);
        assert_eq!(none.max_bytes, DEFAULT_MAX_BYTES);
        let local = FilesConfig::from_env(&Env::default(), Some("/tmp/x".into())).unwrap();
        assert_eq!(local.storage, Storage::Folder("/tmp/x".into()));
        let zero = Env::from_pairs([("FILE_MAX_BYTES", "0")]);
        assert!(FilesConfig::from_env(&zero, None).is_err());
    }

    #[test]
    fn keys_are_made_of_ids_only() {
        assert_eq!(storage_key(281_000_106, 73), "rooms/281000106/files/73");
    }
}
