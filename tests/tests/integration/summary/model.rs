//! The OpenAI-compatible summarizer against a fake chat-completions server on loopback.

use cwsync::jobs::JobSpec as _;

use std::sync::Arc;
use std::time::Duration;

use cwsync::jobs::{ItemStatus, JobConsumer, JobStatus, items};
use cwsync::summary::chat_client::ChatModelSettings;
use cwsync::summary::chat_model::{ChatModel, estimate_tokens};
use cwsync::summary::locale::{DraftStyle, Language, LanguageChoice};
use cwsync::summary::{SummaryContext, SummaryDraft};
use cwsync_tests::{FakeModel, ModelReply, eventually};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

use super::{SummaryRig, at, fixture_conversation, period, urls};

const KEY: &str = "sk-test-key-0123456789";

fn settings(fake: &FakeModel, context_tokens: u32) -> ChatModelSettings {
    ChatModelSettings {
        base_url: Url::parse(&fake.base_url).unwrap(),
        model: "fake-model".into(),
        api_key: Some(SecretString::from(KEY)),
        request_timeout: Duration::from_secs(10),
        context_tokens,
        max_attempts: 4,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        style: DraftStyle::default(),
    }
}

fn context(fake: &FakeModel, context_tokens: u32) -> SummaryContext {
    SummaryContext {
        summarizer: Arc::new(ChatModel::new(settings(fake, context_tokens)).unwrap()),
    }
}

/// Sixty long messages in one room over three days.
async fn long_period(rig: &SummaryRig) {
    rig.room(rig.company, 101, "営業チーム").await;
    for i in 0..60u32 {
        let body = format!(
            "第{i}回の打ち合わせメモ：{}連絡は sato{i}@example.co.jp まで。",
            "進捗を確認しました。".repeat(8)
        );
        rig.message(
            101,
            &format!("{}", 9_000_000_000_000_000_000u64 + u64::from(i)),
            (1001, "佐藤 健一"),
            &body,
            at(2025, 3, 2 + i / 24, i % 24, 0),
        )
        .await;
    }
}

#[tokio::test]
async fn summary_model_gets_masked_messages_retries_429_and_503_and_records_usage() {
    let fake = FakeModel::start().await;
    fake.script([
        ModelReply::status(429, r#"{"error": {"message": "Rate limit reached"}}"#)
            .with_header("retry-after", "1"),
        ModelReply::status(503, "upstream unavailable"),
    ]);
    let rig = SummaryRig::new(context(&fake, 16_000)).await;
    fixture_conversation(&rig).await;
    let (start, end) = period();
    let job = rig.draft(start, end).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "the 429, the 503, then the answer");
    assert!(
        requests[1].at - requests[0].at >= Duration::from_millis(950),
        "retry-after: 1 was honoured"
    );
    for r in &requests {
        assert_eq!(r.body, requests[0].body, "a retry sends the same request");
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    let body = &requests[0].body;
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["temperature"], 0);
    assert_eq!(body["max_tokens"], 2048);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    // Mostly Japanese: the instructions and the request are Japanese, times in Tokyo.
    let system = requests[0].system();
    assert!(system.contains("日本語で"), "{system}");
    assert!(
        system.contains(
            "「### 決定事項」「### 依頼・期限」（誰が誰に何を依頼したか。メッセージに期限があればその期限も）\
             「### 未回答の質問」（後のメッセージで回答も引用もされていない質問）「### その他の注目メッセージ」"
        ),
        "{system}"
    );
    assert!(system.contains("[#n] の形で挙げてください"), "{system}");
    let user = requests[0].user();
    assert!(
        user.starts_with(
            "会社：Acme。期間：2025年3月1日(土) 09:00 〜 3月8日(土) 09:00（日本時間）。\n\
             次のメッセージを要約してください。\n\n\
             [#1] 2025-03-05 18:00 Project Alpha / Alice: Hi all, quick update on the rollout.\n"
        ),
        "{user}"
    );
    assert_eq!(requests[0].line_numbers(), (1..=12).collect::<Vec<_>>());
    assert!(user.contains("[#11] 2025-03-04 09:00 営業チーム / 山田 太郎: 了解です"));
    assert!(user.contains("[#10] 2025-03-03 11:20 営業チーム / 佐藤 健一: Re: @鈴木さん ⏎ 10部お願いします。連絡先は [email] / [phone] です。"), "{user}");
    assert!(
        user.contains("Call me at [phone] if anything is unclear."),
        "{user}"
    );
    // What the model was sent carries no e-mail address or phone number.
    for r in &requests {
        let sent = r.body.to_string();
        for personal in ["sato@example.co.jp", "03-1234-5678", "90-1234-5678", "+81"] {
            assert!(!sent.contains(personal), "{personal} was sent to the model");
        }
        assert!(!sent.contains("Other company") && !sent.contains("dtext"));
    }

    let drafts = rig.drafts().await;
    assert_eq!(drafts.len(), 1);
    let draft = &drafts[0];
    assert_eq!(draft.model, "fake-model");
    assert_eq!(
        draft.token_usage,
        Some(
            json!({"promptTokens": 100, "completionTokens": 20, "totalTokens": 120, "requests": 1})
        )
    );
    assert_eq!(
        draft.content,
        "要約案：Acme\n期間：2025年3月1日(土) 09:00 〜 3月8日(土) 09:00（日本時間）\n\n\
         - part: messages #1 to #12 [1][2]\n\n\
         出典：\n\
         [1] https://www.chatwork.com/#!rid202-8000000000000000201\n\
         [2] https://www.chatwork.com/#!rid101-9000000000000000108\n"
    );
    assert_eq!(
        urls(&draft.source_links),
        [
            "https://www.chatwork.com/#!rid202-8000000000000000201",
            "https://www.chatwork.com/#!rid101-9000000000000000108",
        ]
    );
    assert_eq!(
        job.result.unwrap()["draft"]["tokenUsage"]["totalTokens"],
        120
    );
}

#[tokio::test]
async fn summary_model_is_asked_in_english_when_the_draft_is_english() {
    let fake = FakeModel::start().await;
    let mut settings = settings(&fake, 16_000);
    settings.style = DraftStyle {
        language: LanguageChoice::Fixed(Language::English),
        time_zone: "UTC".parse().unwrap(),
    };
    let rig = SummaryRig::new(SummaryContext {
        summarizer: Arc::new(ChatModel::new(settings).unwrap()),
    })
    .await;
    fixture_conversation(&rig).await;
    let (start, end) = period();
    let job = rig.draft(start, end).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let requests = fake.requests();
    let system = requests[0].system();
    assert!(system.contains("Write in English."), "{system}");
    assert!(
        system.contains(
            "\"### Decisions\", \"### Requests and deadlines\" (who asked whom for what, with the deadline when a message states one), \
             \"### Open questions\" (questions no later message answers or quotes), \"### Other notable messages\""
        ),
        "{system}"
    );
    let user = requests[0].user();
    assert!(
        user.starts_with(
            "Company: Acme. Period: Sat Mar 1, 2025 00:00 – Sat Mar 8, 2025 00:00 (UTC time).\n\
             Summarize these messages.\n\n\
             [#1] 2025-03-05 09:00 Project Alpha / Alice: Hi all, quick update on the rollout.\n"
        ),
        "{user}"
    );
    assert_eq!(
        rig.drafts().await[0].content,
        "Summary draft: Acme\nPeriod: Sat Mar 1, 2025 00:00 – Sat Mar 8, 2025 00:00 (UTC time)\n\n\
         - part: messages #1 to #12 [1][2]\n\n\
         Sources:\n\
         [1] https://www.chatwork.com/#!rid202-8000000000000000201\n\
         [2] https://www.chatwork.com/#!rid101-9000000000000000108\n"
    );
}

#[tokio::test]
async fn summary_model_reads_a_long_period_in_chunks_then_combines_them() {
    let fake = FakeModel::start().await;
    let rig = SummaryRig::new(context(&fake, 1024)).await;
    long_period(&rig).await;
    let job = rig.draft(at(2025, 3, 1, 0, 0), at(2025, 3, 8, 0, 0)).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");

    let requests = fake.requests();
    let (maps, combines): (Vec<_>, Vec<_>) = requests.iter().partition(|r| !r.is_combine());
    assert!(maps.len() >= 2, "{} chunks", maps.len());
    assert!(!combines.is_empty());
    assert!(requests.last().unwrap().is_combine(), "reduce comes last");
    assert!(
        requests[..maps.len()].iter().all(|r| !r.is_combine()),
        "map first"
    );
    // Every message is read once, in order, in chunks that fit the context.
    let read: Vec<usize> = maps.iter().flat_map(|r| r.line_numbers()).collect();
    assert_eq!(read, (1..=60).collect::<Vec<_>>());
    for r in &requests {
        let max_tokens = r.body["max_tokens"].as_u64().unwrap() as usize;
        assert_eq!(max_tokens, 256);
        let prompt = estimate_tokens(r.system()) + estimate_tokens(r.user());
        assert!(
            prompt + max_tokens <= 1024,
            "{prompt} + {max_tokens} tokens"
        );
        assert!(!r.body.to_string().contains("@example.co.jp"));
    }
    // The combine request carries every chunk's summary.
    let combined_input: String = combines.iter().map(|r| r.user()).collect();
    for (i, map) in maps.iter().enumerate() {
        let first = map.line_numbers()[0];
        assert!(combined_input.contains(&format!("[#{first}]")), "chunk {i}");
    }

    let drafts = rig.drafts().await;
    assert_eq!(drafts.len(), 1);
    let usage = drafts[0].token_usage.clone().unwrap();
    assert_eq!(usage["requests"], requests.len());
    assert_eq!(usage["promptTokens"], 100 * requests.len());
    let links = urls(&drafts[0].source_links);
    assert_eq!(
        links.first().unwrap(),
        "https://www.chatwork.com/#!rid101-9000000000000000000"
    );
    assert_eq!(
        links.last().unwrap(),
        "https://www.chatwork.com/#!rid101-9000000000000000059"
    );
    assert!(
        drafts[0]
            .content
            .contains("\n出典：\n[1] https://www.chatwork.com/#!rid101-9000000000000000000\n"),
        "a Japanese period: Japanese words"
    );
}

#[tokio::test]
async fn summary_canceled_between_chunks_stops_and_stores_nothing() {
    let fake = FakeModel::start().await;
    let rig = SummaryRig::new(context(&fake, 1024)).await;
    long_period(&rig).await;
    fake.hold_next(1);
    let job = rig.start(at(2025, 3, 1, 0, 0), at(2025, 3, 8, 0, 0)).await;
    let polling = {
        let source = rig.source(SummaryDraft::QUEUE);
        let consumer = rig.consumer.clone();
        tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() })
    };
    eventually(
        "the first chunk's request",
        Duration::from_secs(20),
        || async { fake.requests().len() == 1 },
    )
    .await;
    cwsync::jobs::cancel(rig.pool(), &cwsync::job_types::registry(), job.id)
        .await
        .unwrap();
    fake.release();
    assert_eq!(polling.await.unwrap(), 1);

    let job = rig.job(job.id).await;
    assert_eq!(job.status, JobStatus::Canceled);
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!(item.status, ItemStatus::Canceled);
    assert_eq!(fake.requests().len(), 1, "no chunk after the cancel");
    assert!(rig.drafts().await.is_empty());
}

#[tokio::test]
async fn summary_redelivered_while_drafting_stores_one_draft() {
    let fake = FakeModel::start().await;
    let context = context(&fake, 16_000);
    let rig = SummaryRig::new(context.clone()).await;
    fixture_conversation(&rig).await;
    // The first delivery's request is held past the queue's visibility timeout (500 ms),
    // so the message is delivered again, to another consumer, while the first works.
    fake.hold_next(1);
    let (start, end) = period();
    let job = rig.start(start, end).await;
    let first = {
        let source = rig.source(SummaryDraft::QUEUE);
        let consumer = rig.consumer.clone();
        tokio::spawn(async move { source.poll_once(&consumer).await.unwrap() })
    };
    eventually(
        "the first delivery's request",
        Duration::from_secs(20),
        || async { fake.requests().len() == 1 },
    )
    .await;
    let second: JobConsumer<SummaryDraft> =
        JobConsumer::new(rig.db.another_pool(), rig.queues.clone(), Arc::new(context));
    let source = rig.source(SummaryDraft::QUEUE);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !rig.job(job.id).await.status.is_terminal() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second delivery did not finish"
        );
        if source.poll_once(&second).await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    fake.release();
    assert_eq!(first.await.unwrap(), 1);

    let job = rig.job(job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(fake.requests().len(), 2, "each delivery drafted");
    let drafts = rig.drafts().await;
    assert_eq!(drafts.len(), 1, "one draft for the job");
    assert_eq!(drafts[0].job_id, Some(job.id));
    assert_eq!(job.result.unwrap()["draft"]["id"], json!(drafts[0].id));
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!(item.status, ItemStatus::Completed);
}

#[tokio::test]
async fn summary_model_refusing_the_key_fails_the_job_without_showing_it() {
    let fake = FakeModel::start().await;
    fake.script([ModelReply::status(
        401,
        &format!(r#"{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}"#),
    )]);
    let rig = SummaryRig::new(context(&fake, 16_000)).await;
    fixture_conversation(&rig).await;
    let (start, end) = period();
    let job = rig.draft(start, end).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(fake.requests().len(), 1, "a refused key is not retried");
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!(item.error.as_ref().unwrap().name, "ModelUnauthorized");
    let everything = format!("{:?} {:?}", job, item);
    assert!(!everything.contains("sk-test-key"), "{everything}");
    assert!(rig.drafts().await.is_empty());
}

#[tokio::test]
async fn summary_model_that_hangs_then_fails_sends_the_record_back_and_a_redelivery_drafts() {
    let fake = FakeModel::start().await;
    // The first request hangs past the timeout, the retry gets a 503: the call's two
    // attempts are spent.
    fake.hold_next(1);
    fake.script([ModelReply::status(503, "overloaded")]);
    let mut settings = settings(&fake, 16_000);
    settings.request_timeout = Duration::from_millis(300);
    settings.max_attempts = 2;
    let rig = SummaryRig::new(SummaryContext {
        summarizer: Arc::new(ChatModel::new(settings).unwrap()),
    })
    .await;
    fixture_conversation(&rig).await;
    let (start, end) = period();
    let job = rig.start(start, end).await;

    // The first delivery gives up: the record fails (back to the queue), the item stays
    // open with the reason, and nothing is stored.
    let work = rig.source(SummaryDraft::QUEUE);
    let mut polled = 0;
    while polled == 0 {
        polled = work.poll_once(&rig.consumer).await.unwrap();
    }
    fake.release();
    assert_eq!(fake.requests().len(), 2, "a timeout and a 503");
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!(item.status, ItemStatus::Processing, "{item:?}");
    assert_eq!(item.error.as_ref().unwrap().name, "RetryableError");
    let reason = item.error.as_ref().unwrap().message.as_str();
    assert!(reason.contains("503"), "{reason}");
    assert!(rig.drafts().await.is_empty());

    // The redelivery (after the visibility timeout) drafts once.
    let job = rig.run_to_end(job.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(rig.drafts().await.len(), 1);
    assert_eq!(fake.requests().len(), 3);
    let item = &items(rig.pool(), job.id).await.unwrap()[0];
    assert_eq!(item.attempts, 2);
}
