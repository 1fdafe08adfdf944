//! A summarizer backed by any OpenAI-compatible chat-completions API: the map-reduce
//! over the HTTP client of [`chat_client`](super::chat_client), which sends each request
//! (timeouts, retries, the key).
//!
//! # Chunks
//!
//! Each message is one line, `[#n] time room / author: text` (the time local to
//! `SUMMARY_TIME_ZONE`), numbered across the period. When the lines do not fit the context budget (`SUMMARY_CONTEXT_TOKENS`, less
//! the answer's share and the instructions), they are split into chunks that do; each
//! chunk is summarized on its own (map), and the partial summaries are combined (reduce),
//! in more than one round when even they do not fit. Tokens are estimated, not counted:
//! a quarter token per ASCII character and one per other character, which overestimates
//! English and is about right for Japanese. Cancellation is checked before every request.
//!
//! # Language and structure
//!
//! The instructions and requests are written in the draft's language (`SUMMARY_LANGUAGE`,
//! or the language most of the period is written in), and ask the model to write in it,
//! in the extractive draft's groups and order: decisions, requests and deadlines, open
//! questions (no later message answers or quotes them), other notable points. The draft
//! opens with the same heading as the extractive one (company, period, zone). The
//! period's Chatwork tasks go with every request (after the company and period, with
//! their exact assignees and deadlines, to be preferred over what the messages suggest),
//! and the draft lists them after its heading as the extractive draft does.
//!
//! # Citations
//!
//! The model is asked to cite the lines it used as `[#n]`. The draft renumbers the
//! citations it finds in order of first use (`[1]`, `[2]`, ...), lists their links under
//! "Sources" (「出典」), and stores them as the draft's `sourceLinks`; a citation of a line that
//! does not exist is dropped.

use std::sync::LazyLock;

use async_trait::async_trait;
use regex_lite::Regex;

use super::chat_client::{ChatClient, ChatModelSettings, ChatModelSetupError, TokenUsage};
use super::locale::{Language, Locale};
use super::transcript::{Line, SourceLink, Transcript};
use super::{Checkpoint, SummarizeError, Summarizer, Summary};
use crate::jobs::ErrorInfo;

/// See the module documentation.
#[derive(Debug)]
pub struct ChatModel {
    client: ChatClient,
}

impl ChatModel {
    pub fn new(settings: ChatModelSettings) -> Result<Self, ChatModelSetupError> {
        Ok(Self {
            client: ChatClient::new(settings)?,
        })
    }

    /// Tokens one chunk of lines may take, besides the instructions and the answer.
    fn chunk_budget(&self, instructions: &str) -> usize {
        let settings = self.client.settings();
        let fixed = settings.answer_tokens() as usize + estimate_tokens(instructions) + 64;
        (settings.context_tokens as usize)
            .saturating_sub(fixed)
            .max(64)
    }
}

/// Estimated tokens of `text` (see the module documentation).
pub fn estimate_tokens(text: &str) -> usize {
    let (ascii, other) = text.chars().fold((0usize, 0usize), |(a, o), c| {
        if c.is_ascii() { (a + 1, o) } else { (a, o + 1) }
    });
    ascii.div_ceil(4) + other
}

/// `text` cut so that it is estimated at most `budget` tokens.
fn fit(text: &str, budget: usize) -> String {
    if estimate_tokens(text) <= budget {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0.0f64;
    for c in text.chars() {
        let cost = if c.is_ascii() { 0.25 } else { 1.0 };
        if used + cost + 1.0 > budget as f64 {
            break;
        }
        used += cost;
        out.push(c);
    }
    out.push('…');
    out
}

const MAP_INSTRUCTIONS_EN: &str = "You draft summaries of business chat between our team and one customer company, \
for a colleague who will review and edit the draft. Write in English. \
Be factual and brief and invent nothing; leave out greetings and small talk. \
Group the points under these headings, in this order, leaving out a heading with nothing under it: \
\"### Decisions\", \"### Requests and deadlines\" (who asked whom for what, with the deadline when a message states one), \
\"### Open questions\" (questions no later message answers or quotes), \"### Other notable messages\". \
Each message is one line: [#n] time room / author: text. Lines starting with > inside a message quote an earlier message. \
Cite the messages each point comes from right after it, as [#n] for each. \
Personal data was replaced by [email] and [phone]; keep these placeholders as they are.";

const MAP_INSTRUCTIONS_JA: &str = "あなたは、当社のチームと顧客企業1社とのビジネスチャットの要約案を書きます。\
読み手は、この案を確認して手直しする同僚です。日本語で、事実だけを簡潔に書き、推測で補わないでください。あいさつや雑談は省きます。\
要点は次の見出しの順にまとめ、該当のない見出しは省いてください：\
「### 決定事項」「### 依頼・期限」（誰が誰に何を依頼したか。メッセージに期限があればその期限も）\
「### 未回答の質問」（後のメッセージで回答も引用もされていない質問）「### その他の注目メッセージ」。\
メッセージは1行に1件、「[#n] 日時 ルーム / 発言者: 本文」の形です。本文中の > で始まる行は、以前のメッセージの引用です。\
各要点の直後に、根拠となったメッセージを [#n] の形で挙げてください。\
個人情報は [email] と [phone] に置き換えてあります。この表記はそのまま残してください。";

/// The English reduce instructions; the fake model of the tests tells a combine request
/// by its "combine partial summaries" (「部分要約をまとめ」 in Japanese).
const REDUCE_INSTRUCTIONS_EN: &str = "You combine partial summaries of consecutive parts of one period of business chat \
between our team and one customer company into one summary, for a colleague who will review and edit it. \
Write in English. Merge points that repeat, keep every decision, request, deadline, \
open question and next step, and invent nothing. Keep the headings and their order: \
\"### Decisions\", \"### Requests and deadlines\", \"### Open questions\", \"### Other notable messages\"; \
a question that a later part answers is no longer open. \
Keep the citations [#n] of every point you keep, exactly as written. \
Keep the placeholders [email] and [phone] as they are.";

const REDUCE_INSTRUCTIONS_JA: &str = "あなたは、当社のチームと顧客企業1社とのビジネスチャットについて、\
1つの期間を順に区切った部分要約をまとめ、1つの要約にします。読み手は、これを確認して手直しする同僚です。\
日本語で書き、重複する要点はまとめ、決定事項・依頼・期限・未回答の質問・次の対応はすべて残し、推測で補わないでください。\
見出しとその順序「### 決定事項」「### 依頼・期限」「### 未回答の質問」「### その他の注目メッセージ」は保ってください。\
後の部分で回答された質問は、未回答ではありません。\
残す要点の [#n] の引用は、書かれたとおりに残してください。[email] と [phone] の表記もそのまま残してください。";

/// What a draft's requests say, in its language.
struct Wording {
    locale: Locale,
}

impl Wording {
    fn map_instructions(&self) -> &'static str {
        match self.locale.language {
            Language::Japanese => MAP_INSTRUCTIONS_JA,
            Language::English => MAP_INSTRUCTIONS_EN,
        }
    }

    fn reduce_instructions(&self) -> &'static str {
        match self.locale.language {
            Language::Japanese => REDUCE_INSTRUCTIONS_JA,
            Language::English => REDUCE_INSTRUCTIONS_EN,
        }
    }

    /// `Company: Acme. Period: ...` / `会社：Acme。期間：...。`, and the period's Chatwork
    /// tasks when it has some.
    fn context(&self, transcript: &Transcript) -> String {
        let period = self
            .locale
            .period(transcript.period_start, transcript.period_end);
        let tasks = transcript.tasks_section(&self.locale);
        match (self.locale.language, tasks.is_empty()) {
            (Language::Japanese, true) => format!("会社：{}。期間：{period}。", transcript.company),
            (Language::English, true) => {
                format!("Company: {}. Period: {period}.", transcript.company)
            }
            (Language::Japanese, false) => format!(
                "会社：{}。期間：{period}。\n次はChatworkに登録されたこの期間のタスクです（担当者と期限は正確です）。\
                 依頼・期限では、メッセージからの推測よりこちらを優先し、矛盾があれば指摘してください。\
                 タスクの一覧は要約の前に別に載せるので、繰り返さないでください。\n{tasks}",
                transcript.company
            ),
            (Language::English, false) => format!(
                "Company: {}. Period: {period}.\nThese are the period's tasks as registered in Chatwork \
                 (their assignees and deadlines are exact). Under requests and deadlines, prefer them \
                 over what the messages suggest, and point out any contradiction. The task list is \
                 printed before the summary, so do not repeat it.\n{tasks}",
                transcript.company
            ),
        }
    }

    fn map_request(&self, part: Option<(usize, usize)>, lines: &str) -> String {
        match (self.locale.language, part) {
            (Language::Japanese, None) => {
                format!("次のメッセージを要約してください。\n\n{lines}")
            }
            (Language::Japanese, Some((i, n))) => {
                format!("全{n}部のうち第{i}部です。次のメッセージを要約してください。\n\n{lines}")
            }
            (Language::English, None) => format!("Summarize these messages.\n\n{lines}"),
            (Language::English, Some((i, n))) => {
                format!("Part {i} of {n}. Summarize these messages.\n\n{lines}")
            }
        }
    }

    fn reduce_request(&self, parts: &[String]) -> String {
        let japanese = self.locale.language == Language::Japanese;
        let intro = if japanese {
            "次の部分要約を、順にまとめて1つにしてください。"
        } else {
            "Combine these partial summaries, in order, into one."
        };
        let parts: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if japanese {
                    format!("### 第{}部\n{p}", i + 1)
                } else {
                    format!("### Part {}\n{p}", i + 1)
                }
            })
            .collect();
        format!("{intro}\n\n{}", parts.join("\n\n"))
    }
}

#[async_trait]
impl Summarizer for ChatModel {
    fn model(&self) -> &str {
        &self.client.settings().model
    }

    async fn summarize(
        &self,
        transcript: &Transcript,
        checkpoint: &dyn Checkpoint,
    ) -> Result<Summary, SummarizeError> {
        let mut usage = TokenUsage::default();
        let locale = self.client.settings().style.locale(transcript.texts());
        let wording = Wording { locale };
        let tasks = transcript.tasks_section(&locale);
        if transcript.is_empty() {
            let mut content = locale.no_messages(
                &transcript.company,
                transcript.period_start,
                transcript.period_end,
            );
            if !tasks.is_empty() {
                content.push('\n');
                content.push_str(&tasks);
            }
            return Ok(Summary {
                content,
                source_links: Vec::new(),
                token_usage: Some(usage),
                chunks: 0,
            });
        }
        let lines: Vec<(&str, &Line)> = transcript
            .rooms
            .iter()
            .flat_map(|room| room.lines.iter().map(move |l| (room.name.as_str(), l)))
            .collect();
        let context = wording.context(transcript);
        // Every request carries the context (with the tasks) besides its lines.
        let budget = self.chunk_budget(&format!("{}{context}", wording.map_instructions()));
        let rendered: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, (room, line))| {
                let text = line.text.replace('\n', " ⏎ ");
                fit(
                    &format!(
                        "[#{}] {} {} / {}: {}",
                        i + 1,
                        line.send_time
                            .with_timezone(&locale.time_zone)
                            .format("%Y-%m-%d %H:%M"),
                        room,
                        line.account_name,
                        text
                    ),
                    budget,
                )
            })
            .collect();
        let chunks = pack(&rendered, budget, 1);
        let mut partials = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            if checkpoint.canceled().await? {
                return Err(SummarizeError::Canceled);
            }
            let part = (chunks.len() > 1).then_some((i + 1, chunks.len()));
            let user = format!(
                "{context}\n{}",
                wording.map_request(part, &chunk.join("\n"))
            );
            partials.push(
                self.client
                    .complete(
                        wording.map_instructions(),
                        &user,
                        checkpoint.deadline(),
                        &mut usage,
                    )
                    .await?,
            );
        }
        let reduce_budget =
            self.chunk_budget(&format!("{}{context}", wording.reduce_instructions()));
        let mut rounds = 0;
        while partials.len() > 1 {
            rounds += 1;
            if rounds > 8 {
                return Err(SummarizeError::Fail(ErrorInfo::new(
                    "SummaryTooLong",
                    "the partial summaries did not combine within 8 rounds; raise SUMMARY_CONTEXT_TOKENS",
                )));
            }
            let groups = pack(&partials, reduce_budget, 2);
            let mut next = Vec::with_capacity(groups.len());
            for group in groups {
                if group.len() == 1 {
                    next.push(group[0].clone());
                    continue;
                }
                if checkpoint.canceled().await? {
                    return Err(SummarizeError::Canceled);
                }
                let user = format!("{context}\n{}", wording.reduce_request(&group));
                next.push(
                    self.client
                        .complete(
                            wording.reduce_instructions(),
                            &user,
                            checkpoint.deadline(),
                            &mut usage,
                        )
                        .await?,
                );
            }
            partials = next;
        }
        let summary = partials.pop().unwrap_or_default();
        let (body, source_links) = resolve_citations(&summary, &lines);
        let mut content = locale.heading(
            &transcript.company,
            transcript.period_start,
            transcript.period_end,
        );
        // The tasks as Chatwork holds them, never the model's rewording of them.
        if !tasks.is_empty() {
            content.push('\n');
            content.push_str(&tasks);
        }
        content.push_str(&format!("\n{}\n", body.trim()));
        if !source_links.is_empty() {
            content.push_str(&format!("\n{}\n", locale.sources()));
            for (i, link) in source_links.iter().enumerate() {
                content.push_str(&format!("[{}] {}\n", i + 1, link.url));
            }
        }
        Ok(Summary {
            content,
            source_links,
            token_usage: Some(usage),
            chunks: chunks.len(),
        })
    }
}

/// Consecutive groups of `items` whose estimated tokens fit `budget`, each of at least
/// `min_per_group` items (when there are that many left).
fn pack(items: &[String], budget: usize, min_per_group: usize) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = 0;
    for item in items {
        let cost = estimate_tokens(item) + 1;
        if !current.is_empty() && used + cost > budget && current.len() >= min_per_group {
            groups.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(item.clone());
    }
    if !current.is_empty() {
        // A last group too small to combine joins the one before it.
        if current.len() < min_per_group
            && let Some(last) = groups.last_mut()
        {
            last.extend(current);
        } else {
            groups.push(current);
        }
    }
    groups
}

static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[#\d+(?:\s*,\s*#?\d+)*\]").expect("a valid pattern"));

/// Renumbers the `[#n]` citations of `text` by first use and returns their links.
fn resolve_citations(text: &str, lines: &[(&str, &Line)]) -> (String, Vec<SourceLink>) {
    let mut order: Vec<usize> = Vec::new();
    let out = CITATION.replace_all(text, |caps: &regex_lite::Captures<'_>| {
        let numbers: Vec<String> = caps[0]
            .trim_matches(['[', ']'])
            .split(',')
            .filter_map(|n| n.trim().trim_start_matches('#').parse::<usize>().ok())
            .filter(|n| (1..=lines.len()).contains(n))
            .map(|n| {
                let position = match order.iter().position(|o| *o == n) {
                    Some(p) => p,
                    None => {
                        order.push(n);
                        order.len() - 1
                    }
                };
                format!("[{}]", position + 1)
            })
            .collect();
        numbers.concat()
    });
    let links = order.iter().map(|n| lines[n - 1].1.link()).collect();
    (out.into_owned(), links)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::summary::SummaryModelConfig;
    use crate::summary::locale::DraftStyle;

    fn line(id: &str) -> Line {
        Line {
            room_id: 7,
            message_id: id.into(),
            account_id: 1,
            account_name: "a".into(),
            send_time: DateTime::from_timestamp(0, 0).unwrap(),
            text: "t".into(),
            mentions: 0,
            reply: false,
            answers: Vec::new(),
        }
    }

    #[test]
    fn citations_are_renumbered_by_first_use_and_unknown_ones_dropped() {
        let (l1, l2, l3) = (line("100"), line("200"), line("300"));
        let lines = vec![("r", &l1), ("r", &l2), ("r", &l3)];
        let (text, links) = resolve_citations(
            "- 決定事項 [#3]\n- Task [#1, #3] and [#9]\n- more [#2][#1]",
            &lines,
        );
        assert_eq!(text, "- 決定事項 [1]\n- Task [2][1] and \n- more [3][2]");
        let urls: Vec<_> = links.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://www.chatwork.com/#!rid7-300",
                "https://www.chatwork.com/#!rid7-100",
                "https://www.chatwork.com/#!rid7-200",
            ]
        );
    }

    #[test]
    fn items_are_packed_to_fit_the_budget() {
        let items: Vec<String> = (0..10).map(|_| "あ".repeat(30)).collect();
        let groups = pack(&items, 100, 1);
        assert_eq!(groups.len(), 4, "three of 31 tokens fit in 100");
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 10);
        // Combining always makes progress: at least two per group.
        let groups = pack(&items, 10, 2);
        assert!(groups.iter().all(|g| g.len() >= 2));
        assert_eq!(groups.len(), 5);
    }

    #[test]
    fn tokens_are_estimated_and_long_lines_cut() {
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("日本語"), 3);
        let cut = fit(&"x".repeat(1000), 50);
        assert!(estimate_tokens(&cut) <= 50, "{}", estimate_tokens(&cut));
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let config = SummaryModelConfig {
            base_url: url::Url::parse("http://127.0.0.1:1/v1").unwrap(),
            model: "m".into(),
            api_key: Some(secrecy::SecretString::from("sk-top-secret")),
            timeout: std::time::Duration::from_secs(1),
        };
        let settings = ChatModelSettings::new(&config, 2048, DraftStyle::default());
        let model = ChatModel::new(settings).unwrap();
        assert!(!format!("{model:?}").contains("sk-top-secret"));
    }
}
