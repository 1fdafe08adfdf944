//! Bad input of every kind gets a JSON 4xx with a stable code naming the field, never a
//! 5xx: malformed JSON, wrong types, unknown fields, oversize bodies, SQL metacharacters
//! and unicode, non-numeric and negative ids, bad queries and dates.

use cwsync_tests::{Body, Who};
use serde_json::{Value, json};

use super::{Api, seed};
use crate::both_ways;

struct Case {
    method: &'static str,
    path: String,
    body: Option<Body>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    body: Option<Body>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        status,
        code,
        field,
    }
}

fn json_body(value: Value) -> Option<Body> {
    Some(Body::Json(value))
}

fn raw(content_type: Option<&str>, bytes: impl Into<Vec<u8>>) -> Option<Body> {
    Some(Body::Raw {
        content_type: content_type.map(str::to_owned),
        bytes: bytes.into(),
    })
}

fn json_text(text: &str) -> Option<Body> {
    raw(Some("application/json"), text)
}

async fn bad_input_is_a_json_4xx_naming_the_field(app: &impl Api) {
    let pool = app.pool();
    let company = seed::company(pool, "Acme").await;
    let room = seed::room(pool, 101, "Sales").await;
    let company_rooms = format!("/api/companies/{company}/chatwork-rooms");
    let draft = format!("/api/companies/{company}/summaries/draft");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_name = "あ".repeat(30_000); // 90 KB of UTF-8
    #[rustfmt::skip]
    let cases = vec![
        // Malformed JSON and bodies that are not JSON.
        case("POST", "/api/companies", json_text(r#"{"name": "#), 400, "invalid_json", None),
        case("POST", "/api/companies", json_text(r#"{"name": "a"} trailing"#), 400, "invalid_json", None),
        case("POST", "/api/companies", json_text("{'name': 'a'}"), 400, "invalid_json", None),
        case("POST", "/api/companies", raw(Some("application/json"), vec![0xff, 0xfe, 0x7b]), 400, "invalid_json", None),
        case("POST", "/api/companies", None, 400, "invalid_json", None),
        case("POST", "/api/companies", raw(Some("text/plain"), r#"{"name": "a"}"#), 415, "unsupported_media_type", None),
        case("POST", "/api/companies", raw(None, r#"{"name": "a"}"#), 415, "unsupported_media_type", None),
        case("POST", "/api/companies", raw(Some("application/x-www-form-urlencoded"), "name=a"), 415, "unsupported_media_type", None),
        // Deep nesting is well-formed JSON, but not the object a body must be.
        case("POST", "/api/companies", json_text(&nested), 422, "invalid_field", Some("body")),
        case("POST", "/api/companies", json_text(&format!(r#"{{"name": {nested}}}"#)), 422, "invalid_field", Some("name")),
        case("POST", "/api/companies", json_text(&format!(r#"{{"name": "a", "x": {nested}}}"#)), 422, "unknown_field", Some("x")),
        // Wrong types, missing and unknown fields, non-objects.
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!({"isActive": "yes"})), 422, "invalid_field", Some("isActive")),
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!({"isActive": 1})), 422, "invalid_field", Some("isActive")),
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!({"isActive": null})), 422, "invalid_field", Some("isActive")),
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!({})), 422, "missing_field", Some("isActive")),
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!({"isActive": true, "name": "x"})), 422, "unknown_field", Some("name")),
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!({"is_active": true})), 422, "unknown_field", Some("is_active")),
        case("PATCH", "/api/chatwork/rooms/101", json_body(json!([true])), 422, "invalid_field", Some("body")),
        case("PATCH", "/api/chatwork/rooms/101", json_text("null"), 422, "invalid_field", Some("body")),
        case("POST", "/api/chatwork/rooms/sync", json_body(json!({"force": true})), 422, "unknown_field", Some("force")),
        case("POST", "/api/chatwork/messages/sync", json_body(json!({"roomId": "101"})), 422, "invalid_field", Some("roomId")),
        case("POST", "/api/chatwork/messages/sync", json_body(json!({"roomId": -5})), 422, "invalid_field", Some("roomId")),
        case("POST", "/api/chatwork/messages/sync", json_body(json!({"roomId": 0})), 422, "invalid_field", Some("roomId")),
        case("POST", "/api/chatwork/messages/sync", json_body(json!({"roomId": 1.5})), 422, "invalid_field", Some("roomId")),
        case("POST", "/api/chatwork/messages/sync", json_text(r#"{"roomId": 99999999999999999999999}"#), 422, "invalid_field", Some("roomId")),
        case("POST", "/api/chatwork/messages/sync", json_body(json!({"roomId": 999})), 404, "room_not_found", None),
        case("POST", "/api/companies", json_body(json!({})), 422, "missing_field", Some("name")),
        case("POST", "/api/companies", json_body(json!({"name": 5})), 422, "invalid_field", Some("name")),
        case("POST", "/api/companies", json_body(json!({"name": "   "})), 422, "invalid_field", Some("name")),
        case("POST", "/api/companies", json_body(json!({"name": "a".repeat(201)})), 422, "invalid_field", Some("name")),
        case("POST", "/api/companies", json_body(json!({"name": "nul\u{0}byte"})), 422, "invalid_field", Some("name")),
        case("POST", "/api/companies", json_body(json!({"name": "line\nbreak"})), 422, "invalid_field", Some("name")),
        case("POST", "/api/companies", json_body(json!({"name": "a", "id": "00000000-0000-0000-0000-000000000000"})), 422, "unknown_field", Some("id")),
        // Oversize bodies.
        case("POST", "/api/companies", json_body(json!({"name": huge_name})), 413, "payload_too_large", None),
        case("POST", "/api/chatwork/rooms/sync", json_body(json!({"pad": "x".repeat(70_000)})), 413, "payload_too_large", None),
        // Links: exactly one room id, each valid.
        case("POST", &company_rooms, json_body(json!({"roomId": 101, "chatworkRoomId": room.id})), 422, "invalid_field", Some("roomId")),
        case("POST", &company_rooms, json_body(json!({})), 422, "invalid_field", Some("roomId")),
        case("POST", &company_rooms, json_body(json!({"chatworkRoomId": "room-1"})), 422, "invalid_field", Some("chatworkRoomId")),
        case("POST", &company_rooms, json_body(json!({"roomId": -101})), 422, "invalid_field", Some("roomId")),
        // Dates.
        case("POST", &draft, json_body(json!({"periodStart": "yesterday", "periodEnd": "2025-01-02T00:00:00Z"})), 422, "invalid_field", Some("periodStart")),
        case("POST", &draft, json_body(json!({"periodStart": "2025-01-01", "periodEnd": "2025-01-02T00:00:00Z"})), 422, "invalid_field", Some("periodStart")),
        case("POST", &draft, json_body(json!({"periodStart": "2025-02-01T00:00:00Z", "periodEnd": "2025-01-01T00:00:00Z"})), 422, "invalid_field", Some("periodEnd")),
        case("POST", &draft, json_body(json!({"periodStart": "2025-01-01T00:00:00Z", "periodEnd": "2025-01-01T00:00:00Z"})), 422, "invalid_field", Some("periodEnd")),
        case("POST", &draft, json_body(json!({"periodStart": "2024-01-01T00:00:00Z", "periodEnd": "2025-02-01T00:00:00Z"})), 422, "invalid_field", Some("periodEnd")),
        case("POST", &draft, json_body(json!({"periodStart": "2025-01-01T00:00:00Z"})), 422, "missing_field", Some("periodEnd")),
        // Times the database cannot store, and periods empty once cut to microseconds.
        case("POST", &draft, json_body(json!({"periodStart": "-005000-01-01T00:00:00Z", "periodEnd": "-005000-06-01T00:00:00Z"})), 422, "invalid_field", None),
        case("POST", &draft, json_body(json!({"periodStart": "1969-12-31T00:00:00Z", "periodEnd": "1970-01-02T00:00:00Z"})), 422, "invalid_field", Some("periodStart")),
        case("POST", &draft, json_body(json!({"periodStart": "9999-12-01T00:00:00Z", "periodEnd": "+10000-01-01T00:00:00Z"})), 422, "invalid_field", Some("periodEnd")),
        case("POST", &draft, json_body(json!({"periodStart": "2025-01-01T00:00:00Z", "periodEnd": "2025-01-01T00:00:00.000000001Z"})), 422, "invalid_field", Some("periodEnd")),
        // Non-numeric, negative and otherwise impossible ids in paths.
        case("PATCH", "/api/chatwork/rooms/-1", json_body(json!({"isActive": true})), 400, "invalid_path_parameter", Some("id")),
        case("PATCH", "/api/chatwork/rooms/0", json_body(json!({"isActive": true})), 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/chatwork/rooms/abc/messages", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/chatwork/rooms/99999999999999999999/messages", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/chatwork/rooms/%E3%81%82/messages", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/chatwork/rooms/1%27%20OR%20%271%27%3D%271/messages", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/chatwork/rooms/%FF/messages", None, 400, "invalid_path_parameter", None),
        case("GET", "/api/chatwork/rooms/999/messages", None, 404, "room_not_found", None),
        case("GET", "/api/companies/123/chatwork-rooms", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/companies/00000000-0000-0000-0000-000000000000/chatwork-rooms", None, 404, "company_not_found", None),
        case("DELETE", format!("{company_rooms}/-3"), None, 400, "invalid_path_parameter", Some("roomId")),
        case("DELETE", format!("{company_rooms}/101%3B%20DROP%20TABLE%20messages"), None, 400, "invalid_path_parameter", Some("roomId")),
        case("GET", "/api/jobs/-1", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/jobs/12", None, 400, "invalid_path_parameter", Some("id")),
        case("GET", "/api/jobs/%00", None, 400, "invalid_path_parameter", Some("id")),
        case("POST", "/api/jobs/not-a-job/cancel", None, 400, "invalid_path_parameter", Some("id")),
        // Queries.
        case("GET", "/api/jobs?limit=0", None, 400, "invalid_parameter", Some("limit")),
        case("GET", "/api/jobs?limit=101", None, 400, "invalid_parameter", Some("limit")),
        case("GET", "/api/jobs?limit=-1", None, 400, "invalid_parameter", Some("limit")),
        case("GET", "/api/jobs?limit=ten", None, 400, "invalid_parameter", Some("limit")),
        case("GET", "/api/jobs?limit=", None, 400, "invalid_parameter", Some("limit")),
        case("GET", "/api/jobs?limit=5&limit=6", None, 400, "invalid_parameter", Some("limit")),
        case("GET", "/api/jobs?status=queued%27--", None, 400, "invalid_parameter", Some("status")),
        case("GET", "/api/jobs?type=%27%3B%20DROP%20TABLE%20jobs%3B--", None, 400, "invalid_parameter", Some("type")),
        case("GET", "/api/jobs?owner=me", None, 400, "unknown_parameter", Some("owner")),
        case("GET", "/api/chatwork/rooms/101/messages?cursor=%27%20OR%201%3D1", None, 400, "invalid_parameter", Some("cursor")),
        case("GET", "/api/chatwork/rooms/101/messages?cursor=djE6MTox", None, 200, "", None),
        // Base64url of `v1:-377705116800000000:1`, a time before what Postgres stores.
        case("GET", "/api/chatwork/rooms/101/messages?cursor=djE6LTM3NzcwNTExNjgwMDAwMDAwMDox", None, 400, "invalid_parameter", Some("cursor")),
        case("GET", "/api/chatwork/rooms/101/messages?cursor=", None, 400, "invalid_parameter", Some("cursor")),
        case("GET", format!("/api/companies/{company}/summaries?limit=1000"), None, 400, "invalid_parameter", Some("limit")),
        // Routes and methods that do not exist.
        case("GET", "/api/nope", None, 404, "not_found", None),
        case("GET", "/index.php", None, 404, "not_found", None),
        case("GET", "/api/jobs/", None, 404, "not_found", None),
        case("DELETE", "/api/health", None, 405, "method_not_allowed", None),
        case("PUT", "/api/chatwork/rooms/101", None, 405, "method_not_allowed", None),
    ];
    let admin = Who::admin();
    let mut failures = Vec::new();
    for c in cases {
        let response = app.send(&admin, c.method, &c.path, c.body, &[]).await;
        let label = format!(
            "{} {}",
            c.method,
            c.path.chars().take(120).collect::<String>()
        );
        if response.status >= 500 {
            failures.push(format!("{label}: a 5xx: {}", response.text));
            continue;
        }
        let ok = response.status == c.status
            && response.code() == c.code
            && (c.field.is_none() || response.field() == c.field);
        if !ok {
            failures.push(format!(
                "{label}: expected {} {} {:?}, got {} {}",
                c.status,
                c.code,
                c.field,
                response.status,
                response.text.chars().take(300).collect::<String>()
            ));
            continue;
        }
        if c.status >= 400 {
            assert!(
                response
                    .header("content-type")
                    .is_some_and(|ct| ct.starts_with("application/json")),
                "{label}: {:?}",
                response.headers
            );
            let message = response.body["error"]["message"].as_str().unwrap_or("");
            assert!(!message.is_empty(), "{label}: no message");
            assert!(message.chars().count() <= 301, "{label}: message too long");
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // None of it changed anything.
    let companies: i64 = sqlx::query_scalar("SELECT count(*) FROM companies")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(companies, 1);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}
both_ways!(bad_input_is_a_json_4xx_naming_the_field);

/// SQL metacharacters and any unicode are data: stored and returned exactly.
async fn sql_metacharacters_and_unicode_are_stored_as_they_are(app: &impl Api) {
    let names = [
        "Robert'); DROP TABLE companies;--",
        "1' OR '1'='1",
        "%_\\ LIKE tricks",
        "株式会社チャットワーク 🚀",
        "שלום عالم",
        "e\u{301}te\u{301} café",
        "zero\u{200b}width",
        "$1 $$ ${}",
    ];
    let admin = Who::admin();
    for name in names {
        let created = app
            .call(
                &admin,
                "POST",
                "/api/companies",
                Some(json!({"name": name})),
            )
            .await;
        created.expect(201);
        assert_eq!(created.body["name"], name);
    }
    let list = app
        .call(&Who::reader(), "GET", "/api/companies", None)
        .await;
    list.expect(200);
    let mut stored: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut expected = names.to_vec();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
    // The names are trimmed of surrounding white space, nothing else.
    let created = app
        .call(
            &admin,
            "POST",
            "/api/companies",
            Some(json!({"name": "  padded  "})),
        )
        .await;
    assert_eq!(created.body["name"], "padded");
}
both_ways!(sql_metacharacters_and_unicode_are_stored_as_they_are);

/// A body declared larger than the limit is refused before anything reads it, even
/// without identity.
#[tokio::test]
async fn a_declared_oversize_body_is_413_before_authentication() {
    let app = cwsync_tests::spawn_app().await;
    let response = app
        .send(
            &Who::Nobody,
            "POST",
            "/api/companies",
            Some(Body::Raw {
                content_type: Some("application/json".into()),
                bytes: vec![b' '; 100_000],
            }),
            &[],
        )
        .await;
    assert_eq!(
        (response.status, response.code()),
        (413, "payload_too_large")
    );
}

/// Text Postgres refuses (NUL) in any query parameter or inside a cursor, and a jobs
/// cursor holding a time Postgres cannot store, are 400s with a stable code, never the
/// database's 500.
async fn nul_and_unstorable_times_are_400s(app: &impl Api) {
    use base64::Engine;
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let unstorable = [
        ("/api/companies?q=a%00b", "q"),
        ("/api/chatwork/rooms?q=a%00b", "q"),
        ("/api/jobs?startedBy=a%00b", "startedBy"),
        ("/api/jobs?type=%00", "type"),
    ];
    for (who, admin) in [
        (Who::admin(), true),
        (Who::writer(), false),
        (Who::reader(), false),
    ] {
        for (path, field) in unstorable {
            if path.starts_with("/api/chatwork/rooms") && !admin {
                continue; // the room list is admins' alone
            }
            let answer = app.call(&who, "GET", path, None).await;
            assert_eq!(answer.status, 400, "{path}: {}", answer.text);
            assert_eq!(answer.body["error"]["code"], "unstorable_text", "{path}");
            assert_eq!(answer.body["error"]["field"], field, "{path}");
        }
    }
    let nil = uuid::Uuid::nil();
    let cursors = [
        format!("/api/companies?cursor={}", b64(&format!("v1:{nil}:a\0b"))),
        format!("/api/chatwork/rooms?cursor={}", b64("v1:1:a\0b")),
        format!("/api/jobs?cursor={}", b64(&format!("v1:1\0:{nil}"))),
        format!(
            "/api/jobs?cursor={}",
            b64(&format!("v1:{}:{nil}", i64::MIN))
        ),
        format!(
            "/api/jobs?cursor={}",
            b64(&format!("v1:-62135596800000001:{nil}"))
        ),
        format!(
            "/api/jobs?cursor={}",
            b64(&format!("v1:253402300800000000:{nil}"))
        ),
    ];
    for path in cursors {
        let answer = app.call(&Who::admin(), "GET", &path, None).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
        assert_eq!(answer.body["error"]["code"], "invalid_parameter", "{path}");
        assert_eq!(answer.body["error"]["field"], "cursor", "{path}");
    }
}
both_ways!(nul_and_unstorable_times_are_400s);

/// Every documented limit of every query and path parameter in the committed OpenAPI
/// document is enforced: one past each `maxLength`, `maximum` and `minimum` is a 4xx.
#[tokio::test]
async fn one_past_every_documented_limit_is_refused() {
    let app = cwsync_tests::spawn_app().await;
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(cwsync_tests::workspace_root().join("openapi.json")).unwrap(),
    )
    .unwrap();
    let mut tried = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // Path parameters as valid values, so that only the one tried is wrong.
            let mut base = template.clone();
            for p in parameters.iter().filter(|p| p["in"] == "path") {
                let value = if p["schema"]["format"] == "uuid" {
                    uuid::Uuid::nil().to_string()
                } else {
                    "1".to_owned()
                };
                base = base.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), &value);
            }
            for p in &parameters {
                let name = p["name"].as_str().unwrap();
                let schema = &p["schema"];
                let mut wrong = Vec::new();
                if let Some(max) = schema["maxLength"].as_u64() {
                    wrong.push("x".repeat(max as usize + 1));
                }
                if let Some(max) = schema["maximum"].as_i64() {
                    wrong.push((max + 1).to_string());
                }
                if let Some(min) = schema["minimum"].as_i64() {
                    wrong.push((min - 1).to_string());
                }
                for value in wrong {
                    let path = match p["in"].as_str() {
                        Some("query") => format!("{base}?{name}={value}"),
                        Some("path") => template.replace(&format!("{{{name}}}"), &value),
                        _ => continue,
                    };
                    let answer = app
                        .call(&Who::admin(), &method.to_ascii_uppercase(), &path, None)
                        .await;
                    assert!(
                        answer.status == 400 || answer.status == 422,
                        "{method} {path}: {} {}",
                        answer.status,
                        answer.text
                    );
                    tried += 1;
                }
            }
        }
    }
    println!("{tried} values one past a documented limit, all refused");
    assert!(tried >= 10, "only {tried} limits in the document");
}
