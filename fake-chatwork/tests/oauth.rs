//! The fake's OAuth 2.0 over plain HTTP, as a browser and a client see it: the consent
//! page, the token endpoint, and Bearer tokens on the API.

mod common;

use std::time::Duration;

use common::*;
use fake_chatwork::{FakeChatwork, FakeSettings, Room, RoomType, TokenOutcome, s256_challenge};
use serde_json::Value;

const ROOM_A: i64 = 5_000_001;
const ROOM_B: i64 = 5_000_002;

/// A fake with two rooms: the default account in both, Bob (an API token and OAuth) in
/// the first only; the test client registered.
async fn fake() -> FakeChatwork {
    let fake = FakeChatwork::start(FakeSettings::default().with_rooms(vec![
        Room::new(ROOM_A, "営業部", RoomType::Group),
        Room::new(ROOM_B, "経営会議", RoomType::Group),
    ]))
    .await;
    fake.add_account(bob(), Some(BOB_TOKEN), &[ROOM_A]);
    register(&fake);
    fake
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_whole_round_trip_from_the_consent_page_to_the_api() {
    let fake = fake().await;
    fake.post_message(ROOM_A, &bob().as_author(), "おはようございます");
    let challenge = s256_challenge(VERIFIER);
    let params = authorize_params(CLIENT_ID, REDIRECT_URI, SCOPES, &challenge);

    // The page: Japanese, the accounts to log in as, the scopes asked, the two buttons.
    let page = http()
        .get(fake.oauth_authorize_url())
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    for needle in [
        "<html lang=\"ja\">",
        "<select id=\"account\" name=\"account\">",
        "山田 太郎",
        "佐藤 健一",
        "<button id=\"allow\"",
        "<button id=\"deny\"",
        "rooms.messages:read",
        "offline_access",
        "method=\"post\"",
        "value=\"the-state-42\"",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }

    // Allow as Bob: back to the client with a code and the state.
    let pairs = location(&answer(&fake, &params, BOB_ID, "allow").await);
    assert_eq!(param(&pairs, "state"), Some("the-state-42"));
    let code = param(&pairs, "code").unwrap().to_owned();

    let (status, body) = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900, "15 minutes");
    assert_eq!(body["scope"], SCOPES);
    let access = body["access_token"].as_str().unwrap();
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );

    let me: Value = bearer_get(&fake, access, "/me").await.json().await.unwrap();
    assert_eq!(me["account_id"], BOB_ID);
    assert_eq!(me["name"], "山田 太郎");
    let rooms: Vec<Value> = bearer_get(&fake, access, "/rooms")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = rooms
        .iter()
        .map(|r| r["room_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ROOM_A], "Bob's rooms only");
    let messages: Vec<Value> = bearer_get(&fake, access, &format!("/rooms/{ROOM_A}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);

    // The log: one successful code exchange by this client for Bob, nothing secret.
    let log = fake.token_requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].grant_type, "authorization_code");
    assert_eq!(log[0].client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(log[0].account_id, Some(BOB_ID));
    assert_eq!(log[0].outcome, TokenOutcome::Ok);
    let text = format!("{log:?}");
    assert!(!text.contains(access) && !text.contains(&code) && !text.contains(CLIENT_SECRET));
    // The API's log says whose the requests were.
    assert!(fake.requests().iter().all(|r| r.account_id == Some(BOB_ID)));
}

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_what_it_gave() {
    let fake = fake().await;
    let code = consent(&fake, BOB_ID, SCOPES).await;
    let (status, first) = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(bearer_get(&fake, access, "/me").await.status(), 200);

    let (status, again) = exchange(&fake, &code, VERIFIER).await;
    assert_eq!((status, error_of(&again)), (400, "invalid_grant"));
    assert!(again["error_description"].as_str().is_some());
    // The tokens of the first exchange are dead too (RFC 6749 §4.1.2).
    assert_eq!(bearer_get(&fake, access, "/me").await.status(), 401);
    let (status, refused) = refresh(&fake, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, error_of(&refused)), (400, "invalid_grant"));
}

#[tokio::test]
async fn a_code_expires() {
    let fake = fake().await;
    fake.set_code_ttl(Duration::from_millis(300));
    let code = consent(&fake, BOB_ID, SCOPES).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = exchange(&fake, &code, VERIFIER).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // A code used in time works (the same settings).
    let code = consent(&fake, BOB_ID, SCOPES).await;
    assert_eq!(exchange(&fake, &code, VERIFIER).await.0, 200);
}

#[tokio::test]
async fn a_wrong_verifier_another_redirect_uri_or_client_are_refused() {
    let fake = fake().await;
    let other_verifier = "another-verifier-that-is-long-enough-to-be-valid";
    let code = consent(&fake, BOB_ID, SCOPES).await;
    let (status, body) = exchange(&fake, &code, other_verifier).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // The code is spent by the failed attempt: no second guess.
    assert_eq!(exchange(&fake, &code, VERIFIER).await.0, 400);

    // A verifier missing.
    let code = consent(&fake, BOB_ID, SCOPES).await;
    let (status, _) = token_request(
        &fake,
        CLIENT_ID,
        CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(status, 400);

    // Another redirect URI than the one the code was issued for.
    let code = consent(&fake, BOB_ID, SCOPES).await;
    let (status, body) = token_request(
        &fake,
        CLIENT_ID,
        CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:3000/callback"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

    // Another (registered) client presenting this client's code.
    fake.register_oauth_client(fake_chatwork::FakeOAuthClient {
        client_id: "other".into(),
        client_secret: "other-secret".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
    });
    let code = consent(&fake, BOB_ID, SCOPES).await;
    let (status, body) = token_request(
        &fake,
        "other",
        "other-secret",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // ...which did not spend it for its own client.
    assert_eq!(exchange(&fake, &code, VERIFIER).await.0, 200);
}

#[tokio::test]
async fn the_client_must_authenticate() {
    let fake = fake().await;
    let code = consent(&fake, BOB_ID, SCOPES).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    for (id, secret) in [(CLIENT_ID, "wrong-secret"), ("nobody", CLIENT_SECRET)] {
        let (status, body) = token_request(&fake, id, secret, &fields).await;
        assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    }
    // No credentials at all, or the secret in the body instead of Basic.
    let response = http()
        .post(fake.oauth_token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let log = fake.token_requests();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|r| r.outcome == TokenOutcome::Error("invalid_client".into()))
    );
    // The code was not touched: the right client still gets its tokens.
    assert_eq!(exchange(&fake, &code, VERIFIER).await.0, 200);
}

#[tokio::test]
async fn basic_credentials_may_be_form_encoded_or_not() {
    use base64::Engine as _;
    let fake = fake().await;
    let (id, secret) = ("odd client", "s+e/c:r=t%");
    fake.register_oauth_client(fake_chatwork::FakeOAuthClient {
        client_id: id.into(),
        client_secret: secret.into(),
        redirect_uris: vec![REDIRECT_URI.into()],
    });
    let fields = form(&[("grant_type", "refresh_token"), ("refresh_token", "none")]);
    let encode =
        |text: &str| -> String { form_urlencoded::byte_serialize(text.as_bytes()).collect() };
    let as_sent = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(id),
        encode(secret)
    ));
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{id}:s+e/c:r=t"));
    for (credentials, status) in [(as_sent, 400), (encoded, 400), (wrong, 401)] {
        let response = http()
            .post(fake.oauth_token_url())
            .header("authorization", format!("Basic {credentials}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fields.clone())
            .send()
            .await
            .unwrap();
        // 400: authenticated, and the refresh token refused; 401: not authenticated.
        assert_eq!(response.status(), status);
    }
    assert_eq!(fake.token_requests()[0].client_id.as_deref(), Some(id));
}

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token() {
    let fake = fake().await;
    let (access, first_refresh) = connect(&fake, BOB_ID, SCOPES).await;
    let (status, body) = refresh(&fake, &first_refresh).await;
    assert_eq!(status, 200, "{body}");
    let second_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let new_access = body["access_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);
    assert_ne!(new_access, access);
    assert_eq!(body["scope"], SCOPES);
    assert_eq!(bearer_get(&fake, new_access, "/me").await.status(), 200);
    // The old refresh token died at once.
    let (status, body) = refresh(&fake, &first_refresh).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // The new one works, once.
    assert_eq!(refresh(&fake, &second_refresh).await.0, 200);
    assert_eq!(refresh(&fake, &second_refresh).await.0, 400);
    assert_eq!(fake.refresh_count(), 2);
    let outcomes: Vec<(String, TokenOutcome)> = fake
        .token_requests()
        .into_iter()
        .map(|r| (r.grant_type, r.outcome))
        .collect();
    let invalid = TokenOutcome::Error("invalid_grant".into());
    assert_eq!(
        outcomes,
        vec![
            ("authorization_code".into(), TokenOutcome::Ok),
            ("refresh_token".into(), TokenOutcome::Ok),
            ("refresh_token".into(), invalid.clone()),
            ("refresh_token".into(), TokenOutcome::Ok),
            ("refresh_token".into(), invalid),
        ]
    );
}

#[tokio::test]
async fn an_expired_access_token_is_a_401_until_refreshed() {
    let fake = fake().await;
    let (access, refresh_token) = connect(&fake, BOB_ID, SCOPES).await;
    fake.expire_access_tokens();
    let response = bearer_get(&fake, &access, "/rooms").await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0].as_str().is_some(),
        "Chatwork's error shape"
    );
    // Not counted against the account's budget.
    assert_eq!(fake.rate_state_of_account(BOB_ID).remaining, 300);

    let (_, body) = refresh(&fake, &refresh_token).await;
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(bearer_get(&fake, fresh, "/rooms").await.status(), 200);

    // A short lifetime, set for the tokens issued from then on, runs out by itself.
    fake.set_access_token_ttl(Duration::from_secs(1));
    let (short, _) = connect(&fake, BOB_ID, SCOPES).await;
    assert_eq!(bearer_get(&fake, &short, "/me").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(bearer_get(&fake, &short, "/me").await.status(), 401);
    // An unknown token is a 401 too.
    let unknown = bearer_get(&fake, "no-such-token", "/me").await;
    assert_eq!(unknown.status(), 401);
    assert!(unknown.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn revoking_the_grants_kills_every_token_of_the_account() {
    let fake = fake().await;
    let (bob_access, bob_refresh) = connect(&fake, BOB_ID, SCOPES).await;
    let (own_access, _) = connect(&fake, FakeChatwork::DEFAULT_ACCOUNT_ID, SCOPES).await;
    fake.revoke_grants(BOB_ID);
    assert_eq!(bearer_get(&fake, &bob_access, "/me").await.status(), 401);
    let (status, body) = refresh(&fake, &bob_refresh).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // Another account's grant lives on, and Bob's API token is not an OAuth grant.
    assert_eq!(bearer_get(&fake, &own_access, "/me").await.status(), 200);
    assert_eq!(token_get(&fake, BOB_TOKEN, "/me").await.status(), 200);
    // Bob can connect again.
    let (again, _) = connect(&fake, BOB_ID, SCOPES).await;
    assert_eq!(bearer_get(&fake, &again, "/me").await.status(), 200);
}

#[tokio::test]
async fn consent_refused_and_bad_requests_go_back_or_stop_on_the_page() {
    let fake = fake().await;
    let challenge = s256_challenge(VERIFIER);
    let params = authorize_params(CLIENT_ID, REDIRECT_URI, SCOPES, &challenge);

    // Deny: back to the client with access_denied and the state, no code.
    let pairs = location(&answer(&fake, &params, BOB_ID, "deny").await);
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
    assert_eq!(param(&pairs, "state"), Some("the-state-42"));
    assert_eq!(param(&pairs, "code"), None);

    // An unknown client or an unregistered redirect URI: an error page, never a
    // redirect (the URI cannot be trusted).
    for bad in [
        authorize_params("nobody", REDIRECT_URI, SCOPES, &challenge),
        authorize_params(CLIENT_ID, "https://evil.example.com/cb", SCOPES, &challenge),
    ] {
        let page = http()
            .get(fake.oauth_authorize_url())
            .query(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400);
        assert!(page.headers().get("location").is_none());
        assert!(page.text().await.unwrap().contains("id=\"error\""));
        // Nor by posting the form.
        assert_eq!(answer(&fake, &bad, BOB_ID, "allow").await.status(), 400);
    }

    // PKCE is required, S256 only: invalid_request, back to the client.
    let mut plain = params.clone();
    plain.retain(|(k, _)| *k != "code_challenge_method");
    plain.push(("code_challenge_method", "plain"));
    let mut missing = params.clone();
    missing.retain(|(k, _)| *k != "code_challenge");
    for bad in [plain, missing] {
        let page = http()
            .get(fake.oauth_authorize_url())
            .query(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(param(&location(&page), "error"), Some("invalid_request"));
        let posted = answer(&fake, &bad, BOB_ID, "allow").await;
        let pairs = location(&posted);
        assert_eq!(param(&pairs, "error"), Some("invalid_request"));
        assert_eq!(param(&pairs, "code"), None);
    }

    // A scope Chatwork does not know.
    let unknown = authorize_params(CLIENT_ID, REDIRECT_URI, "rooms.everything", &challenge);
    let page = http()
        .get(fake.oauth_authorize_url())
        .query(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location(&page), "error"), Some("invalid_scope"));
    assert!(fake.token_requests().is_empty());
}

#[tokio::test]
async fn a_grant_without_the_messages_scope_cannot_read_messages() {
    let fake = fake().await;
    let (access, _) = connect(&fake, BOB_ID, "rooms.info:read users.profile.me:read").await;
    assert_eq!(bearer_get(&fake, &access, "/rooms").await.status(), 200);
    let messages = bearer_get(&fake, &access, &format!("/rooms/{ROOM_A}/messages")).await;
    assert_eq!(messages.status(), 403);
    assert!(
        messages.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // Bob's API token reads everything Bob may read.
    assert_eq!(
        token_get(
            &fake,
            BOB_TOKEN,
            &format!("/rooms/{ROOM_A}/messages?force=1")
        )
        .await
        .status(),
        204
    );
}

#[tokio::test]
async fn the_token_endpoint_wants_a_known_grant_type_in_a_form() {
    let fake = fake().await;
    let (status, body) = token_request(
        &fake,
        CLIENT_ID,
        CLIENT_SECRET,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "unsupported_grant_type"));
    let (status, body) = token_request(&fake, CLIENT_ID, CLIENT_SECRET, &[]).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    let response = http()
        .post(fake.oauth_token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"refresh_token"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body), "invalid_request");
}
