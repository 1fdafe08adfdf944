//! The HTTP face of the fake: Chatwork's routes and JSON shapes, with every API request
//! passing a gate that does what Chatwork's front does (token or OAuth access token, the
//! account's rate budget, room membership) and what a test asked for (latency, faults).
//! The OAuth pages live beside the API, outside the gate (see `oauth_http`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::model::{
    Account, Fault, File, LimitType, Member, RateLimitState, RequestRecord, Room, RoomAccess, Task,
    TaskStatus,
};
use crate::state::{Admission, Caller, Credential, Refused, State};

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the state half-changed in a way that
    // matters to a fake; keep serving.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v2/me", get(me))
        .route("/v2/rooms", get(list_rooms))
        .route("/v2/rooms/{room_id}", get(get_room))
        .route("/v2/rooms/{room_id}/messages", get(list_messages))
        .route("/v2/rooms/{room_id}/tasks", get(list_tasks))
        .route("/v2/rooms/{room_id}/files", get(list_files))
        .route("/v2/rooms/{room_id}/files/{file_id}", get(get_file))
        .route("/v2/rooms/{room_id}/members", get(list_members))
        .fallback(|| async { errors(StatusCode::NOT_FOUND, "Resource not found") })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared.clone())
        // Download URLs stand for presigned storage URLs: outside the API and its gate
        // (no token, no rate budget).
        .route(
            &format!("{DOWNLOAD_PATH}/{{secret}}"),
            get(download).with_state(shared.clone()),
        )
        .merge(crate::oauth_http::router(shared))
}

pub(crate) fn errors(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": [message] }))).into_response()
}

/// The credential a request carries: `X-ChatWorkToken` first, else a Bearer token.
fn credential(headers: &HeaderMap) -> Credential {
    if let Some(token) = headers.get("x-chatworktoken") {
        return match token.to_str() {
            Ok(t) => Credential::ApiToken(t.to_owned()),
            Err(_) => Credential::None,
        };
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    match bearer {
        Some(token) if !token.is_empty() => Credential::Bearer(token),
        _ => Credential::None,
    }
}

/// The 401 for a refused credential, as Chatwork words it.
fn unauthorized(refused: Refused) -> Response {
    match refused {
        Refused::ApiToken => errors(
            StatusCode::UNAUTHORIZED,
            "Invalid API token. Please check the value of X-ChatWorkToken.",
        ),
        Refused::Bearer { expired } => {
            let (header, message) = if expired {
                (
                    r#"Bearer error="invalid_token", error_description="The access token expired""#,
                    "The access token expired",
                )
            } else {
                (
                    r#"Bearer error="invalid_token", error_description="The access token is invalid""#,
                    "Invalid access token",
                )
            };
            let mut response = errors(StatusCode::UNAUTHORIZED, message);
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(header),
            );
            response
        }
    }
}

/// A 403 when the caller's grant does not allow `needed` (API tokens allow everything).
fn scope_refusal(caller: &Caller, needed: &'static str) -> Option<Response> {
    match &caller.scopes {
        Some(scopes) if !scopes.allows(needed) => {
            let mut response = errors(
                StatusCode::FORBIDDEN,
                "The access token does not have the scope required for this request",
            );
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
            );
            Some(response)
        }
        _ => None,
    }
}

fn room_id_in(path: &str) -> Option<i64> {
    let rest = path.strip_prefix("/v2/rooms/")?;
    rest.split('/').next()?.parse().ok()
}

fn set_rate_headers(headers: &mut HeaderMap, state: RateLimitState) {
    for (name, value) in [
        ("x-ratelimit-limit", i64::from(state.limit)),
        ("x-ratelimit-remaining", i64::from(state.remaining)),
        ("x-ratelimit-reset", state.reset),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

async fn gate(AxumState(shared): AxumState<Shared>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let room_id = room_id_in(&path);
    let credential = credential(req.headers());
    let (index, latency, fault) = {
        let mut state = lock(&shared);
        let caller = state.authenticate(&credential).ok();
        let record = RequestRecord {
            method: req.method().to_string(),
            path: path.clone(),
            query: req.uri().query().map(str::to_owned),
            token_valid: caller.is_some(),
            account_id: caller.map(|c| c.account_id),
            status: None,
            at: SystemTime::now(),
        };
        state.arrive(record, room_id)
    };
    let finish = |status: StatusCode| lock(&shared).finish(index, status.as_u16());

    // The way in: latency the test added, before anything is counted.
    let mut delay = latency;
    if let Some(Fault::Delay(extra)) = fault {
        delay += extra;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    // Checked again after the delay: an access token may have expired meanwhile.
    let authenticated = lock(&shared).authenticate(&credential);
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(refused) => {
            // No window to report for a token the fake does not know.
            finish(StatusCode::UNAUTHORIZED);
            return unauthorized(refused);
        }
    };

    let admission = lock(&shared).admit(&caller.principal);
    let mut rate = match admission {
        Admission::Limited(rate) => {
            let mut response = errors(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded the maximum number of API requests. Please try again later.",
            );
            set_rate_headers(response.headers_mut(), rate);
            finish(StatusCode::TOO_MANY_REQUESTS);
            return response;
        }
        Admission::Counted(rate) => rate,
    };

    if let Some(Fault::SpentFor { ahead, refused }) = fault {
        rate.remaining = 0;
        rate.reset = crate::clock::now_secs().saturating_add(ahead.as_secs() as i64);
        if refused {
            let mut response = errors(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded the maximum number of API requests. Please try again later.",
            );
            set_rate_headers(response.headers_mut(), rate);
            finish(StatusCode::TOO_MANY_REQUESTS);
            return response;
        }
    }
    let mut response = match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            errors(status, "Injected fault")
        }
        Some(Fault::Garbage(bytes)) => garbage(lock(&shared).garbage_sent.clone(), bytes),
        _ => {
            if let Some(Fault::Hang(hold)) = fault {
                tokio::time::sleep(hold).await;
            }
            let (access, member) = match room_id {
                Some(id) => {
                    let state = lock(&shared);
                    (
                        state.rooms.get(&id).map(|r| r.access),
                        state.is_member(caller.account_id, id),
                    )
                }
                None => (None, true),
            };
            match access {
                Some(RoomAccess::Gone) => errors(StatusCode::NOT_FOUND, "Room not found"),
                Some(RoomAccess::Forbidden) => errors(
                    StatusCode::FORBIDDEN,
                    "You don't have permission to access this room",
                ),
                // A room that exists, of which the account is not a member.
                Some(RoomAccess::Open) if !member => errors(
                    StatusCode::FORBIDDEN,
                    "You don't have permission to get this room",
                ),
                _ => {
                    req.extensions_mut().insert(caller);
                    next.run(req).await
                }
            }
        }
    };
    set_rate_headers(response.headers_mut(), rate);
    if response.status().is_success() {
        let limitation = lock(&shared).message_limitation.clone();
        if let Some(summary) = limitation.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            let headers = response.headers_mut();
            headers.insert(
                "chatwork-message-limitation",
                HeaderValue::from_static("true"),
            );
            headers.insert("chatwork-message-limitation-summary", summary);
        }
    }
    finish(response.status());
    response
}

/// `bytes` of garbage, produced a chunk at a time as the client reads them.
fn garbage(sent: Arc<AtomicU64>, bytes: usize) -> Response {
    const CHUNK: usize = 64 << 10;
    let chunks = futures_util::stream::unfold(bytes, move |left| {
        let sent = sent.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(CHUNK);
            sent.fetch_add(n as u64, Ordering::Relaxed);
            let chunk = axum::body::Bytes::from(b"garbage ".repeat(n.div_ceil(8))).slice(..n);
            Some((Ok::<_, std::io::Error>(chunk), left - n))
        }
    });
    Response::new(axum::body::Body::from_stream(chunks))
}

fn room_json(room: &Room, detail: bool) -> Value {
    let mut value = json!({
        "room_id": room.room_id,
        "name": room.name,
        "type": room.room_type,
        "role": room.role,
        "sticky": room.sticky,
        "unread_num": 0,
        "mention_num": 0,
        "mytask_num": 0,
        "message_num": room.messages.len(),
        "file_num": room.files.len(),
        "task_num": room.tasks.iter().filter(|t| t.status == TaskStatus::Open).count(),
        "icon_path": room.icon_path,
        "last_update_time": room.last_update_time,
    });
    if detail {
        value["description"] = json!(room.description);
    }
    value
}

async fn me(
    AxumState(shared): AxumState<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    if let Some(refused) = scope_refusal(&caller, "users.profile.me:read") {
        return refused;
    }
    let state = lock(&shared);
    let Some(account) = state.accounts.get(&caller.account_id) else {
        return errors(StatusCode::NOT_FOUND, "Account not found");
    };
    // The account's own "my chat", when it has one.
    let my_room = account
        .rooms
        .iter()
        .filter_map(|id| state.rooms.get(id))
        .find(|r| r.room.room_type == crate::model::RoomType::My)
        .map_or(0, |r| r.room.room_id);
    let info = &account.info;
    let author = info.as_author();
    axum::Json(json!({
        "account_id": info.account_id,
        "room_id": my_room,
        "name": info.name,
        "chatwork_id": "",
        "organization_id": info.organization_id,
        "organization_name": info.organization_name,
        "department": "",
        "title": "",
        "url": "",
        "introduction": "",
        "mail": "",
        "tel_organization": "",
        "tel_extension": "",
        "tel_mobile": "",
        "skype": "",
        "facebook": "",
        "twitter": "",
        "avatar_image_url": author.avatar_image_url,
        "login_mail": format!("user{}@example.com", info.account_id),
    }))
    .into_response()
}

async fn list_rooms(
    AxumState(shared): AxumState<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    if let Some(refused) = scope_refusal(&caller, "rooms.info:read") {
        return refused;
    }
    let state = lock(&shared);
    let rooms: Vec<Value> = state
        .rooms
        .values()
        .filter(|r| r.access != RoomAccess::Gone)
        .filter(|r| state.is_member(caller.account_id, r.room.room_id))
        .map(|r| room_json(&r.room, false))
        .collect();
    axum::Json(rooms).into_response()
}

fn parse_room_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

fn invalid_room_id() -> Response {
    errors(StatusCode::BAD_REQUEST, "Invalid room_id")
}

async fn get_room(
    AxumState(shared): AxumState<Shared>,
    Path(raw): Path<String>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let Some(room_id) = parse_room_id(&raw) else {
        return invalid_room_id();
    };
    if let Some(refused) = scope_refusal(&caller, "rooms.info:read") {
        return refused;
    }
    match lock(&shared).rooms.get(&room_id) {
        Some(stored) => axum::Json(room_json(&stored.room, true)).into_response(),
        None => errors(StatusCode::NOT_FOUND, "Room not found"),
    }
}

async fn list_messages(
    AxumState(shared): AxumState<Shared>,
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let Some(room_id) = parse_room_id(&raw) else {
        return invalid_room_id();
    };
    if let Some(refused) = scope_refusal(&caller, "rooms.messages:read") {
        return refused;
    }
    let force = match query.get("force").map(String::as_str) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return errors(StatusCode::BAD_REQUEST, "Invalid value for force"),
    };
    let mut state = lock(&shared);
    if !state.rooms.contains_key(&room_id) {
        return errors(StatusCode::NOT_FOUND, "Room not found");
    }
    let messages = state.fetch_messages(&caller.principal, room_id, force);
    drop(state);
    if messages.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let body: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "message_id": m.message_id,
                "account": m.account,
                "body": m.body,
                "send_time": m.send_time,
                "update_time": m.update_time,
            })
        })
        .collect();
    axum::Json(body).into_response()
}

/// Where download URLs point (`/downloads/<secret>` on the fake's port).
pub(crate) const DOWNLOAD_PATH: &str = "/downloads";

/// Chatwork answers at most this many tasks or files per request.
pub const MAX_LISTED: usize = 100;

fn account_json(account: &Account) -> Value {
    json!({
        "account_id": account.account_id,
        "name": account.name,
        "avatar_image_url": account.avatar_image_url,
    })
}

fn task_json(task: &Task) -> Value {
    json!({
        "task_id": task.task_id,
        "account": account_json(&task.account),
        "assigned_by_account": account_json(&task.assigned_by),
        "message_id": task.message_id,
        "body": task.body,
        "limit_time": if task.limit_type == LimitType::None { 0 } else { task.limit_time },
        "status": task.status,
        "limit_type": task.limit_type,
    })
}

fn file_json(file: &File) -> Value {
    json!({
        "file_id": file.file_id,
        "account": account_json(&file.account),
        "message_id": file.message_id,
        "filename": file.filename,
        "filesize": file.filesize(),
        "upload_time": file.upload_time,
    })
}

fn member_json(member: &Member) -> Value {
    json!({
        "account_id": member.account.account_id,
        "role": member.role,
        "name": member.account.name,
        "chatwork_id": member.chatwork_id,
        "organization_id": member.organization_id,
        "organization_name": member.organization_name,
        "department": member.department,
        "avatar_image_url": member.account.avatar_image_url,
    })
}

/// A numeric filter of the query: absent, valid, or (`Err`) the name of a malformed one,
/// which Chatwork answers with a 400.
fn id_filter<'a>(query: &HashMap<String, String>, name: &'a str) -> Result<Option<i64>, &'a str> {
    match query.get(name) {
        None => Ok(None),
        Some(raw) => raw.parse::<i64>().map(Some).map_err(|_| name),
    }
}

fn invalid_value(name: &str) -> Response {
    errors(
        StatusCode::BAD_REQUEST,
        &format!("Invalid value for {name}"),
    )
}

/// A list answer: 204 with no body when empty, as Chatwork does.
fn list_answer(values: Vec<Value>) -> Response {
    if values.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        axum::Json(values).into_response()
    }
}

async fn list_tasks(
    AxumState(shared): AxumState<Shared>,
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let Some(room_id) = parse_room_id(&raw) else {
        return invalid_room_id();
    };
    if let Some(refused) = scope_refusal(&caller, "rooms.tasks:read") {
        return refused;
    }
    let status = match query.get("status").map(String::as_str) {
        None => None,
        Some("open") => Some(TaskStatus::Open),
        Some("done") => Some(TaskStatus::Done),
        Some(_) => return errors(StatusCode::BAD_REQUEST, "Invalid value for status"),
    };
    let (account, assigned_by) = match (
        id_filter(&query, "account_id"),
        id_filter(&query, "assigned_by_account_id"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(name), _) | (_, Err(name)) => return invalid_value(name),
    };
    let state = lock(&shared);
    let Some(stored) = state.rooms.get(&room_id) else {
        return errors(StatusCode::NOT_FOUND, "Room not found");
    };
    let tasks = stored
        .room
        .tasks
        .iter()
        .filter(|t| status.is_none_or(|s| t.status == s))
        .filter(|t| account.is_none_or(|a| t.account.account_id == a))
        .filter(|t| assigned_by.is_none_or(|a| t.assigned_by.account_id == a))
        .take(MAX_LISTED)
        .map(task_json)
        .collect();
    list_answer(tasks)
}

async fn list_files(
    AxumState(shared): AxumState<Shared>,
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let Some(room_id) = parse_room_id(&raw) else {
        return invalid_room_id();
    };
    if let Some(refused) = scope_refusal(&caller, "rooms.files:read") {
        return refused;
    }
    let account = match id_filter(&query, "account_id") {
        Ok(a) => a,
        Err(name) => return invalid_value(name),
    };
    let state = lock(&shared);
    let Some(stored) = state.rooms.get(&room_id) else {
        return errors(StatusCode::NOT_FOUND, "Room not found");
    };
    let files = stored
        .room
        .files
        .iter()
        .filter(|f| account.is_none_or(|a| f.account.account_id == a))
        .take(MAX_LISTED)
        .map(file_json)
        .collect();
    list_answer(files)
}

async fn get_file(
    AxumState(shared): AxumState<Shared>,
    Path((raw, raw_file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let Some(room_id) = parse_room_id(&raw) else {
        return invalid_room_id();
    };
    let Some(file_id) = raw_file.parse::<i64>().ok().filter(|id| *id > 0) else {
        return errors(StatusCode::BAD_REQUEST, "Invalid file_id");
    };
    if let Some(refused) = scope_refusal(&caller, "rooms.files:read") {
        return refused;
    }
    let create = match query.get("create_download_url").map(String::as_str) {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => {
            return errors(
                StatusCode::BAD_REQUEST,
                "Invalid value for create_download_url",
            );
        }
    };
    let mut state = lock(&shared);
    let Some(file) = state
        .rooms
        .get(&room_id)
        .and_then(|r| r.room.files.iter().find(|f| f.file_id == file_id))
    else {
        return errors(StatusCode::NOT_FOUND, "File not found");
    };
    let mut value = file_json(file);
    if create && let Some(secret) = state.issue_download(room_id, file_id) {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        value["download_url"] = json!(format!("http://{host}{DOWNLOAD_PATH}/{secret}"));
    }
    axum::Json(value).into_response()
}

async fn list_members(
    AxumState(shared): AxumState<Shared>,
    Path(raw): Path<String>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let Some(room_id) = parse_room_id(&raw) else {
        return invalid_room_id();
    };
    if let Some(refused) = scope_refusal(&caller, "rooms.members:read") {
        return refused;
    }
    let state = lock(&shared);
    if !state.rooms.contains_key(&room_id) {
        return errors(StatusCode::NOT_FOUND, "Room not found");
    }
    let members: Vec<Value> = state
        .room_members(room_id)
        .iter()
        .map(member_json)
        .collect();
    axum::Json(members).into_response()
}

/// A download URL: the bytes while it is valid, else a 403 as a presigned S3 URL answers
/// (XML, not Chatwork's JSON).
async fn download(AxumState(shared): AxumState<Shared>, Path(secret): Path<String>) -> Response {
    match lock(&shared).download(&secret) {
        Some(bytes) => (
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::FORBIDDEN,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            )],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )
            .into_response(),
    }
}
