//! A room's tasks, files (with their expiring download URLs) and members, over real HTTP.

use std::time::Duration;

use fake_chatwork::{
    Account, DemoData, FakeChatwork, FakeSettings, File, LimitType, Member, Room, RoomType, Task,
};
use serde_json::Value;

const PROJECT: i64 = 281_000_106;

async fn get(fake: &FakeChatwork, path: &str) -> (u16, Option<Value>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", fake.base_url()))
        .header("X-ChatWorkToken", fake.token())
        .send()
        .await
        .expect("the fake answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status == 204 {
        assert!(text.is_empty(), "a 204 has an empty body");
        return (status, None);
    }
    (status, Some(serde_json::from_str(&text).unwrap()))
}

fn listed(fake_rooms: &Value, room_id: i64) -> &Value {
    fake_rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room_id)
        .expect("the room is listed")
}

#[tokio::test]
async fn the_demo_has_tasks_files_and_members_with_chatworks_shapes() {
    let fake = FakeChatwork::demo().await;
    let (status, tasks) = get(&fake, &format!("/rooms/{PROJECT}/tasks")).await;
    assert_eq!(status, 200);
    let tasks = tasks.unwrap();
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    for field in [
        "task_id",
        "account",
        "assigned_by_account",
        "message_id",
        "body",
        "limit_time",
        "status",
        "limit_type",
    ] {
        assert!(tasks[0].get(field).is_some(), "{field}");
    }
    assert!(tasks[0]["account"]["avatar_image_url"].is_string());
    let kinds: Vec<&str> = tasks
        .iter()
        .map(|t| t["limit_type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"date") && kinds.contains(&"time"));
    assert!(tasks.iter().any(|t| t["status"] == "done"));

    // The filters.
    let (_, open) = get(&fake, &format!("/rooms/{PROJECT}/tasks?status=open")).await;
    assert_eq!(open.unwrap().as_array().unwrap().len(), 2);
    let (_, mine) = get(
        &fake,
        &format!("/rooms/{PROJECT}/tasks?account_id=1001001&status=open"),
    )
    .await;
    assert_eq!(mine.unwrap().as_array().unwrap().len(), 1);
    let (_, by) = get(
        &fake,
        &format!("/rooms/{PROJECT}/tasks?assigned_by_account_id=1001001"),
    )
    .await;
    assert_eq!(by.unwrap().as_array().unwrap().len(), 1);
    assert_eq!(
        get(&fake, &format!("/rooms/{PROJECT}/tasks?status=later"))
            .await
            .0,
        400
    );

    // An overdue one in the customer's direct chat.
    let (_, direct) = get(&fake, "/rooms/281000104/tasks").await;
    let direct = direct.unwrap();
    let overdue = &direct[0];
    assert_eq!(overdue["status"], "open");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(overdue["limit_time"].as_i64().unwrap() < now);

    let (_, files) = get(&fake, &format!("/rooms/{PROJECT}/files")).await;
    let files = files.unwrap();
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 2);
    for field in [
        "file_id",
        "account",
        "message_id",
        "filename",
        "filesize",
        "upload_time",
    ] {
        assert!(files[0].get(field).is_some(), "{field}");
    }
    assert!(files[0].get("download_url").is_none());

    // A room without tasks answers 204.
    assert_eq!(get(&fake, "/rooms/281000112/tasks").await.0, 204);
    assert_eq!(get(&fake, "/rooms/281000112/files").await.0, 204);

    let (_, members) = get(
        &fake,
        &format!("/rooms/{}/members", DemoData::SUGGESTED_ROOM_ID),
    )
    .await;
    let members = members.unwrap();
    for field in [
        "account_id",
        "role",
        "name",
        "chatwork_id",
        "organization_id",
        "organization_name",
        "department",
        "avatar_image_url",
    ] {
        assert!(members[0].get(field).is_some(), "{field}");
    }
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["organization_name"] == DemoData::CUSTOMER_ORGANIZATION)
    );

    // The room list counts open tasks and files.
    let (_, rooms) = get(&fake, "/rooms").await;
    let rooms = rooms.unwrap();
    assert_eq!(listed(&rooms, PROJECT)["task_num"], 2);
    assert_eq!(listed(&rooms, PROJECT)["file_num"], 2);
}

#[tokio::test]
async fn test_hooks_change_tasks_and_files_and_the_counts_follow() {
    let fake = FakeChatwork::start(FakeSettings::default()).await;
    fake.add_room(Room::new(7, "room", RoomType::Group));
    let alice = Account::new(11, "Alice");
    let bob = Account::new(12, "Bob");
    let id = fake
        .add_task(
            7,
            Task::new(alice.clone(), bob.clone(), "do it").due(LimitType::Date, 1_900_000_000),
        )
        .unwrap();
    let (_, rooms) = get(&fake, "/rooms").await;
    assert_eq!(listed(rooms.as_ref().unwrap(), 7)["task_num"], 1);

    assert!(fake.set_task_deadline(7, id, LimitType::Time, 1_900_003_600));
    let (_, tasks) = get(&fake, "/rooms/7/tasks").await;
    assert_eq!(tasks.as_ref().unwrap()[0]["limit_type"], "time");
    assert_eq!(tasks.as_ref().unwrap()[0]["limit_time"], 1_900_003_600_i64);

    assert!(fake.complete_task(7, id));
    assert!(!fake.complete_task(7, id + 100));
    let (_, rooms) = get(&fake, "/rooms").await;
    assert_eq!(listed(rooms.as_ref().unwrap(), 7)["task_num"], 0);
    let (_, done) = get(&fake, "/rooms/7/tasks?status=done").await;
    assert_eq!(done.unwrap()[0]["task_id"], id);

    let file = fake
        .add_file(7, File::new(alice.clone(), "a.txt", b"hello".to_vec()))
        .unwrap();
    let (_, rooms) = get(&fake, "/rooms").await;
    assert_eq!(listed(rooms.as_ref().unwrap(), 7)["file_num"], 1);
    let (_, mine) = get(&fake, "/rooms/7/files?account_id=11").await;
    assert_eq!(mine.unwrap()[0]["filesize"], 5);
    assert_eq!(get(&fake, "/rooms/7/files?account_id=12").await.0, 204);

    assert!(fake.set_room_members(7, vec![Member::new(bob, "Bob Inc.")]));
    let (_, members) = get(&fake, "/rooms/7/members").await;
    assert_eq!(members.unwrap()[0]["organization_name"], "Bob Inc.");
    assert_eq!(
        get(&fake, &format!("/rooms/7/files/{}", file + 1)).await.0,
        404
    );
}

#[tokio::test]
async fn download_urls_work_for_a_while_and_cost_no_budget() {
    let fake = FakeChatwork::start(FakeSettings::default()).await;
    fake.add_room(Room::new(7, "room", RoomType::Group));
    let file = fake
        .add_file(
            7,
            File::new(Account::new(11, "Alice"), "a.bin", vec![1, 2, 3]),
        )
        .unwrap();
    let (status, detail) = get(
        &fake,
        &format!("/rooms/7/files/{file}?create_download_url=1"),
    )
    .await;
    assert_eq!(status, 200);
    let url = detail.unwrap()["download_url"].as_str().unwrap().to_owned();
    let counted = fake.counted_requests();
    let http = reqwest::Client::new();
    let body = http.get(&url).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap().as_ref(), &[1, 2, 3]);
    assert_eq!(
        fake.counted_requests(),
        counted,
        "a download is not an API request"
    );

    fake.expire_download_urls();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 403);

    // The next URL is born expired; the one after works.
    fake.expire_next_download_urls(1);
    for expected in [403, 200] {
        let (_, detail) = get(
            &fake,
            &format!("/rooms/7/files/{file}?create_download_url=1"),
        )
        .await;
        let url = detail.unwrap()["download_url"].as_str().unwrap().to_owned();
        assert_eq!(http.get(&url).send().await.unwrap().status(), expected);
    }
    let statuses: Vec<u16> = fake.downloads().iter().map(|d| d.status).collect();
    assert_eq!(statuses, [200, 403, 403, 200]);
    assert!(fake_chatwork::DOWNLOAD_URL_TTL >= Duration::from_secs(30));
}

#[tokio::test]
async fn members_default_to_the_fakes_accounts_in_the_room() {
    let fake = FakeChatwork::start(FakeSettings::default()).await;
    fake.add_room(Room::new(7, "room", RoomType::Group));
    let (_, members) = get(&fake, "/rooms/7/members").await;
    let members = members.unwrap();
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["account_id"], FakeChatwork::DEFAULT_ACCOUNT_ID);
    assert_eq!(members[0]["organization_name"], "株式会社ニシカゼ");
}
