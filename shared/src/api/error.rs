//! The API's error shape:
//! `{"error": {"code": "<snake_case>", "message": "<for a person>", "field"?, "requestId"}}`.
//!
//! `code` is stable (clients branch on it) and is one of [`ErrorCode`], whose values the
//! OpenAPI document lists; `field` names the offending input when there is one;
//! `requestId` is added to every error by the request middleware, so a person can quote
//! it. A 500 never carries internals: what went wrong is logged under the request id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strum::IntoEnumIterator;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// Every `code` an error answer may carry, with the status it comes with. Adding one
/// here is the only way to answer a new code; the OpenAPI document lists them all.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is missing where one is needed, unreadable or not JSON.
    InvalidJson,
    /// 400: a query parameter we cannot parse or use.
    InvalidParameter,
    /// 400: a query parameter that is not ours.
    UnknownParameter,
    /// 400: a path segment we cannot parse (`/api/jobs/abc`).
    InvalidPathParameter,
    /// 400: a query or path parameter holding a character the database cannot store or
    /// search for (NUL).
    UnstorableText,
    /// 401: no identity (no verified claims, no `Authorization` header).
    Unauthenticated,
    /// 401: a token we cannot accept (malformed, badly signed, expired, without `sub`).
    InvalidToken,
    /// 401: a webhook delivery whose signature is missing or matches no webhook token.
    InvalidSignature,
    /// 403: the caller's role is below the route's.
    Forbidden,
    /// 403: a genuine token that carries none of the roles.
    NoRole,
    /// 404: no such route.
    NotFound,
    /// 404: no such job, or one the caller may not see.
    JobNotFound,
    /// 404: no such room.
    RoomNotFound,
    /// 404: no such company.
    CompanyNotFound,
    /// 404: the room is not linked to the company.
    LinkNotFound,
    /// 404: no such Chatwork connection.
    ConnectionNotFound,
    /// 404: no such scheduled task.
    TaskNotFound,
    /// 404: no suggestion links that room to that company.
    SuggestionNotFound,
    /// 405: the route does not take that method.
    MethodNotAllowed,
    /// 409: the room is already linked to the company.
    AlreadyLinked,
    /// 409: the job is neither queued nor processing.
    NotCancelable,
    /// 409: the same work is queued or running for another user.
    JobAlreadyActive,
    /// 409: a retry of a job that is still queued or processing.
    JobStillOpen,
    /// 409: a retry of a job none of whose items failed.
    NothingFailed,
    /// 409: a retry of a job whose type cannot run again over some of its items.
    NotRetryable,
    /// 409: enabling a connection whose token was refused or revoked (connect it again).
    ConnectionNeedsReconnect,
    /// 409: a connection that has Chatwork's 5 webhook tokens already.
    WebhookLimitReached,
    /// 409: a webhook token that is added already.
    WebhookAlreadyAdded,
    /// 409: deleting the bootstrap connection (`CHATWORK_API_TOKEN`), which lives in a
    /// setting.
    BootstrapConnection,
    /// 400: an OAuth `state` that is unknown, expired, used, or another admin's.
    OauthStateInvalid,
    /// 400: Chatwork did not connect the account (consent refused, a code refused).
    OauthRefused,
    /// 422: Chatwork refused the token being added.
    ChatworkTokenRefused,
    /// 502: Chatwork could not be asked (down, slow, an unusable answer).
    ChatworkUnavailable,
    /// 409: connections cannot be added here (no token key, or no OAuth client).
    ConnectionsNotConfigured,
    /// 409: a run of the scheduled task is already requested or running.
    TaskRunActive,
    /// 409: the scheduled task is paused (only a dry run may be asked for).
    TaskPaused,
    /// 409: the file is known but its content is not stored (still to be copied, larger
    /// than the cap, or its copy failed); the message says which.
    FileNotStored,
    /// 409: accepting a dismissed suggestion, or dismissing an accepted one.
    SuggestionDecided,
    /// 408: the body did not arrive within the server's body deadline.
    RequestTimeout,
    /// 413: the body is larger than the route accepts.
    PayloadTooLarge,
    /// 414: the path and query are too long.
    UriTooLong,
    /// 415: a body without a JSON `Content-Type`.
    UnsupportedMediaType,
    /// 422: a body field of the wrong type or value.
    InvalidField,
    /// 422: a required body field is missing.
    MissingField,
    /// 422: a body field that is not ours.
    UnknownField,
    /// 431: the header section is too large or has too many lines.
    HeadersTooLarge,
    /// 500: something failed on our side; the cause is logged, never shown.
    Internal,
}

impl ErrorCode {
    /// The code as it is written in an answer (`invalid_field`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: a status, a stable machine-readable code and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// The input the error is about (`isActive`, `limit`, `id`, ...).
    pub field: Option<String>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable, snake_case; clients branch on it.
    #[schema(schema_with = code_schema)]
    pub code: ErrorCode,
    /// For a person; not to be parsed.
    pub message: String,
    /// The request field, query or path parameter the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (API Gateway's request id in AWS); quote it when reporting a
    /// problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The document's schema of `code`: a string, one of [`ErrorCode`]'s values.
fn code_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ErrorCode::iter().map(ErrorCode::as_str)))
        .description(Some("Stable, snake_case; clients branch on it."))
        .examples([ErrorCode::InvalidField.as_str()])
        .build()
}

/// Longest message we echo back; serde's messages quote the offending input.
const MAX_MESSAGE_CHARS: usize = 300;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            message = message.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
        }
        Self {
            status,
            code,
            message,
            field: None,
        }
    }

    /// The same error, about `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 404 with `code` ([`ErrorCode::JobNotFound`], [`ErrorCode::RoomNotFound`], ...).
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422 `invalid_field`: a well-formed request whose `field` has a value we cannot use.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            message,
        )
        .with_field(field)
    }

    /// 500 `internal`. The cause must already be logged; it is never shown.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Something went wrong on our side. Quote the request id when you report it.",
        )
    }

    /// Logs an unexpected error (under the request's span, so with its id) and answers
    /// 500 without it.
    pub fn unexpected(what: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "{what}");
        Self::internal()
    }

    pub(crate) fn body(&self, request_id: Option<&str>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                field: self.field.clone(),
                request_id: request_id.map(str::to_owned),
            },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::unexpected("database error", e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body(None))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The request middleware finds the error here and adds the request id to the body.
        response.extensions_mut().insert(self);
        response
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "There is no such route.",
    )
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "This route does not accept that method.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_written_as_its_snake_case_name() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::iter() {
            let written = serde_json::to_value(code).unwrap();
            assert_eq!(written, serde_json::json!(code.as_str()));
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }

    #[test]
    fn the_body_carries_the_code() {
        let error = ApiError::invalid_field("isActive", "isActive: expected a boolean");
        let body = serde_json::to_value(error.body(Some("r-1"))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "code": "invalid_field",
                "message": "isActive: expected a boolean",
                "field": "isActive",
                "requestId": "r-1",
            }})
        );
    }
}
