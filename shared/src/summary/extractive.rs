//! The built-in summarizer: no model, no network, the same draft for the same messages.
//!
//! It does not write new sentences; it picks, per room, the messages that most likely
//! matter to someone catching up, and quotes them with their links. A message earns
//! points for signals that, in business chat, mark what needs a reader's attention:
//!
//! | signal | points | Japanese | English |
//! |---|---|---|---|
//! | decision | 3 | 決定, 決まり, 確定, 合意, 承認, 決めました, で進めます | decided, agreed, approved, confirmed, "let's go with" |
//! | task or request | 2 | お願いします (not the greeting よろしくお願いします), してください, 対応, 期限, 締切, までに, TODO | please, could you, can you, deadline, due, action item, "need to", todo |
//! | question | 2 | ？, ですか, ますか, でしょうか | ? |
//! | addressed | 2 | `[To:]`, `[toall]`, `[rp]` | |
//! | length | 1 from 40 characters, 2 from 120 | | |
//!
//! Greetings and thanks alone (了解です, ありがとうございます, thanks) score nothing. A
//! room's key points are its (at most [`POINTS_PER_ROOM`]) messages with at least
//! [`MIN_SCORE`] points, the highest first, ties going to the earlier message; they are
//! listed in time order, each with its signals, author, time and link. Around them: the
//! number of messages per room, and the most active participants per room and overall.
//! Everything is sorted by total orders (score, time, numeric message id; counts, then
//! names), so two runs over the same messages give the same draft byte for byte.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use async_trait::async_trait;

use super::transcript::{Line, RoomLines, SourceLink, Transcript};
use super::{Checkpoint, SummarizeError, Summarizer, Summary};
use crate::chatwork::compare_message_ids;

/// The most key points listed per room.
pub const POINTS_PER_ROOM: usize = 5;
/// The fewest points a message needs to be a key point: one real signal, or a long text.
pub const MIN_SCORE: u32 = 2;
/// Participants named per room; overall, a few more.
const TOP_PARTICIPANTS: usize = 3;
const TOP_PARTICIPANTS_OVERALL: usize = 5;
/// Characters of a message quoted in a point.
const EXCERPT_CHARS: usize = 160;

/// The model name stored with its drafts.
pub const MODEL_NAME: &str = "extractive";

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Extractive;

#[async_trait]
impl Summarizer for Extractive {
    fn model(&self) -> &str {
        MODEL_NAME
    }

    async fn summarize(
        &self,
        transcript: &Transcript,
        _checkpoint: &dyn Checkpoint,
    ) -> Result<Summary, SummarizeError> {
        Ok(draft(transcript))
    }
}

/// What made a message stand out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    pub decision: bool,
    pub task: bool,
    pub question: bool,
    pub addressed: bool,
    /// 0, 1 or 2.
    pub length: u32,
}

impl Signals {
    pub fn of(line: &Line) -> Self {
        let own = line.own_text();
        let content = strip_pleasantries(&own);
        let lower = content.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .collect();
        let has_word = |w: &str| words.contains(&w);
        let has_any = |list: &[&str]| list.iter().any(|p| lower.contains(p));
        let chars = content.chars().filter(|c| !c.is_whitespace()).count();

        let decision = has_any(&[
            "決定",
            "決まり",
            "決めました",
            "確定",
            "合意",
            "承認",
            "で進めます",
            "で進めましょう",
            "decided",
            "agreed",
            "approved",
            "confirmed",
            "let's go with",
            "we will go with",
        ]) || has_word("decision");
        let task = has_any(&[
            "お願いします",
            "お願いいたします",
            "お願い致します",
            "してください",
            "して下さい",
            "対応",
            "期限",
            "締切",
            "締め切り",
            "までに",
            "宿題",
            "todo",
            "could you",
            "can you",
            "action item",
            "need to",
            "follow up",
        ]) || ["please", "deadline", "due", "asap"]
            .iter()
            .any(|w| has_word(w));
        let trimmed = content.trim_end_matches(['。', '.', '!', '！', ' ', '\n']);
        let question = content.contains('?')
            || content.contains('？')
            || ["ですか", "ますか", "でしょうか"]
                .iter()
                .any(|e| trimmed.ends_with(e));
        let length = match chars {
            0..40 => 0,
            40..120 => 1,
            _ => 2,
        };
        Self {
            decision,
            task,
            question,
            addressed: line.mentions > 0 && chars > 0,
            length,
        }
    }

    pub fn score(&self) -> u32 {
        3 * u32::from(self.decision)
            + 2 * u32::from(self.task)
            + 2 * u32::from(self.question)
            + 2 * u32::from(self.addressed)
            + self.length
    }

    /// `decision, task`: the signals a point shows.
    fn labels(&self) -> String {
        let mut labels = Vec::new();
        if self.decision {
            labels.push("decision");
        }
        if self.task {
            labels.push("task");
        }
        if self.question {
            labels.push("question");
        }
        if self.addressed {
            labels.push("mention");
        }
        labels.join(", ")
    }
}

/// Greetings, thanks and acknowledgements say nothing a summary needs; a message made
/// only of them has nothing left.
fn strip_pleasantries(text: &str) -> String {
    const PHRASES: &[&str] = &[
        "よろしくお願いいたします",
        "よろしくお願い致します",
        "よろしくお願いします",
        "宜しくお願いいたします",
        "宜しくお願い致します",
        "宜しくお願いします",
        "引き続きよろしくお願いします",
        "お疲れ様です",
        "お疲れさまです",
        "お世話になっております",
        "ありがとうございます",
        "ありがとうございました",
        "承知しました",
        "承知いたしました",
        "了解です",
        "了解しました",
    ];
    let mut out = text.to_owned();
    for phrase in PHRASES {
        out = out.replace(phrase, "");
    }
    let lower = out.to_lowercase();
    let only_thanks = ["thanks", "thank you", "ok", "okay", "noted", "got it"]
        .iter()
        .any(|t| lower.trim().trim_end_matches(['.', '!']) == *t);
    if only_thanks { String::new() } else { out }
}

/// The draft of `transcript`.
pub fn draft(transcript: &Transcript) -> Summary {
    if transcript.is_empty() {
        return Summary {
            content: transcript.no_messages_content(),
            source_links: Vec::new(),
            token_usage: None,
            chunks: 0,
        };
    }
    let mut content = format!(
        "Summary draft: {}, {}\n",
        transcript.company,
        transcript.period_label()
    );
    let all: Vec<&Line> = transcript.rooms.iter().flat_map(|r| &r.lines).collect();
    let people = participants(all.iter().copied());
    content.push_str(&format!(
        "{} in {} from {}. Most active: {}.\n",
        plural(all.len(), "message"),
        plural(transcript.rooms.len(), "room"),
        plural(people.len(), "person"),
        list_people(&people, TOP_PARTICIPANTS_OVERALL)
    ));
    let mut links = Vec::new();
    for room in &transcript.rooms {
        content.push('\n');
        room_section(room, &mut content, &mut links);
    }
    Summary {
        content,
        source_links: links,
        token_usage: None,
        chunks: transcript.rooms.len(),
    }
}

fn room_section(room: &RoomLines, content: &mut String, links: &mut Vec<SourceLink>) {
    content.push_str(&format!(
        "## {} (room {}): {}\n",
        room.name,
        room.room_id,
        plural(room.lines.len(), "message")
    ));
    let people = participants(room.lines.iter());
    content.push_str(&format!(
        "Participants: {}\n",
        list_people(&people, TOP_PARTICIPANTS)
    ));
    let mut scored: Vec<(&Line, Signals)> = room
        .lines
        .iter()
        .map(|l| (l, Signals::of(l)))
        .filter(|(_, s)| s.score() >= MIN_SCORE)
        .collect();
    scored.sort_by(|(a, sa), (b, sb)| {
        sb.score()
            .cmp(&sa.score())
            .then_with(|| in_time_order(a, b))
    });
    scored.truncate(POINTS_PER_ROOM);
    scored.sort_by(|(a, _), (b, _)| in_time_order(a, b));
    if scored.is_empty() {
        content
            .push_str("No key points: no decisions, requests, questions or mentions stood out.\n");
        return;
    }
    content.push_str("Key points:\n");
    for (line, signals) in scored {
        let link = line.link();
        content.push_str(&format!(
            "- {} {} [{}]: {} {}\n",
            line.send_time.format("%Y-%m-%d %H:%M"),
            line.account_name,
            signals.labels(),
            excerpt(&line.own_text()),
            link.url
        ));
        links.push(link);
    }
}

fn in_time_order(a: &Line, b: &Line) -> Ordering {
    a.send_time
        .cmp(&b.send_time)
        .then_with(|| compare_message_ids(&a.message_id, &b.message_id))
}

/// Participants by messages, most first, then by name and id.
fn participants<'a>(lines: impl Iterator<Item = &'a Line>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    for line in lines {
        *counts
            .entry((line.account_id, line.account_name.as_str()))
            .or_default() += 1;
    }
    let mut people: Vec<((i64, &str), usize)> = counts.into_iter().collect();
    people.sort_by(|((ia, na), ca), ((ib, nb), cb)| {
        cb.cmp(ca).then_with(|| na.cmp(nb)).then_with(|| ia.cmp(ib))
    });
    people
        .into_iter()
        .map(|((_, name), count)| (name.to_owned(), count))
        .collect()
}

fn list_people(people: &[(String, usize)], n: usize) -> String {
    people
        .iter()
        .take(n)
        .map(|(name, count)| format!("{name} ({count})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message on one line, cut at [`EXCERPT_CHARS`].
fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= EXCERPT_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(EXCERPT_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

fn plural(n: usize, what: &str) -> String {
    match (n, what) {
        (1, _) => format!("1 {what}"),
        (_, "person") => format!("{n} people"),
        _ => format!("{n} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn line(id: &str, text: &str, mentions: u32) -> Line {
        Line {
            room_id: 1,
            message_id: id.into(),
            account_id: 1,
            account_name: "a".into(),
            send_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            text: text.into(),
            mentions,
            reply: false,
        }
    }

    fn signals(text: &str) -> Signals {
        Signals::of(&line("1", text, 0))
    }

    #[test]
    fn signals_are_read_in_japanese_and_english() {
        assert!(signals("来週の定例は火曜日に決定しました。").decision);
        assert!(signals("We decided to ship on Friday.").decision);
        assert!(signals("見積もりを金曜までに送ってください").task);
        assert!(signals("Please send the invoice").task);
        assert!(signals("資料の確認をお願いします。").task);
        assert!(signals("納期はいつですか").question);
        assert!(signals("Is the budget final?").question);
        assert!(signals("予算は？").question);
        assert_eq!(signals("了解です。よろしくお願いします。").score(), 0);
        assert_eq!(signals("Thanks!").score(), 0);
        assert!(
            !signals("the schedule is fine").task,
            "no 'due' inside words"
        );
        assert!(Signals::of(&line("1", "@佐藤さん 見てください", 1)).addressed);
    }

    #[test]
    fn a_quoted_decision_is_not_a_new_one() {
        let s = signals("> 火曜日に決定しました\nありがとうございます");
        assert_eq!(s.score(), 0);
    }

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("a\n b  c"), "a b c");
        let long = "あ".repeat(500);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with('…'));
    }
}
