//! Extractors that turn a request's body, query and path into domain types, and every way
//! they can fail into an [`ApiError`] that names the field: axum's own rejections answer
//! in plain text, which our clients could not parse.
//!
//! | input | failure | status | code |
//! |---|---|---|---|
//! | body | larger than [`MAX_BODY_BYTES`] | 413 | `payload_too_large` |
//! | body | missing where one is needed, or not JSON | 400 | `invalid_json` |
//! | body | JSON without `Content-Type: application/json` | 415 | `unsupported_media_type` |
//! | body | a field that is not ours | 422 | `unknown_field` |
//! | body | a required field missing | 422 | `missing_field` |
//! | body | a field of the wrong type or value | 422 | `invalid_field` |
//! | query | a parameter that is not ours | 400 | `unknown_parameter` |
//! | query | a parameter we cannot parse or use | 400 | `invalid_parameter` |
//! | path | a segment we cannot parse (`/jobs/abc`) | 400 | `invalid_path_parameter` |

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::{ApiError, ErrorCode};

/// The largest request body the API reads. Every body of the API is a handful of fields.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body, required.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be left out: an empty body, or JSON `null` (what the document's
/// `oneOf [object, null]` allows), is `T::default()`.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match read_json(req, state, false).await? {
            Some(value) => Ok(Self(value)),
            None => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                "This route needs a JSON body.",
            )),
        }
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body: Option<NullOr<T>> = read_json(req, state, true).await?;
        Ok(Self(body.and_then(|b| b.0).unwrap_or_default()))
    }
}

/// A body that is JSON `null` or a `T`.
struct NullOr<T>(Option<T>);

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for NullOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer).map(Self)
    }
}

/// The body parsed as `T`, or `None` when it is empty. `null_allowed`: a body that is
/// JSON `null` is handed to `T` rather than refused as not an object.
async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    null_allowed: bool,
) -> Result<Option<T>, ApiError> {
    let json_content = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_media_type);
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                "The request body could not be read.",
            )
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !json_content {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Send the body as JSON with `Content-Type: application/json`.",
        ));
    }
    if null_allowed && bytes.trim_ascii() == b"null" {
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| json_error(".", e));
    }
    parse_json(&bytes).map(Some)
}

/// `application/json` or a `+json` type, with any parameters.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub(crate) fn payload_too_large() -> ApiError {
    payload_too_large_of(MAX_BODY_BYTES)
}

/// The 413 of a route whose limit is `limit` bytes.
pub(crate) fn payload_too_large_of(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("The request body is larger than {limit} bytes."),
    )
}

/// The largest body `path` accepts: the webhook route's own limit, else
/// [`MAX_BODY_BYTES`].
pub(crate) fn body_limit(path: &str) -> usize {
    if path == crate::webhook::WEBHOOK_PATH {
        crate::webhook::MAX_WEBHOOK_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Parses a whole JSON document as `T` (every body of the API is an object), naming the
/// field of a data error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // serde would take `[true]` for `{"isActive": true}`; only an object will do.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| json_error(".", e))?;
        return Err(ApiError::invalid_field(
            "body",
            "The body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, e.into_inner())
    })?;
    // Anything after the document (`{...} x`) makes it malformed.
    de.end().map_err(|e| json_error(".", e))?;
    Ok(value)
}

fn json_error(path: &str, error: serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => {
            let (code, field) = classify_data_error(path, &error.to_string());
            let message = format!("{field}: {}", without_position(&error));
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
        }
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("The body is not valid JSON: {error}"),
        ),
    }
}

/// serde_json's message without its " at line 1 column 9" suffix.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The code of a data error and the field it is about. serde names an unknown, missing
/// or duplicate field in backticks; the path is the field's own (unknown) or its
/// parent's (missing).
fn classify_data_error(path: &str, message: &str) -> (ErrorCode, String) {
    let named = |prefix: &str| -> Option<String> {
        let rest = message.strip_prefix(prefix)?;
        let name = rest.split('`').next()?;
        Some(match path {
            "." | "" => name.to_owned(),
            p if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
            parent => format!("{parent}.{name}"),
        })
    };
    if let Some(field) = named("unknown field `") {
        return (ErrorCode::UnknownField, field);
    }
    if let Some(field) = named("missing field `") {
        return (ErrorCode::MissingField, field);
    }
    if let Some(field) = named("duplicate field `") {
        return (ErrorCode::InvalidField, field);
    }
    let field = match path {
        "." | "" => "body".to_owned(),
        p => p.to_owned(),
    };
    (ErrorCode::InvalidField, field)
}

/// Query parameters parsed into `T` (a struct with `deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name.contains('\0') || value.contains('\0') {
                return Err(unstorable(&name));
            }
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let (code, field) = classify_data_error(&path, &message);
            let code = if code == ErrorCode::UnknownField {
                ErrorCode::UnknownParameter
            } else {
                ErrorCode::InvalidParameter
            };
            let field = if field == "body" {
                "query".to_owned()
            } else {
                field
            };
            ApiError::new(StatusCode::BAD_REQUEST, code, format!("{field}: {message}"))
                .with_field(field)
        })
    }
}

/// Path parameters parsed into `T` (a struct whose fields are the route's parameters).
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidPathParameter,
                    "A path segment is not valid UTF-8.",
                )
            })?;
        let map: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        serde_path_to_error::deserialize(serde_json::Value::Object(map))
            .map(Self)
            .map_err(|e| {
                let field = match e.path().to_string() {
                    p if p == "." => "path".to_owned(),
                    p => p,
                };
                let message = e.into_inner().to_string();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidPathParameter,
                    format!("{field}: {message}"),
                )
                .with_field(field)
            })
    }
}

/// The request's id: API Gateway's `requestContext.requestId` in Lambda, else one we
/// generate. Set by the request middleware; also sent back as `x-request-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

impl RequestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A parameter holding NUL, which Postgres refuses in text: a 400 of its own rather than
/// the database's error (a 500) when the value reaches a query.
fn unstorable(field: &str) -> ApiError {
    let field: String = field.replace('\0', "\\0");
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::UnstorableText,
        format!("{field}: contains a NUL character, which cwsync cannot store or search for."),
    )
    .with_field(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        is_active: bool,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Inner {
        room_id: i64,
    }

    fn err(json: &str) -> ApiError {
        parse_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn json_errors_name_their_field() {
        let ok: Body = parse_json(br#" {"isActive": true, "inner": {"roomId": 7}} "#).unwrap();
        assert!(ok.is_active);
        assert_eq!(ok.inner.map(|i| i.room_id), Some(7));
        let e = err(r#"{"isActive": "yes"}"#);
        assert_eq!(
            (e.status.as_u16(), e.code, e.field.as_deref()),
            (422, ErrorCode::InvalidField, Some("isActive"))
        );
        assert!(!e.message.contains("line"), "{}", e.message);
        let e = err(r#"{}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MissingField, Some("isActive"))
        );
        let e = err(r#"{"isActive": true, "role": "admin"}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::UnknownField, Some("role"))
        );
        let e = err(r#"{"isActive": true, "inner": {"roomId": 1, "x": 2}}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::UnknownField, Some("inner.x"))
        );
        let e = err(r#"{"isActive": true, "inner": {"roomId": "1"}}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidField, Some("inner.roomId"))
        );
        let e = err(r#"{"isActive": true, "isActive": false}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidField, Some("isActive"))
        );
        let e = err(r#"[true]"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidField, Some("body"))
        );
    }

    #[test]
    fn malformed_json_is_400() {
        for bad in [
            r#"{"isActive": tru"#,
            r#"{"isActive": true} x"#,
            "\u{1}",
            "{",
        ] {
            let e = err(bad);
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, ErrorCode::InvalidJson),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
    }
}
