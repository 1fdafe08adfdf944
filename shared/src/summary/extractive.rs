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
//! A stated deadline (「5/21までに」「金曜まで」「期限：6月末」, "by Friday", "due Mar 14")
//! makes a message a request too, and is shown with it. A question counts only while it
//! is open: a later message of the room by someone else that replies to it (`[rp]`) or
//! quotes it (`[qt]`) answers it. Greetings and thanks alone (了解です,
//! ありがとうございます, thanks) score nothing.
//!
//! A room's key points are its (at most [`POINTS_PER_ROOM`]) messages with at least
//! [`MIN_SCORE`] points, the highest first, ties going to the earlier message. They are
//! grouped by what they are, in this order: decisions, requests and deadlines, open
//! questions, other notable messages (a message goes to the first group it fits), each
//! group in time order, each point with its author, local time, deadline and link. Around
//! them: the number of messages per room, and the most active participants per room and
//! overall. Before the rooms, the company's Chatwork tasks of the period (overdue, added,
//! done: [`Transcript::tasks_section`]), with their assignees and deadlines as Chatwork
//! holds them. The words, times and zone are the draft's locale's ([`locale`](super::locale)).
//! Everything is sorted by total orders (score, time, numeric message id; counts, then
//! names), so two runs over the same messages give the same draft byte for byte.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use regex_lite::Regex;

use super::locale::{DraftStyle, Locale, PointKind};
use super::markup::Reference;
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
pub struct Extractive {
    pub style: DraftStyle,
}

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
        Ok(draft(transcript, &self.style))
    }
}

/// What made a message stand out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub decision: bool,
    pub task: bool,
    pub question: bool,
    /// A later message of the room by someone else replies to it or quotes it.
    pub answered: bool,
    pub addressed: bool,
    /// 0, 1 or 2.
    pub length: u32,
    /// The deadline as the message states it (「5/21まで」, "by Friday").
    pub deadline: Option<String>,
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
        let deadline = deadline(&content);
        let task = deadline.is_some()
            || has_any(&[
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
            ])
            || ["please", "deadline", "due", "asap"]
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
            answered: false,
            addressed: line.mentions > 0 && chars > 0,
            length,
            deadline,
        }
    }

    /// An answered question no longer asks for anyone's attention.
    pub fn score(&self) -> u32 {
        3 * u32::from(self.decision)
            + 2 * u32::from(self.task)
            + 2 * u32::from(self.question && !self.answered)
            + 2 * u32::from(self.addressed)
            + self.length
    }

    /// The group the point goes to: the first it fits.
    pub fn kind(&self) -> PointKind {
        if self.decision {
            PointKind::Decision
        } else if self.task {
            PointKind::Request
        } else if self.question && !self.answered {
            PointKind::OpenQuestion
        } else {
            PointKind::Other
        }
    }
}

/// A date or time as Japanese business chat writes one before まで: 5/21, 5月21日,
/// 6月末, 金曜(日), 明日, 今週, 月末, 前日, 17時, with an optional (水) and time of day.
const JA_WHEN: &str = r"(?:(?:\d{4}年)?\d{1,2}月\d{1,2}日|\d{1,2}月(?:末|中|上旬|中旬|下旬)|\d{1,2}/\d{1,2}|[月火水木金土日]曜日?|明日|明後日|あさって|今日|本日|今週末|来週末|今週|来週|今月末|今月|来月|月末|週末|前日|当日|次回|午前中|\d{1,2}日|\d{1,2}時)(?:\s*[(（][月火水木金土日][)）])?(?:の?(?:\d{1,2}時(?:\d{1,2}分|半)?|\d{1,2}:\d{2}|午前|午後|朝|夕方|中))?";

/// The same in English: Friday, next Monday, Mar 14, 14 March, 3/14, 2025-03-14, EOD,
/// end of the week, tomorrow, 5pm.
const EN_WHEN: &str = r"(?:(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month)|eod|eow|cob|today|tonight|tomorrow(?:\s+(?:morning|noon|afternoon|evening))?|(?:this\s+|next\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wed|thurs|thu|fri)|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?|\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*|\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{4}-\d{2}-\d{2}|noon|\d{1,2}(?::\d{2})?\s*(?:am|pm))\b";

/// 「5/21までに」「今週中に」: the date and まで, or 中.
static JA_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("{JA_WHEN}(?:までに|まで|中に)")).expect("a valid pattern")
});
/// 「期限：5/21」「締切は月末」
static JA_LABELED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        "(?:期限|締切|締め切り|〆切|納期)(?:は|：|:)\\s*({JA_WHEN})"
    ))
    .expect("a valid pattern")
});
/// "by Friday", "due Mar 14", "no later than 5pm".
static EN_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(?:by|due(?:\s+on|\s+by)?|before|until|no\s+later\s+than)\s+{EN_WHEN}"
    ))
    .expect("a valid pattern")
});
/// "deadline: Friday", "the deadline is Mar 14".
static EN_LABELED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)\bdeadline(?:\s+is|:)\s*({EN_WHEN})")).expect("a valid pattern")
});

/// The deadline `text` states, as written: 「5/21まで」 (without the particle に),
/// 「今週中」, "by Friday"; the first one when there are several.
pub fn deadline(text: &str) -> Option<String> {
    let found = [
        JA_BY.find(text).map(|m| (m.start(), m.as_str())),
        JA_LABELED
            .captures(text)
            .and_then(|c| Some((c.get(0)?.start(), c.get(1)?.as_str()))),
        EN_BY.find(text).map(|m| (m.start(), m.as_str())),
        EN_LABELED
            .captures(text)
            .and_then(|c| Some((c.get(0)?.start(), c.get(1)?.as_str()))),
    ];
    let (_, phrase) = found.into_iter().flatten().min_by_key(|(at, _)| *at)?;
    let phrase = phrase.strip_suffix("中に").map_or_else(
        || {
            phrase
                .strip_suffix("までに")
                .map_or(phrase.to_owned(), |p| format!("{p}まで"))
        },
        |p| format!("{p}中"),
    );
    Some(phrase)
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

/// The draft of `transcript` in the locale `style` gives it.
pub fn draft(transcript: &Transcript, style: &DraftStyle) -> Summary {
    let locale = style.locale(transcript.texts());
    let (start, end) = (transcript.period_start, transcript.period_end);
    let tasks = transcript.tasks_section(&locale);
    if transcript.is_empty() {
        let mut content = locale.no_messages(&transcript.company, start, end);
        if !tasks.is_empty() {
            content.push('\n');
            content.push_str(&tasks);
        }
        return Summary {
            content,
            source_links: Vec::new(),
            token_usage: None,
            chunks: 0,
        };
    }
    let mut content = locale.heading(&transcript.company, start, end);
    let all: Vec<&Line> = transcript.rooms.iter().flat_map(|r| &r.lines).collect();
    let people = participants(all.iter().copied());
    content.push_str(&locale.overview(
        all.len(),
        transcript.rooms.len(),
        people.len(),
        &locale.people(&people[..people.len().min(TOP_PARTICIPANTS_OVERALL)]),
    ));
    // Chatwork's own tasks first: what was promised, as Chatwork holds it, before what
    // the messages' words suggest.
    if !tasks.is_empty() {
        content.push('\n');
        content.push_str(&tasks);
    }
    let mut links = Vec::new();
    for room in &transcript.rooms {
        content.push('\n');
        room_section(&locale, room, &mut content, &mut links);
    }
    Summary {
        content,
        source_links: links,
        token_usage: None,
        chunks: transcript.rooms.len(),
    }
}

/// Whether a later line of the room, by someone else, replies to or quotes `lines[i]`.
fn answered(lines: &[Line], i: usize) -> bool {
    let asked = &lines[i];
    lines[i + 1..].iter().any(|later| {
        later.account_id != asked.account_id
            && later.answers.iter().any(|a| match a {
                Reference::Reply { message_id } => *message_id == asked.message_id,
                Reference::Quote {
                    account_id,
                    send_time,
                } => *account_id == asked.account_id && *send_time == asked.send_time.timestamp(),
            })
    })
}

/// A room's key points, grouped and ordered as the module documentation says.
pub fn key_points(room: &RoomLines) -> Vec<(&Line, Signals)> {
    let mut scored: Vec<(&Line, Signals)> = room
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut signals = Signals::of(l);
            signals.answered = signals.question && answered(&room.lines, i);
            (l, signals)
        })
        .filter(|(_, s)| s.score() >= MIN_SCORE)
        .collect();
    scored.sort_by(|(a, sa), (b, sb)| {
        sb.score()
            .cmp(&sa.score())
            .then_with(|| in_time_order(a, b))
    });
    scored.truncate(POINTS_PER_ROOM);
    scored.sort_by(|(a, sa), (b, sb)| sa.kind().cmp(&sb.kind()).then_with(|| in_time_order(a, b)));
    scored
}

fn room_section(
    locale: &Locale,
    room: &RoomLines,
    content: &mut String,
    links: &mut Vec<SourceLink>,
) {
    content.push_str(&locale.room_heading(&room.name, room.room_id, room.lines.len()));
    let people = participants(room.lines.iter());
    content.push_str(
        &locale.participants(&locale.people(&people[..people.len().min(TOP_PARTICIPANTS)])),
    );
    let points = key_points(room);
    if points.is_empty() {
        content.push_str(locale.no_key_points());
        return;
    }
    let mut group = None;
    for (line, signals) in points {
        if group != Some(signals.kind()) {
            group = Some(signals.kind());
            content.push_str(locale.group(signals.kind()));
        }
        let link = line.link();
        content.push_str(&locale.point(
            line.send_time,
            &line.account_name,
            signals.deadline.as_deref(),
            &excerpt(&line.own_text()),
            &link.url,
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

/// The message on one line, cut at [`EXCERPT_CHARS`].
fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= EXCERPT_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(EXCERPT_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
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
            answers: Vec::new(),
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
    fn deadlines_are_read_in_japanese_and_english_as_written() {
        for (text, expected) in [
            ("見積もりを5/21までにお送りください", Some("5/21まで")),
            ("資料は5月21日(水)までに共有します", Some("5月21日(水)まで")),
            ("金曜日の17時までにご確認ください", Some("金曜日の17時まで")),
            ("今週中にご返信いただけますか", Some("今週中")),
            ("期限：6月末です", Some("6月末")),
            ("期限は月末です", Some("月末")),
            ("Could you send the invoice by Friday?", Some("by Friday")),
            ("The report is due Mar 14.", Some("due Mar 14")),
            (
                "Please reply by the end of the week",
                Some("by the end of the week"),
            ),
            ("deadline: 3/14", Some("3/14")),
            ("Please review it by next Monday 🙏", Some("by next Monday")),
            ("We met by chance on Monday", None),
            ("資料の確認をお願いします", None),
        ] {
            assert_eq!(deadline(text).as_deref(), expected, "{text}");
        }
        let s = signals("見積もりは5/21までに");
        assert!(s.task, "a deadline is a request");
        assert_eq!(s.deadline.as_deref(), Some("5/21まで"));
    }

    fn room(lines: Vec<Line>) -> RoomLines {
        RoomLines {
            room_id: 1,
            name: "r".into(),
            lines,
        }
    }

    fn by(mut line: Line, account_id: i64, minutes: i64) -> Line {
        line.account_id = account_id;
        line.send_time += chrono::TimeDelta::minutes(minutes);
        line
    }

    #[test]
    fn a_question_replied_to_or_quoted_by_someone_else_is_no_longer_open() {
        let question = by(line("10", "納期はいつ頃になりますか？", 0), 1, 0);
        let asked_at = question.send_time.timestamp();
        let mut reply = by(line("11", "Re: @a 来月上旬です", 1), 2, 5);
        reply.answers = vec![Reference::Reply {
            message_id: "10".into(),
        }];
        let mut quote = by(
            line("11", "> 納期はいつ頃になりますか？\n来月上旬です", 0),
            2,
            5,
        );
        quote.answers = vec![Reference::Quote {
            account_id: 1,
            send_time: asked_at,
        }];
        let mut own_quote = quote.clone();
        own_quote.account_id = 1;
        let other = by(line("12", "Is the staging server still needed?", 0), 3, 9);

        for answer in [reply, quote] {
            let r = room(vec![question.clone(), answer, other.clone()]);
            let points = key_points(&r);
            let open: Vec<&str> = points
                .iter()
                .filter(|(_, s)| s.kind() == PointKind::OpenQuestion)
                .map(|(l, _)| l.message_id.as_str())
                .collect();
            assert_eq!(open, ["12"], "answered, so only the later one is open");
        }
        // The asker quoting their own question (asking again) does not answer it.
        let r = room(vec![question.clone(), own_quote, other.clone()]);
        let open: Vec<&str> = key_points(&r)
            .iter()
            .filter(|(_, s)| s.kind() == PointKind::OpenQuestion)
            .map(|(l, _)| l.message_id.as_str())
            .collect();
        assert_eq!(open, ["10", "12"]);
    }

    #[test]
    fn points_are_grouped_decisions_requests_questions_then_the_rest() {
        let r = room(vec![
            by(line("1", "Is the budget final?", 0), 1, 0),
            by(line("2", "Please send the invoice by Friday", 0), 1, 1),
            by(line("3", "We decided to ship on Friday.", 0), 1, 2),
            by(line("4", &"a long report ".repeat(12), 1), 1, 3),
        ]);
        let kinds: Vec<(&str, PointKind)> = key_points(&r)
            .iter()
            .map(|(l, s)| (l.message_id.as_str(), s.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("3", PointKind::Decision),
                ("2", PointKind::Request),
                ("1", PointKind::OpenQuestion),
                ("4", PointKind::Other),
            ]
        );
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
