//! What the OAuth and account tests share: a client that does not follow redirects, the
//! consent round trip as a browser would make it, the token endpoint as a client calls it.

#![allow(dead_code)]

use fake_chatwork::{FakeAccount, FakeChatwork, FakeOAuthClient, s256_challenge};
use reqwest::Url;
use serde_json::Value;

pub const CLIENT_ID: &str = "cwsync-test-client";
pub const CLIENT_SECRET: &str = "cwsync-test-secret-0f9e8d";
pub const REDIRECT_URI: &str = "https://cwsync.example.com/api/chatwork/oauth/callback";
pub const SCOPES: &str = "rooms.all:read rooms.messages:read users.profile.me:read offline_access";
/// 43 characters, as RFC 7636 asks at least.
pub const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more_0123";

pub const BOB_ID: i64 = 2_002_001;
pub const BOB_TOKEN: &str = "bob-api-token-0123456789";

pub fn bob() -> FakeAccount {
    FakeAccount {
        account_id: BOB_ID,
        name: "山田 太郎".into(),
        organization_id: 870_001,
        organization_name: "株式会社ニシカゼ".into(),
    }
}

/// A client that shows redirects instead of following them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

pub fn register(fake: &FakeChatwork) {
    fake.register_oauth_client(FakeOAuthClient {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![REDIRECT_URI.into(), "http://127.0.0.1:3000/callback".into()],
    });
}

/// The authorization request's query.
pub fn authorize_params<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    scope: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "the-state-42"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// The query parameters of a 302's `Location`.
pub fn location(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 302, "a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Posts the consent form as the page's form would, with `decision` for `account_id`.
pub async fn answer(
    fake: &FakeChatwork,
    params: &[(&str, &str)],
    account_id: i64,
    decision: &str,
) -> reqwest::Response {
    let account = account_id.to_string();
    let mut fields = params.to_vec();
    fields.push(("account", &account));
    fields.push(("decision", decision));
    http()
        .post(fake.oauth_authorize_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&fields))
        .send()
        .await
        .unwrap()
}

/// The consent round trip: the page, then "allow" as `account_id`; returns the code.
pub async fn consent(fake: &FakeChatwork, account_id: i64, scope: &str) -> String {
    let challenge = s256_challenge(VERIFIER);
    let params = authorize_params(CLIENT_ID, REDIRECT_URI, scope, &challenge);
    let page = http()
        .get(fake.oauth_authorize_url())
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let redirect = answer(fake, &params, account_id, "allow").await;
    let pairs = location(&redirect);
    assert_eq!(param(&pairs, "state"), Some("the-state-42"));
    param(&pairs, "code").expect("a code").to_owned()
}

/// A request to the token endpoint with Basic credentials; the status and the JSON body.
pub async fn token_request(
    fake: &FakeChatwork,
    client_id: &str,
    secret: &str,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let response = http()
        .post(fake.oauth_token_url())
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "token answers are never cached"
    );
    (status, response.json().await.unwrap())
}

pub async fn exchange(fake: &FakeChatwork, code: &str, verifier: &str) -> (u16, Value) {
    token_request(
        fake,
        CLIENT_ID,
        CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub async fn refresh(fake: &FakeChatwork, refresh_token: &str) -> (u16, Value) {
    token_request(
        fake,
        CLIENT_ID,
        CLIENT_SECRET,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A live access and refresh token of `account_id` with `scope`.
pub async fn connect(fake: &FakeChatwork, account_id: i64, scope: &str) -> (String, String) {
    let code = consent(fake, account_id, scope).await;
    let (status, body) = exchange(fake, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// `GET {base}{path}` with a Bearer token.
pub async fn bearer_get(fake: &FakeChatwork, token: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `GET {base}{path}` with an API token.
pub async fn token_get(fake: &FakeChatwork, token: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", fake.base_url()))
        .header("X-ChatWorkToken", token)
        .send()
        .await
        .unwrap()
}
