//! `/api/chatwork/connections`: the team's Chatwork connections (admins only). List them;
//! add one with an API token; connect one with OAuth 2.0 (start: the consent page's URL;
//! complete: the code Chatwork redirected the admin's browser with, posted by the
//! console); disable, enable and delete one (docs/architecture.md, "Connections").
//!
//! These routes talk to Chatwork, unlike the rest of the API: a token is checked with
//! `GET /me` (and a code exchanged within its one minute) while the admin waits. Each
//! costs one or two requests, bounded by the client's timeout.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::auth::{Admin, Caller};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, RequestId};
use super::{ApiError, AppState, ErrorCode};
use crate::chatwork::{Me, token_hash};
use crate::connections::cipher::place;
use crate::connections::oauth::{GrantError, challenge_of, random_token};
use crate::connections::store::{self, Connection, NewConnection};
use crate::connections::{Connections, TokenEndpoint};
use crate::jobs;
use crate::sync::rooms::{RoomsSync, RoomsSyncPayload};

/// How long an OAuth round trip may take from start to completion.
pub const STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The longest a Chatwork call of these routes may take.
const CHATWORK_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionList {
    /// The bootstrap connection first, then by when they were connected.
    pub items: Vec<Connection>,
    /// Whether connections can be added here: a token key is configured.
    pub can_add: bool,
    /// Whether *Connect with Chatwork* works here: an OAuth client is configured.
    pub can_connect_oauth: bool,
}

/// A connection just made, and the rooms sync that reads its room list first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub connection: Connection,
    /// `true` when the account was connected already: the same connection now has the
    /// new token and is active again.
    pub reconnected: bool,
    pub rooms_sync_job_id: Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewApiTokenConnection {
    /// A Chatwork API token (kept sealed, never shown again).
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub token: String,
}

impl std::fmt::Debug for NewApiTokenConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiTokenConnection")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthStart {
    /// Send the admin's browser here: Chatwork's consent page.
    pub authorization_url: String,
    /// The round trip must complete before this.
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthCompletion {
    /// The `state` Chatwork sent back.
    #[schema(min_length = 1, max_length = 200)]
    pub state: String,
    /// The `code` Chatwork sent back, when the account holder consented.
    #[schema(max_length = 2000)]
    pub code: Option<String>,
    /// Chatwork's `error` (`access_denied`, ...), when they did not.
    #[schema(max_length = 200)]
    pub error: Option<String>,
}

impl std::fmt::Debug for OAuthCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthCompletion")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionChange {
    /// `disabled` stops every use of the connection; `active` uses it again (a
    /// connection that needs reconnecting is reconnected, not enabled).
    #[schema(value_type = String, pattern = "^(active|disabled)$")]
    pub status: ChangedStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangedStatus {
    Active,
    Disabled,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct ConnectionPath {
    /// The connection's id.
    id: Uuid,
}

fn connections(state: &AppState) -> Result<&Connections, ApiError> {
    state.connections.as_ref().ok_or_else(not_configured)
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::ConnectionsNotConfigured,
        "Connections cannot be added here: no token encryption key is configured \
         (TOKEN_KMS_KEY_ID or TOKEN_ENCRYPTION_KEY)",
    )
}

fn oauth_endpoint(connections: &Connections) -> Result<&TokenEndpoint, ApiError> {
    connections.endpoint().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ConnectionsNotConfigured,
            "Connect with Chatwork is not set up here: no OAuth client is configured \
             (CHATWORK_OAUTH_CLIENT_ID)",
        )
    })
}

fn connection_not_found() -> ApiError {
    ApiError::not_found(ErrorCode::ConnectionNotFound, "No such Chatwork connection")
}

/// The team's Chatwork connections.
#[utoipa::path(
    get, path = "/api/chatwork/connections", operation_id = "listChatworkConnections",
    tag = "connections",
    responses(
        (status = 200, description = "Every connection, without its tokens", body = ConnectionList),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Admin(_caller): Admin,
) -> Result<Json<ConnectionList>, ApiError> {
    let items = store::list(&state.pool).await?;
    let connections = state.connections.as_ref();
    Ok(Json(ConnectionList {
        items,
        can_add: connections.is_some_and(|c| c.cipher().is_some()),
        can_connect_oauth: connections
            .is_some_and(|c| c.cipher().is_some() && c.endpoint().is_some()),
    }))
}

/// Adds a connection with an API token, checked with Chatwork's `GET /me`, and starts
/// its first rooms sync. An account connected already is reconnected with the token.
#[utoipa::path(
    post, path = "/api/chatwork/connections", operation_id = "addChatworkConnection",
    tag = "connections",
    request_body = NewApiTokenConnection,
    responses(
        (status = 201, description = "Connected; its rooms sync started", body = Connected),
        (status = 400, description = "A path parameter or the body cannot be read", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "The token is malformed, or Chatwork refused it", body = ErrorBody),
        (status = 502, description = "Chatwork could not be asked", body = ErrorBody),
        (status = 409, description = "No token encryption key is configured here", body = ErrorBody),
    )
)]
pub(crate) async fn add(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiJson(new): ApiJson<NewApiTokenConnection>,
) -> Result<(StatusCode, Json<Connected>), ApiError> {
    let connections = connections(&state)?;
    if connections.cipher().is_none() {
        return Err(not_configured());
    }
    let token = new.token.trim();
    if token.is_empty() || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_field(
            "token",
            "the token must be 1 to 200 printable ASCII characters",
        ));
    }
    let token = SecretString::from(token.to_owned());
    let me = whoami(connections, &token, false).await?;
    let made = save(
        &state,
        connections,
        &caller,
        &request_id,
        NewConnection {
            kind: "api_token",
            me: &me,
            connected_by: &caller.user_id,
            scopes: "",
            access_token: &token,
            refresh_token: None,
            expires_at: None,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Starts connecting an account with OAuth 2.0: the consent page's URL, carrying a
/// `state` bound to the calling admin (single use, 10 minutes) and a PKCE challenge.
#[utoipa::path(
    post, path = "/api/chatwork/connections/oauth", operation_id = "startChatworkOAuth",
    tag = "connections",
    responses(
        (status = 201, description = "Send the browser to the URL", body = OAuthStart),
        (status = 400, description = "A path parameter or the body cannot be read", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "No OAuth client or token key is configured here", body = ErrorBody),
    )
)]
pub(crate) async fn start_oauth(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<(StatusCode, Json<OAuthStart>), ApiError> {
    let connections = connections(&state)?;
    let endpoint = oauth_endpoint(connections)?;
    let cipher = connections.cipher().ok_or_else(not_configured)?;
    let state_token = random_token();
    let verifier = random_token();
    let state_hash = token_hash(&SecretString::from(state_token.clone()));
    let sealed = cipher
        .seal(&state_place(&state_hash), verifier.as_bytes())
        .await
        .map_err(|e| ApiError::unexpected("could not seal a PKCE verifier", e))?;
    let expires_at = Utc::now() + chrono::Duration::from_std(STATE_LIFETIME).expect("10 minutes");
    sqlx::query!(
        "INSERT INTO chatwork_oauth_states
             (state_hash, admin_sub, code_verifier, key_id, wrapped_key, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &state_hash[..],
        caller.user_id,
        sealed.bytes,
        sealed.key_id,
        sealed.wrapped_key,
        expires_at,
    )
    .execute(&state.pool)
    .await?;
    // Round trips never completed are forgotten a day after they expired.
    sqlx::query!("DELETE FROM chatwork_oauth_states WHERE expires_at < now() - interval '1 day'")
        .execute(&state.pool)
        .await?;
    let url = endpoint
        .config()
        .authorization_url(&state_token, &challenge_of(&verifier));
    Ok((
        StatusCode::CREATED,
        Json(OAuthStart {
            authorization_url: url.to_string(),
            expires_at,
        }),
    ))
}

fn state_place(state_hash: &[u8; 32]) -> String {
    let id = Uuid::from_slice(&state_hash[..16]).expect("16 bytes");
    place(&id, "code_verifier")
}

/// Completes an OAuth round trip: the console posts what Chatwork redirected the admin's
/// browser with. The `state` must be the calling admin's, unused and unexpired; the code
/// is exchanged with its PKCE verifier, the account read with `GET /me`, the connection
/// stored sealed and its first rooms sync started.
#[utoipa::path(
    post, path = "/api/chatwork/connections/oauth/complete",
    operation_id = "completeChatworkOAuth", tag = "connections",
    request_body = OAuthCompletion,
    responses(
        (status = 201, description = "Connected; its rooms sync started", body = Connected),
        (status = 400, description = "The state is unknown, expired, used or another admin's; consent was refused; or Chatwork refused the code", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "A body field is missing or invalid", body = ErrorBody),
        (status = 502, description = "Chatwork could not be asked", body = ErrorBody),
        (status = 409, description = "No OAuth client or token key is configured here", body = ErrorBody),
    )
)]
pub(crate) async fn complete_oauth(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiJson(completion): ApiJson<OAuthCompletion>,
) -> Result<(StatusCode, Json<Connected>), ApiError> {
    let connections = connections(&state)?;
    let endpoint = oauth_endpoint(connections)?;
    let cipher = connections.cipher().ok_or_else(not_configured)?;
    if completion.state.len() > 200 || completion.code.as_ref().is_some_and(|c| c.len() > 2000) {
        return Err(ApiError::invalid_field(
            "state",
            "the state or code is too long",
        ));
    }
    let state_hash = token_hash(&SecretString::from(completion.state.clone()));
    // Spent here, whatever follows: a state works once.
    let claimed = sqlx::query!(
        "UPDATE chatwork_oauth_states SET used_at = now()
          WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now() AND admin_sub = $2
          RETURNING code_verifier, key_id, wrapped_key",
        &state_hash[..],
        caller.user_id,
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(claimed) = claimed else {
        let why = sqlx::query!(
            "SELECT used_at IS NOT NULL AS \"used!\", expires_at <= now() AS \"expired!\",
                    admin_sub <> $2 AS \"other!\"
               FROM chatwork_oauth_states WHERE state_hash = $1",
            &state_hash[..],
            caller.user_id,
        )
        .fetch_optional(&state.pool)
        .await?;
        let message = match why {
            None => "This sign-in with Chatwork is unknown here; start again",
            Some(w) if w.other => {
                "This sign-in with Chatwork was started by another admin; start your own"
            }
            Some(w) if w.used => "This sign-in with Chatwork was already completed; start again",
            Some(w) if w.expired => {
                "This sign-in with Chatwork took longer than 10 minutes; start again"
            }
            Some(_) => "This sign-in with Chatwork cannot be completed; start again",
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::OauthStateInvalid,
            message,
        )
        .with_field("state"));
    };
    if let Some(error) = completion.error.as_deref() {
        let shown: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(60)
            .collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::OauthRefused,
            format!("Chatwork did not connect the account ({shown})"),
        ));
    }
    let Some(code) = completion.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MissingField,
            "code or error is required",
        )
        .with_field("code"));
    };
    let verifier = cipher
        .open(
            &state_place(&state_hash),
            &claimed.code_verifier,
            &claimed.key_id,
            claimed.wrapped_key.as_deref(),
        )
        .await
        .map_err(|e| ApiError::unexpected("could not open a PKCE verifier", e))?;
    let granted = match endpoint.exchange(code, verifier.expose_secret()).await {
        Ok(granted) => granted,
        Err(GrantError::Refused { error, .. }) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::OauthRefused,
                format!("Chatwork refused the authorization code ({error}); start again"),
            ));
        }
        Err(GrantError::Unavailable { message }) => {
            tracing::warn!(error = %message, "Chatwork's token endpoint did not answer");
            return Err(chatwork_unavailable());
        }
    };
    let me = whoami(connections, &granted.access_token, true).await?;
    let expires_at =
        Utc::now() + chrono::Duration::from_std(granted.expires_in).unwrap_or_default();
    let made = save(
        &state,
        connections,
        &caller,
        &request_id,
        NewConnection {
            kind: "oauth",
            me: &me,
            connected_by: &caller.user_id,
            scopes: &granted.scope,
            access_token: &granted.access_token,
            refresh_token: granted.refresh_token.as_ref(),
            expires_at: Some(expires_at),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

fn chatwork_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::ChatworkUnavailable,
        "Chatwork could not be asked just now; try again",
    )
}

/// `GET /me` with a token being added.
async fn whoami(
    connections: &Connections,
    token: &SecretString,
    bearer: bool,
) -> Result<Me, ApiError> {
    let deadline = tokio::time::Instant::now() + CHATWORK_DEADLINE;
    match connections.whoami(token, bearer, deadline).await {
        Ok(me) if me.account_id > 0 => Ok(me),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::ChatworkUnavailable,
            "Chatwork named no account for the token",
        )),
        Err(e) if matches!(e.status(), Some(400..=499)) && e.status() != Some(429) => {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ChatworkTokenRefused,
                "Chatwork refused the token",
            )
            .with_field("token"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not ask Chatwork who a token is");
            Err(chatwork_unavailable())
        }
    }
}

/// Stores a connection, starts its rooms sync and audits it.
async fn save(
    state: &AppState,
    connections: &Connections,
    caller: &Caller,
    request_id: &RequestId,
    new: NewConnection<'_>,
) -> Result<Connected, ApiError> {
    let cipher = connections.cipher().ok_or_else(not_configured)?;
    let kind = new.kind;
    let (id, created) = match store::connect(&state.pool, cipher, new).await {
        Ok(made) => made,
        Err(store::SaveError::Db(e)) => return Err(e.into()),
        Err(store::SaveError::Cipher(e)) => {
            return Err(ApiError::unexpected(
                "could not seal a connection's token",
                e,
            ));
        }
    };
    let connection = store::get(&state.pool, id)
        .await?
        .ok_or_else(connection_not_found)?;
    audit::record(
        &state.pool,
        AuditEntry {
            caller,
            request_id,
            action: if created {
                "chatwork_connection.connect"
            } else {
                "chatwork_connection.reconnect"
            },
            resource_type: "chatwork_connection",
            resource_id: id.to_string(),
            old_values: None,
            new_values: Some(json!({
                "kind": kind,
                "accountId": connection.account_id,
                "accountName": connection.account_name,
                "scopes": connection.scopes,
            })),
        },
    )
    .await?;
    let started = jobs::start::<RoomsSync>(
        &state.pool,
        state.queues.as_ref(),
        &RoomsSyncPayload {
            connection_id: Some(id),
        },
        Some(&caller.user_id),
    )
    .await
    .map_err(|e| ApiError::unexpected("could not start a new connection's rooms sync", e))?;
    tracing::info!(connection = %id, account_id = ?connection.account_id, created, "a Chatwork account was connected");
    Ok(Connected {
        connection,
        reconnected: !created,
        rooms_sync_job_id: started.job.id,
    })
}

/// Disables a connection (nothing uses it) or enables it again.
#[utoipa::path(
    patch, path = "/api/chatwork/connections/{id}", operation_id = "updateChatworkConnection",
    tag = "connections",
    params(ConnectionPath),
    request_body = ConnectionChange,
    responses(
        (status = 200, description = "The connection as it is now", body = Connection),
        (status = 400, description = "A path parameter or the body cannot be read", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "It needs reconnecting, or was revoked", body = ErrorBody),
        (status = 422, description = "Not a status that can be set", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<ConnectionPath>,
    ApiJson(change): ApiJson<ConnectionChange>,
) -> Result<Json<Connection>, ApiError> {
    let before = store::get(&state.pool, path.id)
        .await?
        .ok_or_else(connection_not_found)?;
    let to = match change.status {
        ChangedStatus::Active => "active",
        ChangedStatus::Disabled => "disabled",
    };
    if to == "active" && !matches!(before.status.as_str(), "active" | "disabled") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ConnectionNeedsReconnect,
            "This connection must be connected again (its token was refused or revoked)",
        ));
    }
    let mut tx = state.pool.begin().await?;
    store::set_status(&mut *tx, path.id, to, None).await?;
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "chatwork_connection.update",
            resource_type: "chatwork_connection",
            resource_id: path.id.to_string(),
            old_values: Some(json!({"status": before.status})),
            new_values: Some(json!({"status": to})),
        },
    )
    .await?;
    tx.commit().await?;
    state.webhooks.forget().await;
    let after = store::get(&state.pool, path.id)
        .await?
        .ok_or_else(connection_not_found)?;
    Ok(Json(after))
}

/// Deletes a connection and its tokens; rooms only it saw stay, and are marked left by
/// the next rooms sync. Chatwork documents no revocation endpoint: the account's holder
/// removes cwsync's access under Chatwork's settings, and its refresh token dies with
/// this row. The bootstrap connection lives in a setting and cannot be deleted
/// (disable it, or unset `CHATWORK_API_TOKEN`).
#[utoipa::path(
    delete, path = "/api/chatwork/connections/{id}", operation_id = "deleteChatworkConnection",
    tag = "connections",
    params(ConnectionPath),
    responses(
        (status = 204, description = "Deleted, tokens included"),
        (status = 400, description = "A path parameter or the body cannot be read", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The bootstrap connection", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<ConnectionPath>,
) -> Result<StatusCode, ApiError> {
    let before = store::get(&state.pool, path.id)
        .await?
        .ok_or_else(connection_not_found)?;
    if before.bootstrap {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::BootstrapConnection,
            "The CHATWORK_API_TOKEN connection lives in a setting: disable it instead",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let deleted = sqlx::query!(
        "DELETE FROM chatwork_connections WHERE id = $1 AND NOT bootstrap",
        path.id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(connection_not_found());
    }
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "chatwork_connection.delete",
            resource_type: "chatwork_connection",
            resource_id: path.id.to_string(),
            old_values: Some(json!({
                "kind": before.kind,
                "accountId": before.account_id,
                "accountName": before.account_name,
                "status": before.status,
            })),
            new_values: None,
        },
    )
    .await?;
    tx.commit().await?;
    state.webhooks.forget().await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhookToken {
    /// The webhook's token as Chatwork shows it (base64), kept sealed.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub token: String,
}

impl std::fmt::Debug for NewWebhookToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhookToken").finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAdded {
    pub id: Uuid,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Path)]
pub(crate) struct WebhookPath {
    /// The connection's id.
    id: Uuid,
    /// The webhook token's id.
    #[param(rename = "webhookId")]
    webhook_id: Uuid,
}

/// Adds the token of a webhook the connection's account created in Chatwork: deliveries
/// signed with it are believed for that account's rooms only (read again within a minute).
#[utoipa::path(
    post, path = "/api/chatwork/connections/{id}/webhooks", operation_id = "addChatworkConnectionWebhook",
    tag = "connections",
    params(ConnectionPath),
    request_body = NewWebhookToken,
    responses(
        (status = 201, description = "Added", body = WebhookAdded),
        (status = 400, description = "A path parameter or the body cannot be read", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Five tokens already, this one is added, or no token key is configured here", body = ErrorBody),
        (status = 422, description = "Not a webhook token", body = ErrorBody),
    )
)]
pub(crate) async fn add_webhook(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<ConnectionPath>,
    ApiJson(new): ApiJson<NewWebhookToken>,
) -> Result<(StatusCode, Json<WebhookAdded>), ApiError> {
    let connections = connections(&state)?;
    let cipher = connections.cipher().ok_or_else(not_configured)?;
    let connection = store::get(&state.pool, path.id)
        .await?
        .ok_or_else(connection_not_found)?;
    if new.token.len() > 200 {
        return Err(ApiError::invalid_field(
            "token",
            "the token is at most 200 characters",
        ));
    }
    let token = SecretString::from(new.token);
    let id = match crate::connections::webhooks::add(
        &state.pool,
        cipher,
        connection.id,
        &token,
        &caller.user_id,
    )
    .await
    {
        Ok(id) => id,
        Err(e @ crate::connections::webhooks::AddError::NotBase64) => {
            return Err(ApiError::invalid_field("token", e.to_string()));
        }
        Err(e @ crate::connections::webhooks::AddError::Full) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::WebhookLimitReached,
                e.to_string(),
            ));
        }
        Err(e @ crate::connections::webhooks::AddError::Duplicate) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::WebhookAlreadyAdded,
                e.to_string(),
            ));
        }
        Err(crate::connections::webhooks::AddError::Db(e)) => return Err(e.into()),
        Err(crate::connections::webhooks::AddError::Cipher(e)) => {
            return Err(ApiError::unexpected("could not seal a webhook token", e));
        }
    };
    audit::record(
        &state.pool,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "chatwork_connection.webhook_add",
            resource_type: "chatwork_connection",
            resource_id: connection.id.to_string(),
            old_values: None,
            new_values: Some(json!({"webhookId": id})),
        },
    )
    .await?;
    state.webhooks.forget().await;
    Ok((StatusCode::CREATED, Json(WebhookAdded { id })))
}

/// Removes a connection's webhook token: its deliveries are refused from the next read of
/// the tokens (within a minute).
#[utoipa::path(
    delete, path = "/api/chatwork/connections/{id}/webhooks/{webhookId}",
    operation_id = "deleteChatworkConnectionWebhook", tag = "connections",
    params(WebhookPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A path parameter or the body cannot be read", body = ErrorBody),
        (status = 401, description = "No identity", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such connection or token", body = ErrorBody),
    )
)]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    Admin(caller): Admin,
    request_id: RequestId,
    ApiPath(path): ApiPath<WebhookPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let gone = sqlx::query!(
        "DELETE FROM chatwork_connection_webhooks WHERE id = $1 AND connection_id = $2",
        path.webhook_id,
        path.id,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if gone == 0 {
        return Err(ApiError::not_found(
            ErrorCode::ConnectionNotFound,
            "No such connection or webhook token",
        ));
    }
    audit::record(
        &mut *tx,
        AuditEntry {
            caller: &caller,
            request_id: &request_id,
            action: "chatwork_connection.webhook_delete",
            resource_type: "chatwork_connection",
            resource_id: path.id.to_string(),
            old_values: Some(json!({"webhookId": path.webhook_id})),
            new_values: None,
        },
    )
    .await?;
    tx.commit().await?;
    state.webhooks.forget().await;
    Ok(StatusCode::NO_CONTENT)
}
