//! The OpenAPI document of the API, generated from the handlers and types by `utoipa`.
//! It is served at `/api/openapi.json` and committed as `openapi.json` at the repository
//! root; a test fails when the committed file differs from what the code generates
//! (`CWSYNC_UPDATE_OPENAPI=1 cargo test -p cwsync openapi` rewrites it).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{companies, error, health, jobs, rooms, status, summaries, sync};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cwsync API",
        description = "Sync Chatwork rooms and messages, link rooms to companies, draft \
                       summaries, and watch the jobs that do it. Every route but \
                       /api/health and /api/openapi.json needs a JWT whose role claim is \
                       admin, writer or reader. Errors are \
                       {\"error\": {\"code\", \"message\", \"field\"?, \"requestId\"}}.",
    ),
    paths(
        health::health,
        serve,
        rooms::list,
        rooms::update,
        rooms::messages,
        sync::rooms,
        sync::messages,
        status::get,
        companies::list,
        companies::create,
        companies::rooms,
        companies::link,
        companies::unlink,
        summaries::draft,
        summaries::list,
        jobs::list,
        jobs::get,
        jobs::cancel,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "chatwork", description = "Rooms, messages and the sync jobs (admins)"),
        (name = "companies", description = "Companies and their linked rooms"),
        (name = "summaries", description = "Summary drafts of a company's conversations"),
        (name = "jobs", description = "Watching and canceling jobs"),
        (name = "operations", description = "Health and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "In AWS, API Gateway's JWT authorizer verifies the token; locally, an \
                         HS256 token signed with LOCAL_JWT_SECRET.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a final newline, as committed.
pub fn document() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

static DOCUMENT: LazyLock<String> = LazyLock::new(document);

/// This document.
#[utoipa::path(
    get, path = "/api/openapi.json", operation_id = "openApiDocument", tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json"))
)]
pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed `openapi.json` is what the code generates. Set
    /// `CWSYNC_UPDATE_OPENAPI=1` to rewrite it after changing the API.
    #[test]
    fn the_committed_openapi_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
        let generated = document();
        if std::env::var_os("CWSYNC_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write openapi.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi.json is not what the code generates; run \
             `CWSYNC_UPDATE_OPENAPI=1 cargo test -p cwsync openapi` and commit it"
        );
    }
}
