//! The Chatwork API v2 client and the token's shared rate budget (docs/architecture.md,
//! "Chatwork's rate budget and outage breaker").
//!
//! - [`ChatworkClient`]: `list_rooms`, `get_room`, `list_messages(room, options)`,
//!   `list_tasks`, `list_files`, `file_download_url`, `list_members`, typed [`models`],
//!   one error type [`ChatworkError`]; `download` of a file's download URL, outside the
//!   budget and size-capped. Built once per process from
//!   [`ClientSettings`] and a Postgres pool, and shared; [`ChatworkClient::metered`] gives
//!   a handler a clone whose requests it can count ([`RequestMeter`]).
//! - [`budget`]: the rate budget every process using the same token shares.
//! - [`breaker`]: the outage breaker every process using the same token shares: after
//!   repeated 5xx or timeouts, one probe per interval and every other call fails fast
//!   with [`ChatworkError::Unavailable`].
//!
//! # A call
//!
//! Every call takes the caller's `deadline` (a Lambda's remaining time less a margin).
//! For each attempt the client first reserves a unit of the shared budget, waiting if the
//! window is spent; then sends the request (token in `X-ChatWorkToken`, never in the URL;
//! redirects are not followed, so the header cannot travel elsewhere) with a timeout of
//! `min(request timeout, time left)`; then records the answer's `x-ratelimit-*` headers in
//! the budget, whatever the outcome. 5xx answers, network errors and timeouts are retried
//! with exponential backoff and jitter, bounded by attempts, by total time and by the
//! deadline; 400/401/403/404 are not. A 429 is not an attempt: it marks the shared
//! window spent until the reset it reports, and the call waits for that reset before
//! its next reservation (never a short backoff). No wait ever passes the
//! deadline: a budget that opens only after it makes the call return
//! [`ChatworkError::RateLimited`] `{ until }` at once, so the caller can hand the work back
//! to its queue instead of failing it.
//!
//! # The shared budget, in short
//!
//! Chatwork allows 300 requests per 5 minutes per token and says so in every answer's
//! headers; many consumers share one token. The budget is one Postgres row per token
//! (keyed by the token's SHA-256) modelling Chatwork's current window. Before a request is
//! sent, one atomic upsert takes a unit (and rolls the window over by itself once its
//! reset has passed, so no crashed process can hold budget beyond the next window); after
//! the answer, one atomic update corrects the row from the headers, taking the window's
//! identity from `x-ratelimit-reset` so that an old answer never overwrites a newer
//! window. The details are in [`budget`]; the decisions that make "zero 429s at >= 95 %
//! of the allowed rate" hold are these:
//!
//! - **Before the first answer the limit is unknown**: the budget starts as a probe that
//!   allows exactly one request; its answer reports the real limit, remaining and reset,
//!   and the other processes (polling every 100 ms meanwhile) proceed from there. A
//!   probe that fails without an answer gives its unit back; one that hangs frees the
//!   budget after the request timeout.
//! - **Clock skew**: the reset is converted to the database's clock (the one clock all
//!   processes share) as `now() + (x-ratelimit-reset - Date)`, using Chatwork's own
//!   `Date` header, which can only overestimate the true reset; the tightest estimate of
//!   the window is kept, and a margin (1 s by default) covers the unknown rounding of the
//!   one-second reset header. Waiting a little too long costs under 1 % of a 5-minute
//!   window; opening a window too early would cost 429s.
//! - **Requests in flight when a window rolls over** may be counted by Chatwork in the
//!   new window. The row counts reservations in flight per window; at a roll-over those
//!   still in flight are carried as already spent in the new window, and given back if
//!   their answer shows Chatwork counted them in the old one. An answer that shows
//!   Chatwork already in a later window than ours moves the row to that window at once.
//! - **Headers correct, they do not inflate**: within a window the row's `remaining`
//!   only goes down (when Chatwork reports less left than we think, because someone else
//!   uses the token), so reordered answers cannot hand out units twice.
//! - **Chatwork's word over the row's belief**: a 429 sets the row spent until the
//!   reset it reports, and a fresh answer (to a request of the row's current window)
//!   that names another window, earlier or later, moves the row there; only late
//!   answers to requests of an older window are ignored. A wrong belief (a window that
//!   changed, another program on the token) costs at most one 429 per request in
//!   flight, then none.
//!
//! # Metrics
//!
//! `chatwork_requests` counts every request sent, labelled `status` with the HTTP status
//! or `timeout` / `network` when no answer came; `chatwork_rate_limit_waits` counts the
//! calls that waited for the budget (or a 429's reset) and `chatwork_rate_limit_wait_ms`
//! records how long; `chatwork_unavailable` counts the calls the open outage breaker
//! failed fast; `chatwork_rate_reset_capped` the resets cut to one window,
//! `chatwork_answers_too_large` the answers over their endpoint's cap and
//! `chatwork_text_replaced` (by `source`) the NUL characters stored as U+FFFD (what
//! cwsync does not believe of Chatwork: docs/architecture.md, "Chatwork's rate budget
//! and outage breaker"). Rooms are never labels (each label value would be a CloudWatch
//! dimension of its own); they go in log fields.
//!
//! # Measured
//!
//! `cargo run --release -p cwsync-tests --example chatwork_budget_bench -- --clients N`
//! (N processes with two callers each, as fast as the budget allows, against the fake
//! with 100 requests per 30 s): zero 429s for N = 1, 3 and 5, in every variant tried;
//! the rate sustained is 96.8 % of the allowed rate with the default 1 s margin (each
//! window starts a margin after the last one's reset: 30 s of every 31 s), 100 % with
//! no margin, 96.7 to 97.1 % when the reset header is rounded down (the case the margin
//! exists for) and 96.8 % with 100 ms of latency. With Chatwork's real 5-minute window
//! the margin costs 1 s in 301 s: 99.7 %.

mod attempt;
pub mod breaker;
pub mod budget;
mod client;
mod config;
mod download;
mod error;
mod meter;
pub mod models;
mod tls;

pub use breaker::{BreakerSettings, OutageBreaker};
pub use budget::{RateBudget, token_hash};
pub use client::{
    ChatworkClient, ClientSettings, ConnectionAuth, LIMITATION_HEADER, Listed, MessagesOptions,
    SourcedToken, TasksFilter, TokenSource,
};
pub(crate) use client::{DeferredRecord, GrantGuard};
pub use config::ChatworkConfig;
pub use download::{DownloadError, Downloaded};
pub use error::{ChatworkError, MAX_MESSAGE_CHARS};
pub use meter::{RequestMeter, RequestStats};
pub use models::{
    AccountRef, FileDownload, FileInfo, LISTED_PER_REQUEST, LimitType, MESSAGES_PER_REQUEST, Me,
    Member, Message, MessageAccount, Room, RoomDetail, RoomType, Task, TaskStatus,
    compare_message_ids, is_message_id, latest_message_id,
};
pub(crate) use tls::client_config as tls_client_config;
