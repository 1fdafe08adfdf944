//! The OpenAPI document of the API, generated from the handlers and types by `utoipa`:
//! [`ApiDoc`] holds what is not about one route (info, security, tags); the operations
//! come with the routes themselves ([`super::documented_routes`]).
//! It is served at `/api/openapi.json` and committed as `openapi.json` at the repository
//! root; a test fails when the committed file differs from what the code generates
//! (`CWSYNC_UPDATE_OPENAPI=1 cargo test -p cwsync openapi` rewrites it).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cwsync API",
        description = "Sync Chatwork rooms and messages, link rooms to companies, draft \
                       summaries, and watch the jobs that do it. Every route but \
                       /api/health, /api/openapi.json and /api/console/config needs a JWT \
                       whose role claim is admin, writer or reader. The admin console \
                       (HTML, outside this document) is served at /. Errors are \
                       {\"error\": {\"code\", \"message\", \"field\"?, \"requestId\"}}.",
    ),
    // The job results' parts, which the results' schemas (built in `job_types`) refer to.
    components(schemas(
        error::ErrorBody,
        crate::sync::messages::RoomOutcome,
        crate::sync::check::RoomCheckReport,
        crate::sync::messages::RoomFailure,
        crate::sync::messages::RoomGap,
        crate::sync::extras::ExtrasResult,
        crate::summary::DraftResult,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "chatwork", description = "Rooms, messages and the sync jobs (admins)"),
        (name = "connections", description = "The team's Chatwork accounts: API tokens and OAuth 2.0 (admins)"),
        (name = "companies", description = "Companies and their linked rooms"),
        (name = "summaries", description = "Summary drafts of a company's conversations"),
        (name = "jobs", description = "Watching and canceling jobs"),
        (name = "schedules", description = "The scheduled tasks: state, history, run now, pause (admins)"),
        (name = "operations", description = "Health and this document"),
        (name = "webhooks", description = "Chatwork's webhook deliveries (authenticated by their signature, not a JWT)"),
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
    let mut openapi = super::documented_routes().into_openapi();
    every_route_may_fail(&mut openapi);
    every_route_may_refuse_a_large_head(&mut openapi);
    let mut json = openapi
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

/// Every operation of the document.
fn operations_mut(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// A response whose body is our `ErrorBody`.
fn error_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Adds the 500 `internal` answer (the database down, a bug) to every operation that does
/// not state it: any route can give it, and a client must know its shape.
fn every_route_may_fail(openapi: &mut utoipa::openapi::OpenApi) {
    let internal = error_response(
        "Something failed on our side (`internal`); the cause is logged under the request id",
    );
    for operation in operations_mut(openapi) {
        operation
            .responses
            .responses
            .entry("500".to_owned())
            .or_insert_with(|| internal.clone().into());
    }
}

/// Adds the answers of `api::scope` to a request too large to be read (414
/// `uri_too_long`, 431 `headers_too_large`) to every operation, as responses of the
/// components: any route can give them, before it runs.
fn every_route_may_refuse_a_large_head(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    let refused = [
        (
            "414",
            "UriTooLong",
            format!(
                "The path and query are longer than {} bytes (`uri_too_long`)",
                super::MAX_URI_BYTES
            ),
        ),
        (
            "431",
            "HeadersTooLarge",
            format!(
                "The headers are more than {} or larger than {} bytes (`headers_too_large`)",
                super::MAX_HEADER_COUNT,
                super::MAX_HEADER_BYTES
            ),
        ),
    ];
    let components = openapi.components.get_or_insert_with(Default::default);
    for (_, name, description) in &refused {
        components
            .responses
            .insert((*name).to_owned(), RefOr::T(error_response(description)));
    }
    for operation in operations_mut(openapi) {
        for (status, name, _) in &refused {
            operation
                .responses
                .responses
                .entry((*status).to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
        }
    }
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
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;
    use crate::api::{AppState, AuthConfig};
    use crate::config::Env;
    use crate::queue::EmbeddedQueues;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// The router of the API, with a state whose database and queues are never reached:
    /// the probes below stop at routing.
    fn app() -> Router {
        let pool = sqlx::PgPool::connect_lazy("postgres://127.0.0.1:1/unused").unwrap();
        let queues = Arc::new(EmbeddedQueues::new(Default::default()));
        let auth = AuthConfig::api_gateway(&Env::default()).unwrap();
        super::super::router(AppState::new(pool, queues, auth))
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
        let schemas = parsed["components"]["schemas"].as_object().unwrap();
        let reference = regex_lite::Regex::new(r"#/components/schemas/(\w+)").unwrap();
        let dangling: BTreeSet<&str> = reference
            .captures_iter(&document)
            .map(|c| c.get(1).unwrap().as_str())
            .filter(|name| !schemas.contains_key(*name))
            .collect();
        assert!(dangling.is_empty(), "references to no schema: {dangling:?}");
        let responses = parsed["components"]["responses"].as_object().unwrap();
        let reference = regex_lite::Regex::new(r"#/components/responses/(\w+)").unwrap();
        let dangling: BTreeSet<&str> = reference
            .captures_iter(&document)
            .map(|c| c.get(1).unwrap().as_str())
            .filter(|name| !responses.contains_key(*name))
            .collect();
        assert!(
            dangling.is_empty(),
            "references to no response: {dangling:?}"
        );
    }

    /// What `app` routes that the document does not say, or says otherwise (the
    /// console's files aside, see `api::console`), and what the document says that `app`
    /// does not route: its paths
    /// (read from the router's `Debug`, as axum lists no routes otherwise; the fallback's
    /// answer 404 to anything) against the document's, and each path's methods (the
    /// `Allow` header of its 405 to a method no route has) against the document's
    /// operations.
    async fn undocumented(app: Router) -> Vec<String> {
        let document: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let documented = document["paths"].as_object().unwrap();
        let shown = format!("{app:?}");
        let route = regex_lite::Regex::new(r#"RouteId\(\d+\): "([^"]*)""#).unwrap();
        let routed: BTreeSet<&str> = route
            .captures_iter(&shown)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        assert!(
            routed.contains("/api/health"),
            "the router's paths could not be read from its Debug: {shown}"
        );
        let mut problems: Vec<String> = documented
            .keys()
            .filter(|path| !routed.contains(path.as_str()))
            .map(|path| format!("{path} is documented but not routed"))
            .collect();
        for path in routed {
            // The console's files are pages, not operations of the JSON API: they are
            // left out of the document on purpose, and only they may be.
            if crate::api::console::ASSET_PATHS.contains(&path) {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "1"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let probe = Request::builder()
                .method(Method::from_bytes(b"PROBE").unwrap())
                .uri(concrete)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(probe).await.unwrap();
            if response.status() == 404 {
                // The paths axum registers for the fallback, which answers every method.
                continue;
            }
            let Some(item) = documented.get(path) else {
                problems.push(format!("{path} is routed but not documented"));
                continue;
            };
            assert_eq!(response.status(), 405, "{path} answered PROBE");
            let allow = response.headers()["allow"].to_str().unwrap().to_lowercase();
            let mut allowed: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
            // axum answers HEAD wherever GET is routed.
            if allowed.contains("get") && !item.as_object().unwrap().contains_key("head") {
                allowed.remove("head");
            }
            let operations: BTreeSet<&str> = METHODS
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .collect();
            if allowed != operations {
                problems.push(format!(
                    "{path} routes {allowed:?} but documents {operations:?}"
                ));
            }
        }
        problems
    }

    #[tokio::test]
    async fn every_route_is_documented() {
        assert_eq!(undocumented(app()).await, Vec::<String>::new());
    }

    /// The check above sees a new path and a new method on a documented path.
    #[tokio::test]
    async fn a_route_added_without_documentation_is_found() {
        let app = app()
            .route("/api/extra", get(|| async {}))
            .route("/api/health", post(|| async {}))
            .route("/console/extra.js", get(|| async {}));
        assert_eq!(
            undocumented(app).await,
            [
                "/api/extra is routed but not documented",
                r#"/api/health routes {"get", "post"} but documents {"get"}"#,
                "/console/extra.js is routed but not documented",
            ]
        );
    }

    /// The committed `openapi.json` is what the code generates. Set
    /// `CWSYNC_UPDATE_OPENAPI=1` to rewrite it after changing the API.
    #[test]
    fn the_committed_openapi_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
        let generated = document();
        if Env::from_process().get("CWSYNC_UPDATE_OPENAPI").is_some() {
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
