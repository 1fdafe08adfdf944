//! Chatwork's tasks in summary drafts: the company's overdue, added and done tasks of the
//! period, with assignees and deadlines in the draft's language and zone, in the
//! extractive draft and given to a model.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cwsync::jobs::JobStatus;
use cwsync::summary::SummaryContext;
use cwsync::summary::chat_client::ChatModelSettings;
use cwsync::summary::chat_model::ChatModel;
use cwsync::summary::locale::{DraftStyle, Language, LanguageChoice};
use cwsync_tests::FakeModel;
use uuid::Uuid;

use super::{SummaryRig, at};

const JA_TASKS: &str = "\
## Chatworkのタスク
### 期限切れ（未完了）
- 佐藤 健一 担当（依頼：田中 花子） 期限：12/7(月) 18:00：見積書を送付する［営業チーム］
### 期間中に追加
- 佐藤 健一 担当（依頼：田中 花子） 期限：12/20(日)：契約書を確認する［営業チーム］
### 期間中に完了
- 鈴木 美咲 担当 期限なし：請求書を送る［営業チーム］
";

const EN_TASKS: &str = "\
## Chatwork tasks
### Overdue (still open)
- 佐藤 健一, assigned by 田中 花子, due Mon Dec 7 18:00: 見積書を送付する [営業チーム]
### Added in the period
- 佐藤 健一, assigned by 田中 花子, due Sun Dec 20: 契約書を確認する [営業チーム]
### Done in the period
- 鈴木 美咲, no deadline: 請求書を送る [営業チーム]
";

/// The first week of December 2026 (UTC).
fn period() -> (DateTime<Utc>, DateTime<Utc>) {
    (at(2026, 12, 1, 0, 0), at(2026, 12, 8, 0, 0))
}

struct Task<'a> {
    id: i64,
    room_id: i64,
    assignee: &'a str,
    assigned_by: Option<&'a str>,
    body: &'a str,
    limit: (&'a str, Option<DateTime<Utc>>),
    status: &'a str,
    first_seen: DateTime<Utc>,
    done_seen: Option<DateTime<Utc>>,
}

async fn task(rig: &SummaryRig, t: Task<'_>) {
    sqlx::query(
        "INSERT INTO chatwork_tasks (task_id, chatwork_room_id, room_id, account_id, account_name,
                                     assigned_by_account_name, body, limit_type, limit_time,
                                     status, first_seen_at, done_seen_at)
         SELECT $1, r.id, r.room_id, 1001, $3, $4, $5, $6, $7, $8, $9, $10
           FROM chatwork_rooms r WHERE r.room_id = $2",
    )
    .bind(t.id)
    .bind(t.room_id)
    .bind(t.assignee)
    .bind(t.assigned_by)
    .bind(t.body)
    .bind(t.limit.0)
    .bind(t.limit.1)
    .bind(t.status)
    .bind(t.first_seen)
    .bind(t.done_seen)
    .execute(rig.pool())
    .await
    .unwrap();
}

/// The company's room with one message in the period and tasks of every kind: overdue
/// (a `time` deadline at 09:00 UTC, 18:00 in Tokyo), added (a `date` deadline, Chatwork's
/// day end in Tokyo), done, one long open without a deadline (nothing to say), and an
/// overdue one of another company's room.
async fn tasks_fixture(rig: &SummaryRig, with_message: bool) {
    rig.room(rig.company, 101, "営業チーム").await;
    let other: Uuid =
        sqlx::query_scalar("INSERT INTO companies (name) VALUES ('Other') RETURNING id")
            .fetch_one(rig.pool())
            .await
            .unwrap();
    rig.room(other, 303, "Other's room").await;
    if with_message {
        rig.message(
            101,
            "9000000000000000101",
            (1001, "佐藤 健一"),
            "見積書は来週お送りします。",
            at(2026, 12, 2, 1, 0),
        )
        .await;
    }
    let sato = "佐藤 健一";
    let tanaka = Some("田中 花子");
    for t in [
        Task {
            id: 501,
            room_id: 101,
            assignee: sato,
            assigned_by: tanaka,
            body: "見積書を送付する",
            limit: ("time", Some(at(2026, 12, 7, 9, 0))),
            status: "open",
            first_seen: at(2026, 11, 20, 0, 0),
            done_seen: None,
        },
        Task {
            id: 502,
            room_id: 101,
            assignee: sato,
            assigned_by: tanaka,
            body: "契約書を確認する",
            limit: ("date", Some("2026-12-20T14:59:59Z".parse().unwrap())),
            status: "open",
            first_seen: at(2026, 12, 3, 0, 0),
            done_seen: None,
        },
        Task {
            id: 503,
            room_id: 101,
            assignee: "鈴木 美咲",
            assigned_by: None,
            body: "請求書を送る",
            limit: ("none", None),
            status: "done",
            first_seen: at(2026, 11, 1, 0, 0),
            done_seen: Some(at(2026, 12, 4, 0, 0)),
        },
        Task {
            id: 504,
            room_id: 101,
            assignee: sato,
            assigned_by: tanaka,
            body: "いつか整理する",
            limit: ("none", None),
            status: "open",
            first_seen: at(2026, 10, 1, 0, 0),
            done_seen: None,
        },
        Task {
            id: 505,
            room_id: 303,
            assignee: sato,
            assigned_by: tanaka,
            body: "他社の件",
            limit: ("time", Some(at(2026, 12, 2, 0, 0))),
            status: "open",
            first_seen: at(2026, 11, 1, 0, 0),
            done_seen: None,
        },
    ] {
        task(rig, t).await;
    }
}

async fn draft_of(context: SummaryContext, with_message: bool) -> String {
    let rig = SummaryRig::new(context).await;
    tasks_fixture(&rig, with_message).await;
    let (start, end) = period();
    let job = rig.draft(start, end).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    rig.drafts().await.remove(0).content
}

fn style(language: Language) -> DraftStyle {
    DraftStyle {
        language: LanguageChoice::Fixed(language),
        ..DraftStyle::default()
    }
}

#[tokio::test]
async fn summary_lists_the_companys_tasks_with_deadlines_in_tokyo_time() {
    let ja = draft_of(SummaryContext::extractive(), true).await;
    assert!(ja.contains(JA_TASKS), "\n{ja}");
    // Before the rooms, after the overview.
    let tasks_at = ja.find("## Chatworkのタスク").unwrap();
    assert!(tasks_at < ja.find("## 営業チーム").unwrap(), "\n{ja}");
    assert!(
        ja.starts_with("要約案：Acme\n期間：2026年12月1日(火) 09:00"),
        "\n{ja}"
    );
    for absent in ["いつか整理する", "他社の件"] {
        assert!(!ja.contains(absent), "{absent} listed:\n{ja}");
    }

    let en = draft_of(
        SummaryContext::extractive_in(style(Language::English)),
        true,
    )
    .await;
    assert!(en.contains(EN_TASKS), "\n{en}");

    // Without messages, the draft says so and still lists the tasks.
    let quiet = draft_of(
        SummaryContext::extractive_in(style(Language::Japanese)),
        false,
    )
    .await;
    assert!(quiet.contains("やり取りはありません"), "\n{quiet}");
    assert!(quiet.ends_with(&format!("\n\n{JA_TASKS}")), "\n{quiet}");
}

#[tokio::test]
async fn summary_model_gets_the_tasks_and_its_draft_lists_them_as_chatwork_has_them() {
    let fake = FakeModel::start().await;
    let settings = ChatModelSettings {
        base_url: url::Url::parse(&fake.base_url).unwrap(),
        model: "fake-model".into(),
        api_key: None,
        request_timeout: Duration::from_secs(10),
        context_tokens: 16_000,
        max_attempts: 2,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        style: style(Language::Japanese),
    };
    let content = draft_of(
        SummaryContext {
            summarizer: Arc::new(ChatModel::new(settings).unwrap()),
        },
        true,
    )
    .await;
    let requests = fake.requests();
    let user = requests[0].user();
    assert!(
        user.contains("次はChatworkに登録されたこの期間のタスクです"),
        "{user}"
    );
    assert!(user.contains(JA_TASKS), "{user}");
    assert!(content.contains(JA_TASKS), "\n{content}");
    assert!(
        content.find(JA_TASKS).unwrap() < content.find("- part:").unwrap(),
        "\n{content}"
    );
}
