//! The built-in extractive summarizer through the consumer runtime.

use cwsync::jobs::{ItemStatus, JobStatus, items};
use cwsync::summary::SummaryContext;
use cwsync::summary::locale::{DraftStyle, Language, LanguageChoice};
use serde_json::json;

use super::{SummaryRig, at, english_conversation, fixture_conversation, period, urls};

/// The fixture's draft with the default settings: `auto` finds it mostly Japanese; times
/// in Tokyo (the messages were sent 01:00 to 11:00 UTC). The answered question
/// (「資料は何部必要ですか？」, answered by a reply) is left out; the unanswered one is open.
const EXPECTED: &str = "\
要約案：Acme
期間：2025年3月1日(土) 09:00 〜 3月8日(土) 09:00（日本時間）
2つのルームで12件のメッセージ、参加者6名。発言の多い人：佐藤 健一（3件）、Alice（2件）、Bob（2件）、山田 太郎（2件）、鈴木 花子（2件）

## Project Alpha（ルーム 202）：5件
参加者：Alice（2件）、Bob（2件）、Carol（1件）
### 決定事項
- 3/5(水) 18:30 Bob：We decided to ship version 2.0 on March 14 after the final QA pass. https://www.chatwork.com/#!rid202-8000000000000000202
### 依頼・期限
- 3/5(水) 19:00 Alice（期限：by Friday）：@Carol Could you send the updated invoice by Friday? Call me at [phone] if anything is unclear. https://www.chatwork.com/#!rid202-8000000000000000203

## 営業チーム（ルーム 101）：7件
参加者：佐藤 健一（3件）、山田 太郎（2件）、鈴木 花子（2件）
### 決定事項
- 3/3(月) 11:00 佐藤 健一（期限：前日まで）：来週の定例会議は3月11日(火)14:00からに決定しました。場所は本社の会議室、資料は前日までに共有します。 https://www.chatwork.com/#!rid101-9000000000000000103
### 依頼・期限
- 3/3(月) 11:20 佐藤 健一：Re: @鈴木さん 10部お願いします。連絡先は [email] / [phone] です。 https://www.chatwork.com/#!rid101-9000000000000000105
### 未回答の質問
- 3/4(火) 09:30 山田 太郎：来月分の請求書の送付先は、本社宛てのままでよろしいでしょうか？ https://www.chatwork.com/#!rid101-9000000000000000108
### その他の注目メッセージ
- 3/3(月) 10:00 佐藤 健一：@鈴木さん お疲れ様です。先日の見積もりの件、社内で確認しました。 https://www.chatwork.com/#!rid101-9000000000000000101
";

/// The same with `SUMMARY_LANGUAGE=en`: the same points, English words.
const EXPECTED_EN: &str = "\
Summary draft: Acme
Period: Sat Mar 1, 2025 09:00 – Sat Mar 8, 2025 09:00 (Asia/Tokyo time)
12 messages in 2 rooms from 6 people. Most active: 佐藤 健一 (3), Alice (2), Bob (2), 山田 太郎 (2), 鈴木 花子 (2).

## Project Alpha (room 202): 5 messages
Participants: Alice (2), Bob (2), Carol (1)
### Decisions
- Wed Mar 5 18:30 Bob: We decided to ship version 2.0 on March 14 after the final QA pass. https://www.chatwork.com/#!rid202-8000000000000000202
### Requests and deadlines
- Wed Mar 5 19:00 Alice (due by Friday): @Carol Could you send the updated invoice by Friday? Call me at [phone] if anything is unclear. https://www.chatwork.com/#!rid202-8000000000000000203

## 営業チーム (room 101): 7 messages
Participants: 佐藤 健一 (3), 山田 太郎 (2), 鈴木 花子 (2)
### Decisions
- Mon Mar 3 11:00 佐藤 健一 (due 前日まで): 来週の定例会議は3月11日(火)14:00からに決定しました。場所は本社の会議室、資料は前日までに共有します。 https://www.chatwork.com/#!rid101-9000000000000000103
### Requests and deadlines
- Mon Mar 3 11:20 佐藤 健一: Re: @鈴木さん 10部お願いします。連絡先は [email] / [phone] です。 https://www.chatwork.com/#!rid101-9000000000000000105
### Open questions
- Tue Mar 4 09:30 山田 太郎: 来月分の請求書の送付先は、本社宛てのままでよろしいでしょうか？ https://www.chatwork.com/#!rid101-9000000000000000108
### Other notable messages
- Mon Mar 3 10:00 佐藤 健一: @鈴木さん お疲れ様です。先日の見積もりの件、社内で確認しました。 https://www.chatwork.com/#!rid101-9000000000000000101
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
            "https://www.chatwork.com/#!rid101-9000000000000000103",
            "https://www.chatwork.com/#!rid101-9000000000000000105",
            "https://www.chatwork.com/#!rid101-9000000000000000108",
            "https://www.chatwork.com/#!rid101-9000000000000000101",
        ],
        "in the order the draft cites them"
    );
    assert_eq!(
        draft.source_links[0],
        json!({"url": "https://www.chatwork.com/#!rid202-8000000000000000202", "roomId": 202, "messageId": "8000000000000000202"})
    );
    assert_eq!(draft.model, "extractive");
    assert_eq!(draft.token_usage, None);
    assert_eq!(draft.job_id, Some(first.id));
    assert!(
        !draft.content.contains("何部必要ですか"),
        "the answered question is not listed"
    );
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

    // The job's result is the stored draft.
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
    assert_eq!((item.status, item.fetched), (ItemStatus::Completed, 12));

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
        "Summary draft: Acme\nPeriod: Tue Apr 1, 2025 09:00 – Tue Apr 8, 2025 09:00 (Asia/Tokyo time)\n\n\
         No messages with Acme in this period: nothing to summarize.\n",
        "no text to tell the language by: English"
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

fn in_english() -> SummaryContext {
    SummaryContext::extractive_in(DraftStyle {
        language: LanguageChoice::Fixed(Language::English),
        ..DraftStyle::default()
    })
}

#[tokio::test]
async fn summary_extractive_draft_in_english_has_the_same_points_in_english_words() {
    let rig = SummaryRig::new(in_english()).await;
    fixture_conversation(&rig).await;
    let (start, end) = period();
    let job = rig.draft(start, end).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let drafts = rig.drafts().await;
    assert_eq!(drafts[0].content, EXPECTED_EN, "\n{}", drafts[0].content);
}

#[tokio::test]
async fn summary_language_auto_picks_english_for_an_english_conversation() {
    let rig = SummaryRig::new(SummaryContext::extractive()).await;
    english_conversation(&rig).await;
    let (start, end) = period();
    let job = rig.draft(start, end).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let content = &rig.drafts().await[0].content;
    assert!(
        content.starts_with(
            "Summary draft: Acme\nPeriod: Sat Mar 1, 2025 09:00 – Sat Mar 8, 2025 09:00 (Asia/Tokyo time)\n\
             5 messages in 1 room from 3 people. Most active: Alice (2), Bob (2), Carol (1).\n"
        ),
        "{content}"
    );
    assert!(
        content.contains("\n### Requests and deadlines\n- Wed Mar 5 19:00 Alice (due by Friday): "),
        "{content}"
    );
}
