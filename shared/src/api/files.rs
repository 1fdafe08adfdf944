//! `GET /api/chatwork/rooms/{id}/files/{fileId}/content`: a file's content as the sync
//! copied it, streamed from storage (never Chatwork's expiring URL) to anyone who may
//! read companies: any role.
//!
//! The answer is always an attachment (`Content-Disposition` with the file's name,
//! encoded for any character) with `X-Content-Type-Options: nosniff`, and its type is
//! guessed from the name only among types a browser does not run: the content comes
//! from whoever uploaded it to Chatwork and must never execute on the console's origin.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::ApiPath;
use super::room_extras::readable_room;
use super::rooms::RoomRef;
use super::{ApiError, AppState, Caller, ErrorBody, ErrorCode};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct FilePath {
    /// Chatwork's id of the room (digits, a positive 64-bit number) or ours (a UUID).
    /// Named `id` as in every route under `/api/chatwork/rooms/{id}` (one router cannot
    /// name one segment twice).
    #[param(value_type = String, pattern = r"^([1-9][0-9]{0,17}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")]
    id: RoomRef,
    /// Chatwork's id of the file (digits).
    #[param(value_type = String, pattern = r"^[1-9][0-9]{0,17}$")]
    file_id: FileId,
}

/// A file id in a path: 1 to 18 digits, not 0 (path segments arrive as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(i64);

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0 && raw.bytes().all(|b| b.is_ascii_digit()))
            .map(FileId)
            .ok_or_else(|| serde::de::Error::custom("expected a file id (digits, not 0)"))
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn not_found(path: &FilePath) -> ApiError {
    ApiError::not_found(
        ErrorCode::NotFound,
        format!("Room {} has no file {}.", path.id, path.file_id),
    )
}

/// A file's content.
#[utoipa::path(
    get, path = "/api/chatwork/rooms/{id}/files/{fileId}/content",
    operation_id = "getRoomFileContent", tag = "chatwork",
    params(FilePath),
    responses(
        (status = 200, description = "The file's bytes, as an attachment",
         content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Malformed room or file id", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such room, or no such file in it (`not_found`)", body = ErrorBody),
        (status = 409, description = "The file's content is not stored: still to be copied, over the size cap, or its copy failed (`file_not_stored`)", body = ErrorBody),
        (status = 503, description = "File storage is not configured or unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn content(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<FilePath>,
) -> Result<Response, ApiError> {
    // Whoever may list the room's files may download them: admins any room, other
    // roles a room linked to a company.
    let room = readable_room(&state, &caller, path.id)
        .await
        .map_err(|_| not_found(&path))?;
    let file = sqlx::query!(
        r#"SELECT filename, storage_state, storage_key, stored_bytes
             FROM chatwork_files WHERE file_id = $1 AND chatwork_room_id = $2"#,
        path.file_id.0,
        room.id,
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| not_found(&path))?;
    let key = match (file.storage_state.as_str(), file.storage_key) {
        ("stored", Some(key)) => key,
        (state, _) => {
            let why = match state {
                "too_large" => "it is larger than the size cap, so it was recorded and not copied",
                "failed" => "its copy failed for good",
                _ => "it has not been copied yet",
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::FileNotStored,
                format!("The content of file {} is not stored: {why}.", path.file_id),
            ));
        }
    };
    let unavailable = |message: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            message,
        )
    };
    let Some(store) = state.files.as_ref() else {
        return Err(unavailable("File storage is not configured.".into()));
    };
    let content = match store.get(&key).await {
        Ok(Some(content)) => content,
        // Stored, then lost (a lifecycle rule's expiry, say): as good as not stored.
        Ok(None) => return Err(not_found(&path)),
        Err(e) => {
            tracing::error!(error = %e, file_id = path.file_id.0, "file storage failed");
            return Err(unavailable(
                "File storage is unavailable; try again.".into(),
            ));
        }
    };
    let mut response = content.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file.filename)),
    );
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&file.filename)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(length) = content
        .length
        .or(file.stored_bytes.and_then(|n| u64::try_from(n).ok()))
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
}

/// The type of a file by its name's extension, among types no browser runs (no HTML,
/// SVG or script); anything else is `application/octet-stream`.
fn content_type(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" | "log" => "text/plain; charset=utf-8",
        "csv" => "text/csv",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// `attachment; filename="<ASCII stand-in>"; filename*=UTF-8''<the name, percent-encoded>`
/// (RFC 6266 and RFC 8187): old clients read the first, every browser the second. Both
/// are safe in a header whatever the name holds (quotes, line breaks, any script).
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'!'
            | b'#'
            | b'$'
            | b'&'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~' => encoded.push(byte as char),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disposition_names_any_file_safely() {
        assert_eq!(
            content_disposition("議事録.pdf"),
            "attachment; filename=\"___.pdf\"; filename*=UTF-8''%E8%AD%B0%E4%BA%8B%E9%8C%B2.pdf"
        );
        let hostile = content_disposition("a\"b\r\nSet-Cookie: x.txt");
        assert!(HeaderValue::from_str(&hostile).is_ok());
        assert!(!hostile.contains('\r') && !hostile.contains('\n'));
        assert!(hostile.starts_with("attachment; filename=\"a_b__Set-Cookie: x.txt\""));
    }

    #[test]
    fn only_harmless_types_are_guessed() {
        assert_eq!(content_type("a.PDF"), "application/pdf");
        assert_eq!(content_type("page.html"), "application/octet-stream");
        assert_eq!(content_type("x.svg"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
