//! Several accounts on one fake: who sees which rooms, `/me`, one rate budget per
//! account, the demo's two accounts.

mod common;

use std::time::Duration;

use common::*;
use fake_chatwork::{DemoData, FakeChatwork, FakeSettings, Room, RoomType};
use serde_json::Value;

const SHARED: i64 = 5_100_001;
const DEFAULTS_OWN: i64 = 5_100_002;
const BOBS_OWN: i64 = 5_100_003;

/// The default account in two rooms, Bob in the shared one and one of his own.
async fn fake(settings: FakeSettings) -> FakeChatwork {
    let fake = FakeChatwork::start(settings.with_rooms(vec![
        Room::new(SHARED, "全社連絡", RoomType::Group),
        Room::new(DEFAULTS_OWN, "佐藤の顧客", RoomType::Group),
    ]))
    .await;
    fake.add_account(bob(), Some(BOB_TOKEN), &[SHARED]);
    fake.add_room_of(
        Room::new(BOBS_OWN, "山田の顧客", RoomType::Group),
        &[BOB_ID],
    );
    register(&fake);
    fake
}

async fn room_ids(response: reqwest::Response) -> Vec<i64> {
    assert_eq!(response.status(), 200);
    let rooms: Vec<Value> = response.json().await.unwrap();
    rooms
        .iter()
        .map(|r| r["room_id"].as_i64().unwrap())
        .collect()
}

async fn errors(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["errors"][0].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_account_sees_the_rooms_it_is_a_member_of_and_no_other() {
    let fake = fake(FakeSettings::default()).await;
    let default = fake.token().to_owned();
    assert_eq!(
        room_ids(token_get(&fake, &default, "/rooms").await).await,
        vec![SHARED, DEFAULTS_OWN]
    );
    assert_eq!(
        room_ids(token_get(&fake, BOB_TOKEN, "/rooms").await).await,
        vec![SHARED, BOBS_OWN]
    );

    // A room that exists but is not Bob's: 403, for the room and for its messages.
    let forbidden = (403, "You don't have permission to get this room".to_owned());
    assert_eq!(
        errors(token_get(&fake, BOB_TOKEN, &format!("/rooms/{DEFAULTS_OWN}")).await).await,
        forbidden
    );
    assert_eq!(
        errors(token_get(&fake, BOB_TOKEN, &format!("/rooms/{DEFAULTS_OWN}/messages")).await).await,
        forbidden
    );
    assert_eq!(
        errors(token_get(&fake, &default, &format!("/rooms/{BOBS_OWN}/messages")).await).await,
        forbidden
    );
    // A room that does not exist at all: 404.
    assert_eq!(
        token_get(&fake, BOB_TOKEN, "/rooms/5199999").await.status(),
        404
    );

    // Membership changes while the fake runs.
    assert!(fake.set_member(BOB_ID, DEFAULTS_OWN, true));
    assert_eq!(
        token_get(&fake, BOB_TOKEN, &format!("/rooms/{DEFAULTS_OWN}"))
            .await
            .status(),
        200
    );
    assert!(fake.set_member(FakeChatwork::DEFAULT_ACCOUNT_ID, SHARED, false));
    assert_eq!(
        room_ids(token_get(&fake, &default, "/rooms").await).await,
        vec![DEFAULTS_OWN]
    );
    assert!(!fake.set_member(9_999, SHARED, true), "an unknown account");
    assert_eq!(fake.rooms_of(BOB_ID), vec![SHARED, DEFAULTS_OWN, BOBS_OWN]);

    // A token added the old way reads as the default account.
    fake.add_token("another-token-of-the-default-account");
    assert_eq!(
        room_ids(token_get(&fake, "another-token-of-the-default-account", "/rooms").await).await,
        vec![DEFAULTS_OWN]
    );
    // The log says whose each request was.
    let log = fake.requests();
    assert_eq!(log[0].account_id, Some(FakeChatwork::DEFAULT_ACCOUNT_ID));
    assert_eq!(log[1].account_id, Some(BOB_ID));
}

#[tokio::test]
async fn me_has_chatworks_shape_for_the_tokens_account() {
    let fake = fake(FakeSettings::default()).await;
    let me: Value = token_get(&fake, BOB_TOKEN, "/me")
        .await
        .json()
        .await
        .unwrap();
    for field in [
        "account_id",
        "room_id",
        "name",
        "chatwork_id",
        "organization_id",
        "organization_name",
        "department",
        "title",
        "url",
        "introduction",
        "mail",
        "tel_organization",
        "tel_extension",
        "tel_mobile",
        "skype",
        "facebook",
        "twitter",
        "avatar_image_url",
        "login_mail",
    ] {
        assert!(me.get(field).is_some(), "{field}");
    }
    assert_eq!(me["account_id"], BOB_ID);
    assert_eq!(me["name"], "山田 太郎");
    assert_eq!(me["organization_id"], 870_001);
    assert_eq!(me["organization_name"], "株式会社ニシカゼ");

    let me: Value = token_get(&fake, fake.token(), "/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["account_id"], FakeChatwork::DEFAULT_ACCOUNT_ID);
    assert_eq!(me["name"], fake.default_account().name);
    // An unknown token is Chatwork's 401.
    assert_eq!(token_get(&fake, "nope", "/me").await.status(), 401);
}

#[tokio::test]
async fn an_accounts_api_token_and_access_tokens_share_one_budget() {
    let fake = fake(FakeSettings::default().with_rate_limit(6, Duration::from_secs(60))).await;
    let (access, _) = connect(&fake, BOB_ID, SCOPES).await;
    for _ in 0..3 {
        assert_eq!(token_get(&fake, BOB_TOKEN, "/me").await.status(), 200);
    }
    let last = bearer_get(&fake, &access, "/me").await;
    assert_eq!(last.status(), 200);
    assert_eq!(last.headers()["x-ratelimit-remaining"], "2", "6 - 4");
    assert_eq!(fake.rate_state_of_account(BOB_ID).remaining, 2);
    assert_eq!(fake.rate_limit_state(BOB_TOKEN).remaining, 2);
    assert_eq!(fake.rate_limit_state(&access).remaining, 2);
    assert_eq!(
        fake.spend_rate_limit_of_account(BOB_ID, 5),
        2,
        "only two fit"
    );
    // Both of Bob's tokens are refused now...
    assert_eq!(token_get(&fake, BOB_TOKEN, "/me").await.status(), 429);
    assert_eq!(bearer_get(&fake, &access, "/rooms").await.status(), 429);
    // ...while the default account's budget is untouched.
    assert_eq!(token_get(&fake, fake.token(), "/me").await.status(), 200);
    assert_eq!(
        fake.rate_state_of_account(FakeChatwork::DEFAULT_ACCOUNT_ID)
            .remaining,
        5
    );
    let windows = fake.rate_windows_of_account(BOB_ID);
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].counted, 6);

    // A token added the old way keeps a budget of its own, though it reads as the
    // default account.
    fake.add_token("own-budget");
    assert_eq!(fake.rate_limit_state("own-budget").remaining, 6);
    fake.use_up_rate_limit(fake.token());
    assert_eq!(token_get(&fake, "own-budget", "/me").await.status(), 200);
}

#[tokio::test]
async fn an_accounts_tokens_share_the_read_position_behind_force() {
    let fake = fake(FakeSettings::default()).await;
    let (access, _) = connect(&fake, BOB_ID, SCOPES).await;
    fake.post_message(SHARED, &bob().as_author(), "一通目");
    let path = format!("/rooms/{SHARED}/messages");
    let first: Vec<Value> = token_get(&fake, BOB_TOKEN, &path)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Bob's access token has nothing new: the position is the account's.
    assert_eq!(bearer_get(&fake, &access, &path).await.status(), 204);
    // The default account has its own position.
    assert_eq!(token_get(&fake, fake.token(), &path).await.status(), 200);
}

#[tokio::test]
async fn the_demo_has_two_accounts_that_share_one_room() {
    let fake = FakeChatwork::demo().await;
    let data = DemoData::build();
    let mine = room_ids(token_get(&fake, fake.token(), "/rooms").await).await;
    let theirs = room_ids(token_get(&fake, DemoData::SECOND_ACCOUNT_TOKEN, "/rooms").await).await;
    assert_eq!(mine.len(), 12, "the owner keeps every room");
    assert_eq!(theirs.len(), data.second_rooms.len() + 1);
    let shared: Vec<i64> = mine
        .iter()
        .filter(|id| theirs.contains(id))
        .copied()
        .collect();
    assert_eq!(shared, vec![DemoData::SHARED_ROOM_ID]);
    for room in &data.second_rooms {
        assert!(room.messages.len() >= 3, "{}", room.name);
        assert_eq!(
            token_get(&fake, fake.token(), &format!("/rooms/{}", room.room_id))
                .await
                .status(),
            403
        );
    }
    let me: Value = token_get(&fake, DemoData::SECOND_ACCOUNT_TOKEN, "/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["account_id"], DemoData::SECOND_ACCOUNT_ID);
    assert_eq!(me["organization_name"], "株式会社ニシカゼ");
    assert_eq!(me["room_id"], 281_000_201, "her own my chat");

    // The demo's OAuth client, registered for whatever redirect URI the runner has.
    let redirect = "http://127.0.0.1:45678/api/chatwork/oauth/callback";
    fake.register_oauth_client(DemoData::oauth_client(vec![redirect.to_owned()]));
    let challenge = fake_chatwork::s256_challenge(VERIFIER);
    let params = authorize_params(DemoData::OAUTH_CLIENT_ID, redirect, SCOPES, &challenge);
    let page = http()
        .get(fake.oauth_authorize_url())
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("鈴木 美咲") && html.contains("佐藤 健一"));
}
