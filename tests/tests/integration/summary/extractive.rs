//! The built-in extractive summarizer through the consumer runtime.

use cwsync::jobs::{ItemStatus, JobStatus, items};
use cwsync::summary::SummaryContext;
use serde_json::json;

use super::{SummaryRig, at, fixture_conversation, period, urls};

const EXPECTED: &str = "\
Summary draft: Acme, 2025-03-01 00:00 – 2025-03-08 00:00 UTC
11 messages in 2 rooms from 6 people. Most active: 佐藤 健一 (3), Alice (2), Bob (2), 鈴木 花子 (2), Carol (1).

## Project Alpha (room 202): 5 messages
Participants: Alice (2), Bob (2), Carol (1)
Key points:
- 2025-03-05 09:30 Bob [decision]: We decided to ship version 2.0 on March 14 after the final QA pass. https://www.chatwork.com/#!rid202-8000000000000000202
- 2025-03-05 10:00 Alice [task, question, mention]: @Carol Could you send the updated invoice by Friday? Call me at [phone] if anything is unclear. https://www.chatwork.com/#!rid202-8000000000000000203

## 営業チーム (room 101): 6 messages
Participants: 佐藤 健一 (3), 鈴木 花子 (2), 山田 太郎 (1)
Key points:
- 2025-03-03 01:00 佐藤 健一 [mention]: @鈴木さん お疲れ様です。先日の見積もりの件、社内で確認しました。 https://www.chatwork.com/#!rid101-9000000000000000101
- 2025-03-03 02:00 佐藤 健一 [decision, task]: 来週の定例会議は3月11日(火)14:00からに決定しました。場所は本社の会議室、資料は前日までに共有します。 https://www.chatwork.com/#!rid101-9000000000000000103
- 2025-03-03 02:10 鈴木 花子 [question]: 承知しました。資料は何部必要ですか？ https://www.chatwork.com/#!rid101-9000000000000000104
- 2025-03-03 02:20 佐藤 健一 [task, mention]: Re: @鈴木さん 10部お願いします。連絡先は [email] / [phone] です。 https://www.chatwork.com/#!rid101-9000000000000000105
";

#[tokio::test]
async fn summary_extractive_draft_names_the_key_points_with_their_links_every_time() {
    let rig = SummaryRig::new(SummaryContext::extractive()).await;
    fixture_conversation(&rig).await;
    let (start, end) = period();

    let first = rig.draft(start, end).await;
    assert_eq!(first.status, JobStatus::Completed, "{first:?}");
    let drafts = rig.drafts().await;
    assert_eq!(drafts.len(), 1);
    let draft = &drafts[0];
    assert_eq!(draft.content, EXPECTED, "\n{}", draft.content);
    assert_eq!(
        urls(&draft.source_links),
        [
            "https://www.chatwork.com/#!rid202-8000000000000000202",
            "https://www.chatwork.com/#!rid202-8000000000000000203",
            "https://www.chatwork.com/#!rid101-9000000000000000101",
            "https://www.chatwork.com/#!rid101-9000000000000000103",
            "https://www.chatwork.com/#!rid101-9000000000000000104",
            "https://www.chatwork.com/#!rid101-9000000000000000105",
        ]
    );
    assert_eq!(
        draft.source_links[0],
        json!({"url": "https://www.chatwork.com/#!rid202-8000000000000000202", "roomId": 202, "messageId": "8000000000000000202"})
    );
    assert_eq!(draft.model, "extractive");
    assert_eq!(draft.token_usage, None);
    assert_eq!(draft.job_id, Some(first.id));
    // Nothing personal, nothing of another company or outside the period.
    for absent in [
        "sato@example.co.jp",
        "03-1234-5678",
        "90-1234-5678",
        "Other company",
        "前回の件",
        "next week",
    ] {
        assert!(!draft.content.contains(absent), "{absent} leaked");
    }

    // The job's result is the stored draft (DESIGN section 3).
    let result = first.result.clone().unwrap();
    assert_eq!(
        result,
        json!({"draft": {
            "id": draft.id,
            "periodStart": "2025-03-01T00:00:00Z",
            "periodEnd": "2025-03-08T00:00:00Z",
            "content": EXPECTED,
            "sourceLinks": draft.source_links,
            "model": "extractive",
            "tokenUsage": null,
        }})
    );
    let item = &items(rig.pool(), first.id).await.unwrap()[0];
    assert_eq!((item.status, item.fetched), (ItemStatus::Completed, 11));

    // The same messages, another job: the same draft, byte for byte.
    let second = rig.draft(start, end).await;
    assert_eq!(second.status, JobStatus::Completed);
    let drafts = rig.drafts().await;
    assert_eq!(drafts.len(), 2);
    assert_eq!(drafts[1].content, drafts[0].content);
    assert_eq!(drafts[1].source_links, drafts[0].source_links);
    assert_ne!(drafts[1].id, drafts[0].id);
}

#[tokio::test]
async fn summary_of_an_empty_period_completes_with_a_draft_that_says_so() {
    let rig = SummaryRig::new(SummaryContext::extractive()).await;
    fixture_conversation(&rig).await;
    let job = rig.draft(at(2025, 4, 1, 0, 0), at(2025, 4, 8, 0, 0)).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let drafts = rig.drafts().await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(
        drafts[0].content,
        "Summary draft: Acme, 2025-04-01 00:00 – 2025-04-08 00:00 UTC\n\nNo messages with Acme in this period: nothing to summarize.\n"
    );
    assert_eq!(drafts[0].source_links, json!([]));
    let result = job.result.unwrap();
    assert_eq!(result["draft"]["id"], json!(drafts[0].id));
    assert_eq!(result["draft"]["sourceLinks"], json!([]));
    assert_eq!(result["draft"]["model"], "extractive");
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!((item.status, item.fetched), (ItemStatus::Completed, 0));
}

#[tokio::test]
async fn summary_of_a_company_that_was_deleted_fails_without_retries() {
    let rig = SummaryRig::new(SummaryContext::extractive()).await;
    let job = rig.start(at(2025, 3, 1, 0, 0), at(2025, 3, 2, 0, 0)).await;
    // The job keeps its payload; the company goes (and its drafts with it).
    sqlx::query("DELETE FROM companies WHERE id = $1")
        .bind(rig.company)
        .execute(rig.pool())
        .await
        .unwrap();
    let job = rig.run_to_end(job.id).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!(item.attempts, 1);
    assert_eq!(item.error.as_ref().unwrap().name, "CompanyNotFound");
}
