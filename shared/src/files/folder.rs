//! Files in a folder of the local disk (the local runner's): one file per key, written
//! to a temporary name and renamed, so a reader never sees half a file.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::{FileStore, FileStoreError, StoredContent};

/// A folder as a [`FileStore`].
#[derive(Debug, Clone)]
pub struct FolderFileStore {
    root: PathBuf,
}

/// Bytes read from disk per chunk of a streamed answer.
const CHUNK: usize = 256 << 10;

impl FolderFileStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The path of a key. Keys are made of ids (`super::storage_key`); anything else
    /// that could leave the folder is refused.
    fn path(&self, key: &str) -> Result<PathBuf, FileStoreError> {
        let safe = key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !safe {
            return Err(FileStoreError::Unavailable(format!(
                "not a storage key: {key:?}"
            )));
        }
        Ok(self.root.join(key))
    }
}

fn io(e: std::io::Error) -> FileStoreError {
    FileStoreError::Unavailable(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, FileStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FileStoreError::Unavailable(e.to_string()))?
        .map_err(io)
}

#[async_trait::async_trait]
impl FileStore for FolderFileStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileStoreError> {
        let path = self.path(key)?;
        blocking(move || {
            let dir = path.parent().expect("a key has a folder");
            std::fs::create_dir_all(dir)?;
            let temporary = path.with_extension(format!("part-{}", fastrand::u64(..)));
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredContent>, FileStoreError> {
        let path = self.path(key)?;
        let opened = blocking(move || match std::fs::File::open(&path) {
            Ok(file) => {
                let length = file.metadata()?.len();
                Ok(Some((file, length)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        let Some((file, length)) = opened else {
            return Ok(None);
        };
        // One blocking read per chunk, as the answer is sent.
        let chunks = futures_util::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let read = tokio::task::spawn_blocking(move || {
                let mut buffer = vec![0; CHUNK];
                let n = file.read(&mut buffer)?;
                buffer.truncate(n);
                Ok::<_, std::io::Error>((file, buffer))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            match read {
                Ok((_, buffer)) if buffer.is_empty() => None,
                Ok((file, buffer)) => Some((Ok(axum::body::Bytes::from(buffer)), Some(file))),
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok(Some(StoredContent {
            length: Some(length),
            body: axum::body::Body::from_stream(chunks),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_folder_keeps_what_was_put_and_refuses_odd_keys() {
        let dir = std::env::temp_dir().join(format!("cwsync-files-{}", fastrand::u64(..)));
        let store = FolderFileStore::new(dir.clone());
        assert!(store.get("rooms/1/files/2").await.unwrap().is_none());
        store
            .put("rooms/1/files/2", b"hello".to_vec())
            .await
            .unwrap();
        let content = store.get("rooms/1/files/2").await.unwrap().unwrap();
        assert_eq!(content.length, Some(5));
        let bytes = content.body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.as_ref(), b"hello");
        assert!(store.put("../x", vec![]).await.is_err());
        assert!(store.get("rooms/1/../../x").await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
