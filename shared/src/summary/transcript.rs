//! What a summarizer reads: a company's messages of a period, room by room in time order,
//! with markup resolved ([`markup`](super::markup)) and personal data masked
//! ([`mask`](super::mask)). Nothing unmasked leaves this module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::locale::{Locale, TaskDeadline, TaskGroup, TaskPoint};
use super::markup::{self, Cleaned, Reference};
use super::mask::mask;

/// Where a message can be read in Chatwork.
pub fn source_link(room_id: i64, message_id: &str) -> String {
    format!("https://www.chatwork.com/#!rid{room_id}-{message_id}")
}

/// A link to a message a draft's point comes from (`sourceLinks` of a draft).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceLink {
    pub url: String,
    pub room_id: i64,
    /// Chatwork's id, a decimal string.
    pub message_id: String,
}

impl SourceLink {
    pub fn new(room_id: i64, message_id: &str) -> Self {
        Self {
            url: source_link(room_id, message_id),
            room_id,
            message_id: message_id.to_owned(),
        }
    }
}

/// A stored message as the handler reads it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub room_id: i64,
    pub room_name: String,
    pub message_id: String,
    pub account_id: i64,
    pub account_name: String,
    pub body: String,
    pub send_time: DateTime<Utc>,
}

/// The most tasks a draft lists per group.
pub const TASKS_PER_GROUP: usize = 20;

/// A Chatwork task of one of the company's rooms, as the handler reads it.
#[derive(Debug, Clone)]
pub struct StoredTask {
    pub task_id: i64,
    pub room_id: i64,
    pub room_name: String,
    /// The assignee.
    pub account_name: String,
    pub assigned_by_account_name: Option<String>,
    pub body: String,
    /// `none`, `date` or `time`.
    pub limit_type: String,
    pub limit_time: Option<DateTime<Utc>>,
    /// `open` or `done`.
    pub status: String,
    pub first_seen_at: DateTime<Utc>,
    pub done_seen_at: Option<DateTime<Utc>>,
}

/// A task, ready to be listed: its body on one line, cleaned and masked like a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLine {
    pub task_id: i64,
    pub room_id: i64,
    pub room_name: String,
    pub assignee: String,
    pub assigned_by: Option<String>,
    pub body: String,
    pub deadline: TaskDeadline,
    pub group: TaskGroup,
}

impl TaskLine {
    /// `task` as the draft of the period from `start` to `end` lists it, or `None` when
    /// the period has nothing to say of it. What a sync saw decides: a task first seen in
    /// the period was opened in it, one first seen done in it was done in it, and one
    /// open at the end (open now, or seen done only after the end) with its deadline
    /// before the end is overdue. A task goes to one list: done, else overdue, else
    /// opened.
    pub fn of(task: StoredTask, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Self> {
        let in_period = |at: DateTime<Utc>| start <= at && at < end;
        if task.first_seen_at >= end {
            return None;
        }
        let open_at_end = task.status == "open" || task.done_seen_at.is_some_and(|d| d >= end);
        let group = if task.done_seen_at.is_some_and(in_period) {
            TaskGroup::Done
        } else if open_at_end && task.limit_time.is_some_and(|t| t < end) {
            TaskGroup::Overdue
        } else if in_period(task.first_seen_at) {
            TaskGroup::Opened
        } else {
            return None;
        };
        let deadline = match (task.limit_type.as_str(), task.limit_time) {
            // Chatwork's day is Tokyo's: the day its `limit_time` falls on there.
            ("date", Some(at)) => {
                TaskDeadline::Date(at.with_timezone(&chrono_tz::Asia::Tokyo).date_naive())
            }
            (_, Some(at)) => TaskDeadline::Time(at),
            (_, None) => TaskDeadline::None,
        };
        let body = mask(&markup::clean(&task.body).text);
        Some(Self {
            task_id: task.task_id,
            room_id: task.room_id,
            room_name: mask(&task.room_name),
            assignee: mask(&task.account_name),
            assigned_by: task.assigned_by_account_name.as_deref().map(mask),
            body: body.split_whitespace().collect::<Vec<_>>().join(" "),
            deadline,
            group,
        })
    }

    /// Listing order within a group: earliest deadline first (a day from its start in
    /// Tokyo), those without one last, then by task id.
    fn sort_key(&self) -> (TaskGroup, bool, Option<DateTime<Utc>>, i64) {
        let at = match self.deadline {
            TaskDeadline::None => None,
            TaskDeadline::Time(at) => Some(at),
            TaskDeadline::Date(day) => day
                .and_hms_opt(0, 0, 0)
                .and_then(|t| t.and_local_timezone(chrono_tz::Asia::Tokyo).single())
                .map(|t| t.with_timezone(&Utc)),
        };
        (self.group, at.is_none(), at, self.task_id)
    }
}

/// One message, ready to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub room_id: i64,
    pub message_id: String,
    pub account_id: i64,
    pub account_name: String,
    pub send_time: DateTime<Utc>,
    /// Cleaned and masked; quoted lines start with `> `.
    pub text: String,
    pub mentions: u32,
    pub reply: bool,
    /// The earlier messages it replies to or quotes.
    pub answers: Vec<Reference>,
}

impl Line {
    pub fn link(&self) -> SourceLink {
        SourceLink::new(self.room_id, &self.message_id)
    }

    /// The author's own words (no quoted lines).
    pub fn own_text(&self) -> String {
        Cleaned {
            text: self.text.clone(),
            ..Cleaned::default()
        }
        .own_text()
    }
}

/// A room's messages of the period, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLines {
    pub room_id: i64,
    /// Masked like the messages.
    pub name: String,
    pub lines: Vec<Line>,
}

/// Everything a summarizer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub company: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Rooms by name, then id.
    pub rooms: Vec<RoomLines>,
    /// The company's Chatwork tasks the period has something to say of, by group, then
    /// deadline (see [`TaskLine::of`]).
    pub tasks: Vec<TaskLine>,
}

impl Transcript {
    /// Prepares `messages`, which come room by room, each room's in time order. A message
    /// with nothing left to read after cleaning (a system notice) is left out.
    pub fn prepare(
        company: &str,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        messages: Vec<StoredMessage>,
    ) -> Self {
        let mut rooms: Vec<RoomLines> = Vec::new();
        for m in messages {
            let cleaned = markup::clean(&m.body);
            let text = mask(&cleaned.text);
            if text.trim().is_empty() {
                continue;
            }
            let line = Line {
                room_id: m.room_id,
                message_id: m.message_id,
                account_id: m.account_id,
                account_name: mask(&m.account_name),
                send_time: m.send_time,
                text,
                mentions: cleaned.mentions,
                reply: cleaned.reply,
                answers: cleaned.answers,
            };
            match rooms.last_mut() {
                Some(room) if room.room_id == m.room_id => room.lines.push(line),
                _ => rooms.push(RoomLines {
                    room_id: m.room_id,
                    name: mask(&m.room_name),
                    lines: vec![line],
                }),
            }
        }
        Self {
            company: company.to_owned(),
            period_start,
            period_end,
            rooms,
            tasks: Vec::new(),
        }
    }

    /// The same transcript with the company's Chatwork `tasks` that the period has
    /// something to say of.
    pub fn with_tasks(mut self, tasks: Vec<StoredTask>) -> Self {
        let mut lines: Vec<TaskLine> = tasks
            .into_iter()
            .filter_map(|t| TaskLine::of(t, self.period_start, self.period_end))
            .collect();
        lines.sort_by_key(TaskLine::sort_key);
        self.tasks = lines;
        self
    }

    /// The draft's section of Chatwork tasks (empty when the period has none): each
    /// group's at most [`TASKS_PER_GROUP`], with how many more. Both summarizers add it
    /// as it is, so its names and deadlines are Chatwork's, never a model's rewording.
    pub fn tasks_section(&self, locale: &Locale) -> String {
        if self.tasks.is_empty() {
            return String::new();
        }
        let mut out = locale.tasks_heading().to_owned();
        for group in [TaskGroup::Overdue, TaskGroup::Opened, TaskGroup::Done] {
            let tasks: Vec<&TaskLine> = self.tasks.iter().filter(|t| t.group == group).collect();
            if tasks.is_empty() {
                continue;
            }
            out.push_str(locale.task_group(group));
            for task in tasks.iter().take(TASKS_PER_GROUP) {
                out.push_str(&locale.task(
                    &TaskPoint {
                        assignee: &task.assignee,
                        assigned_by: task.assigned_by.as_deref(),
                        deadline: task.deadline,
                        body: &task.body,
                        room: &task.room_name,
                    },
                    self.period_end,
                ));
            }
            if tasks.len() > TASKS_PER_GROUP {
                out.push_str(&locale.more_tasks(tasks.len() - TASKS_PER_GROUP));
            }
        }
        out
    }

    pub fn message_count(&self) -> usize {
        self.rooms.iter().map(|r| r.lines.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Every message's text and task's body, for choosing the draft's language.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.rooms
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| l.text.as_str()))
            .chain(self.tasks.iter().map(|t| t.body.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(room_id: i64, id: &str, body: &str) -> StoredMessage {
        StoredMessage {
            room_id,
            room_name: format!("room {room_id}"),
            message_id: id.into(),
            account_id: 1,
            account_name: "佐藤".into(),
            body: body.into(),
            send_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn messages_are_cleaned_masked_and_grouped_by_room() {
        let t = Transcript::prepare(
            "Acme",
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(86400, 0).unwrap(),
            vec![
                stored(1, "10", "[To:5]鈴木さん 090-1234-5678 に電話ください"),
                stored(
                    1,
                    "11",
                    "[info][title][dtext:chatroom_chat_edited][/title][/info]",
                ),
                stored(2, "12", "mail me: a@example.com"),
            ],
        );
        assert_eq!(t.rooms.len(), 2);
        assert_eq!(t.message_count(), 2, "the system notice is left out");
        assert_eq!(t.rooms[0].lines[0].text, "@鈴木さん [phone] に電話ください");
        assert_eq!(t.rooms[0].lines[0].mentions, 1);
        assert_eq!(t.rooms[1].lines[0].text, "mail me: [email]");
        assert_eq!(
            t.rooms[1].lines[0].link().url,
            "https://www.chatwork.com/#!rid2-12"
        );
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn task(id: i64, limit_type: &str, limit: Option<&str>, status: &str) -> StoredTask {
        StoredTask {
            task_id: id,
            room_id: 101,
            room_name: "営業".into(),
            account_name: "佐藤 健一".into(),
            assigned_by_account_name: Some("田中".into()),
            body: "見積書を送る\n03-1234-5678".into(),
            limit_type: limit_type.into(),
            limit_time: limit.map(at),
            status: status.into(),
            first_seen_at: at("2026-12-01T00:00:00Z"),
            done_seen_at: None,
        }
    }

    #[test]
    fn a_period_lists_each_task_once_done_overdue_or_opened() {
        let (start, end) = (at("2026-11-30T15:00:00Z"), at("2026-12-07T15:00:00Z"));
        let transcript = Transcript::prepare("Acme", start, end, Vec::new());
        let mut done = task(1, "none", None, "done");
        done.done_seen_at = Some(at("2026-12-03T00:00:00Z"));
        let overdue = task(2, "time", Some("2026-12-07T09:00:00Z"), "open");
        let opened = task(3, "date", Some("2026-12-20T14:59:59Z"), "open");
        let mut old = task(4, "none", None, "open");
        old.first_seen_at = at("2026-10-01T00:00:00Z");
        let mut later = task(5, "none", None, "open");
        later.first_seen_at = at("2026-12-08T00:00:00Z");
        // Done after the period: open at its end, so overdue then.
        let mut done_after = task(6, "time", Some("2026-12-05T00:00:00Z"), "done");
        done_after.first_seen_at = at("2026-10-01T00:00:00Z");
        done_after.done_seen_at = Some(at("2026-12-09T00:00:00Z"));
        let t = transcript.with_tasks(vec![done, overdue, opened, old, later, done_after]);
        let listed: Vec<(i64, TaskGroup)> = t.tasks.iter().map(|t| (t.task_id, t.group)).collect();
        assert_eq!(
            listed,
            [
                (6, TaskGroup::Overdue),
                (2, TaskGroup::Overdue),
                (3, TaskGroup::Opened),
                (1, TaskGroup::Done),
            ]
        );
        let opened = &t.tasks[2];
        assert_eq!(
            opened.deadline,
            TaskDeadline::Date(chrono::NaiveDate::from_ymd_opt(2026, 12, 20).unwrap())
        );
        assert!(
            opened.body.contains("見積書を送る [phone]"),
            "{}",
            opened.body
        );
        assert_eq!(t.texts().count(), 4, "task bodies choose the language too");
    }
}
