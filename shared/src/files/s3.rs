//! Files in an S3 bucket: each put asks for server-side encryption (the bucket encrypts by
//! default too, and the template blocks public access); reads stream the object.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::{FileStore, FileStoreError, StoredContent};

/// An S3 bucket as a [`FileStore`].
#[derive(Debug, Clone)]
pub struct S3FileStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3FileStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// One line of an SDK error, with its service code when it has one.
fn describe<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = error.code().unwrap_or("no code");
    format!(
        "{code}: {}",
        aws_sdk_s3::error::DisplayErrorContext(error)
            .to_string()
            .chars()
            .take(300)
            .collect::<String>()
    )
}

#[async_trait::async_trait]
impl FileStore for S3FileStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), FileStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| FileStoreError::Unavailable(describe(&e)))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredContent>, FileStoreError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => return Err(FileStoreError::Unavailable(describe(&e))),
        };
        let length = object.content_length().and_then(|n| u64::try_from(n).ok());
        let chunks = futures_util::stream::unfold(object.body, |mut body| async move {
            body.next().await.map(|chunk| (chunk, body))
        });
        Ok(Some(StoredContent {
            length,
            body: axum::body::Body::from_stream(chunks),
        }))
    }
}
