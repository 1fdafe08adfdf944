//! The language and time zone a draft is written in: which language a period is drafted
//! in (`SUMMARY_LANGUAGE`), and every fixed word, count and time a draft shows, in that
//! language and in `SUMMARY_TIME_ZONE`.
//!
//! The words are written for each language, not translated word for word: a Japanese
//! draft reads 「決定事項」「依頼・期限」, counts as 「7件」「参加者6名」 and dates as
//! `3/5(水) 19:00`; an English one "Decisions", "7 messages" and `Wed Mar 5 19:00`.
//! The zone is named once, in the heading, next to the period's boundaries.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

/// A language a draft can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Japanese,
    English,
}

impl Language {
    /// The language most of `texts` is written in: Japanese when the Japanese characters
    /// (kana and kanji), weighted by 3, outnumber the Latin letters, else English. The
    /// weight is there because a Japanese sentence takes about a third of the characters
    /// of the same sentence in English; counting messages instead would let a run of
    /// one-word acknowledgements decide.
    pub fn most_of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut japanese, mut latin) = (0usize, 0usize);
        for text in texts {
            for c in text.chars() {
                if is_japanese(c) {
                    japanese += 1;
                } else if c.is_ascii_alphabetic() {
                    latin += 1;
                }
            }
        }
        if japanese * 3 > latin {
            Self::Japanese
        } else {
            Self::English
        }
    }
}

/// Hiragana, katakana (full and half width), the iteration mark and CJK ideographs.
fn is_japanese(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3005}' | '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}'
        | '\u{FF66}'..='\u{FF9F}')
}

/// `SUMMARY_LANGUAGE`: `auto` (by the period's messages), `ja` or `en`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LanguageChoice {
    #[default]
    Auto,
    Fixed(Language),
}

impl FromStr for LanguageChoice {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "ja" => Ok(Self::Fixed(Language::Japanese)),
            "en" => Ok(Self::Fixed(Language::English)),
            _ => Err(()),
        }
    }
}

impl fmt::Display for LanguageChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Fixed(Language::Japanese) => "ja",
            Self::Fixed(Language::English) => "en",
        })
    }
}

/// How a summarizer writes its drafts: the language setting and the time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftStyle {
    pub language: LanguageChoice,
    pub time_zone: Tz,
}

impl Default for DraftStyle {
    /// `auto`, Asia/Tokyo: the people who read drafts work in Japan.
    fn default() -> Self {
        Self {
            language: LanguageChoice::Auto,
            time_zone: chrono_tz::Asia::Tokyo,
        }
    }
}

impl DraftStyle {
    /// The locale of a draft of `texts` (the period's messages).
    pub fn locale<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Locale {
        let language = match self.language {
            LanguageChoice::Fixed(language) => language,
            LanguageChoice::Auto => Language::most_of(texts),
        };
        Locale {
            language,
            time_zone: self.time_zone,
        }
    }
}

/// What a key point is, in the order a draft lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PointKind {
    Decision,
    Request,
    OpenQuestion,
    Other,
}

/// Which of a draft's task lists a Chatwork task goes to, in the order the draft lists
/// them; a task goes to one list only (see [`transcript`](super::transcript)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskGroup {
    /// Open at the period's end with its deadline before that end.
    Overdue,
    /// First seen in the period, and not done in it.
    Opened,
    /// Seen done in the period.
    Done,
}

/// A task's deadline as Chatwork states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskDeadline {
    None,
    /// A day (Chatwork's days are Tokyo's, whatever zone the draft is in).
    Date(NaiveDate),
    /// An instant, shown in the draft's zone.
    Time(DateTime<Utc>),
}

/// A Chatwork task as a draft lists it (names and body already masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPoint<'a> {
    pub assignee: &'a str,
    pub assigned_by: Option<&'a str>,
    pub deadline: TaskDeadline,
    pub body: &'a str,
    pub room: &'a str,
}

/// One resolved language and zone: the words and times of one draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locale {
    pub language: Language,
    pub time_zone: Tz,
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];

impl Locale {
    pub fn japanese(&self) -> bool {
        self.language == Language::Japanese
    }

    /// A point's time: `3/5(水) 19:00`, `Wed Mar 5 19:00`.
    pub fn time(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.time_zone);
        match self.language {
            Language::Japanese => format!(
                "{}/{}({}) {}",
                local.month(),
                local.day(),
                WEEKDAYS_JA[local.weekday().num_days_from_monday() as usize],
                local.format("%H:%M")
            ),
            Language::English => local.format("%a %b %-d %H:%M").to_string(),
        }
    }

    /// A period boundary, with its year: `2025年3月1日(土) 09:00`, `Sat Mar 1, 2025 09:00`.
    fn boundary(&self, at: DateTime<Utc>, with_year: bool) -> String {
        let local = at.with_timezone(&self.time_zone);
        match self.language {
            Language::Japanese => format!(
                "{}{}月{}日({}) {}",
                if with_year {
                    format!("{}年", local.year())
                } else {
                    String::new()
                },
                local.month(),
                local.day(),
                WEEKDAYS_JA[local.weekday().num_days_from_monday() as usize],
                local.format("%H:%M")
            ),
            Language::English => local.format("%a %b %-d, %Y %H:%M").to_string(),
        }
    }

    /// The zone as the heading names it.
    fn zone(&self) -> String {
        match (self.language, self.time_zone) {
            (Language::Japanese, chrono_tz::Asia::Tokyo) => "日本時間".to_owned(),
            (Language::Japanese, tz) => format!("{} 時間", tz.name()),
            (Language::English, tz) => format!("{} time", tz.name()),
        }
    }

    /// `2025年3月1日(土) 09:00 〜 3月8日(土) 09:00（日本時間）`; the end's year is left
    /// out in Japanese when it is the start's.
    pub fn period(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        let tz = self.time_zone;
        let same_year = start.with_timezone(&tz).year() == end.with_timezone(&tz).year();
        match self.language {
            Language::Japanese => format!(
                "{} 〜 {}（{}）",
                self.boundary(start, true),
                self.boundary(end, !same_year),
                self.zone()
            ),
            Language::English => format!(
                "{} – {} ({})",
                self.boundary(start, true),
                self.boundary(end, true),
                self.zone()
            ),
        }
    }

    /// The draft's first two lines.
    pub fn heading(&self, company: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        match self.language {
            Language::Japanese => format!("要約案：{company}\n期間：{}\n", self.period(start, end)),
            Language::English => format!(
                "Summary draft: {company}\nPeriod: {}\n",
                self.period(start, end)
            ),
        }
    }

    /// The whole draft of a period without messages.
    pub fn no_messages(&self, company: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        let heading = self.heading(company, start, end);
        match self.language {
            Language::Japanese => format!(
                "{heading}\nこの期間、{company} とのやり取りはありません。要約する内容はありません。\n"
            ),
            Language::English => format!(
                "{heading}\nNo messages with {company} in this period: nothing to summarize.\n"
            ),
        }
    }

    /// `2つのルームで11件、参加者6名。発言の多い人：…`
    pub fn overview(&self, messages: usize, rooms: usize, people: usize, active: &str) -> String {
        match self.language {
            Language::Japanese => format!(
                "{rooms}つのルームで{messages}件のメッセージ、参加者{people}名。発言の多い人：{active}\n"
            ),
            Language::English => format!(
                "{} in {} from {}. Most active: {active}.\n",
                plural(messages, "message"),
                plural(rooms, "room"),
                plural(people, "person"),
            ),
        }
    }

    /// `## 営業チーム（ルーム 101）：7件`
    pub fn room_heading(&self, name: &str, room_id: i64, messages: usize) -> String {
        match self.language {
            Language::Japanese => format!("## {name}（ルーム {room_id}）：{messages}件\n"),
            Language::English => format!(
                "## {name} (room {room_id}): {}\n",
                plural(messages, "message")
            ),
        }
    }

    pub fn participants(&self, list: &str) -> String {
        match self.language {
            Language::Japanese => format!("参加者：{list}\n"),
            Language::English => format!("Participants: {list}\n"),
        }
    }

    /// `佐藤 健一（3件）`, `Alice (2)`, joined.
    pub fn people(&self, people: &[(String, usize)]) -> String {
        let (each, sep): (fn(&str, usize) -> String, &str) = match self.language {
            Language::Japanese => (|n, c| format!("{n}（{c}件）"), "、"),
            Language::English => (|n, c| format!("{n} ({c})"), ", "),
        };
        people
            .iter()
            .map(|(name, count)| each(name, *count))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// A group's heading.
    pub fn group(&self, kind: PointKind) -> &'static str {
        match (self.language, kind) {
            (Language::Japanese, PointKind::Decision) => "### 決定事項\n",
            (Language::Japanese, PointKind::Request) => "### 依頼・期限\n",
            (Language::Japanese, PointKind::OpenQuestion) => "### 未回答の質問\n",
            (Language::Japanese, PointKind::Other) => "### その他の注目メッセージ\n",
            (Language::English, PointKind::Decision) => "### Decisions\n",
            (Language::English, PointKind::Request) => "### Requests and deadlines\n",
            (Language::English, PointKind::OpenQuestion) => "### Open questions\n",
            (Language::English, PointKind::Other) => "### Other notable messages\n",
        }
    }

    /// `- 3/5(水) 19:00 Alice（期限：by Friday）：text url`,
    /// `- Wed Mar 5 19:00 Alice (due by Friday): text url`
    pub fn point(
        &self,
        at: DateTime<Utc>,
        author: &str,
        deadline: Option<&str>,
        text: &str,
        url: &str,
    ) -> String {
        let time = self.time(at);
        match (self.language, deadline) {
            (Language::Japanese, None) => format!("- {time} {author}：{text} {url}\n"),
            (Language::Japanese, Some(d)) => {
                format!("- {time} {author}（期限：{d}）：{text} {url}\n")
            }
            (Language::English, None) => format!("- {time} {author}: {text} {url}\n"),
            // "by Friday" reads "due by Friday"; "due Mar 14" stays as it is.
            (Language::English, Some(d)) if d.to_ascii_lowercase().starts_with("due") => {
                format!("- {time} {author} ({d}): {text} {url}\n")
            }
            (Language::English, Some(d)) => {
                format!("- {time} {author} (due {d}): {text} {url}\n")
            }
        }
    }

    pub fn no_key_points(&self) -> &'static str {
        match self.language {
            Language::Japanese => "目立った決定事項・依頼・質問はありません。\n",
            Language::English => "No decisions, requests or questions stood out.\n",
        }
    }

    /// A task's deadline: `12/7(月) 18:00` or `12/7(月)` for a day, `Mon Dec 7 18:00` or
    /// `Mon Dec 7`; the year is added when it is not the year of `reference` (the
    /// period's end).
    pub fn deadline(&self, deadline: TaskDeadline, reference: DateTime<Utc>) -> Option<String> {
        let reference_year = reference.with_timezone(&self.time_zone).year();
        let date = |d: NaiveDate| -> String {
            let weekday = d.weekday();
            match self.language {
                Language::Japanese => {
                    let year = if d.year() == reference_year {
                        String::new()
                    } else {
                        format!("{}/", d.year())
                    };
                    format!(
                        "{year}{}/{}({})",
                        d.month(),
                        d.day(),
                        WEEKDAYS_JA[weekday.num_days_from_monday() as usize]
                    )
                }
                Language::English => {
                    let year = if d.year() == reference_year {
                        String::new()
                    } else {
                        format!(", {}", d.year())
                    };
                    format!("{}{year}", d.format("%a %b %-d"))
                }
            }
        };
        match deadline {
            TaskDeadline::None => None,
            TaskDeadline::Date(day) => Some(date(day)),
            TaskDeadline::Time(at) => {
                let local = at.with_timezone(&self.time_zone);
                Some(format!(
                    "{} {}",
                    date(local.date_naive()),
                    local.format("%H:%M")
                ))
            }
        }
    }

    /// The heading of a draft's Chatwork tasks.
    pub fn tasks_heading(&self) -> &'static str {
        match self.language {
            Language::Japanese => "## Chatworkのタスク\n",
            Language::English => "## Chatwork tasks\n",
        }
    }

    /// A task list's heading.
    pub fn task_group(&self, group: TaskGroup) -> &'static str {
        match (self.language, group) {
            (Language::Japanese, TaskGroup::Overdue) => "### 期限切れ（未完了）\n",
            (Language::Japanese, TaskGroup::Opened) => "### 期間中に追加\n",
            (Language::Japanese, TaskGroup::Done) => "### 期間中に完了\n",
            (Language::English, TaskGroup::Overdue) => "### Overdue (still open)\n",
            (Language::English, TaskGroup::Opened) => "### Added in the period\n",
            (Language::English, TaskGroup::Done) => "### Done in the period\n",
        }
    }

    /// `- 佐藤 健一 担当（依頼：田中）期限：12/7(月) 18:00：見積書を送る［営業］`,
    /// `- Sato Kenichi, assigned by Tanaka, due Mon Dec 7 18:00: send the quote [Sales]`
    pub fn task(&self, task: &TaskPoint<'_>, reference: DateTime<Utc>) -> String {
        let deadline = self.deadline(task.deadline, reference);
        let TaskPoint {
            assignee,
            assigned_by,
            body,
            room,
            ..
        } = task;
        match self.language {
            Language::Japanese => {
                let by = assigned_by.map_or(String::new(), |b| format!("（依頼：{b}）"));
                let due = deadline.map_or_else(|| "期限なし".to_owned(), |d| format!("期限：{d}"));
                format!("- {assignee} 担当{by} {due}：{body}［{room}］\n")
            }
            Language::English => {
                let by = assigned_by.map_or(String::new(), |b| format!(", assigned by {b}"));
                let due = deadline.map_or_else(|| "no deadline".to_owned(), |d| format!("due {d}"));
                format!("- {assignee}{by}, {due}: {body} [{room}]\n")
            }
        }
    }

    /// After a task list cut short: how many more there are.
    pub fn more_tasks(&self, more: usize) -> String {
        match self.language {
            Language::Japanese => format!("- ほか{more}件\n"),
            Language::English => format!("- and {more} more\n"),
        }
    }

    /// The heading of a model draft's list of links.
    pub fn sources(&self) -> &'static str {
        match self.language {
            Language::Japanese => "出典：",
            Language::English => "Sources:",
        }
    }
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
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_language_is_what_most_of_the_text_is_written_in() {
        assert_eq!(
            Language::most_of(["見積もりを送ります", "ok"]),
            Language::Japanese
        );
        assert_eq!(
            Language::most_of(["Thanks 佐藤さん, I will send the estimate tomorrow."]),
            Language::English
        );
        // Three short Japanese replies do not outweigh a paragraph of English.
        assert_eq!(
            Language::most_of([
                "了解です",
                "はい",
                "We decided to ship version 2.0 on March 14 after the final QA pass.",
            ]),
            Language::English
        );
        assert_eq!(Language::most_of([]), Language::English);
    }

    #[test]
    fn the_language_setting_is_auto_ja_or_en() {
        assert_eq!("auto".parse(), Ok(LanguageChoice::Auto));
        assert_eq!("JA".parse(), Ok(LanguageChoice::Fixed(Language::Japanese)));
        assert_eq!("en".parse(), Ok(LanguageChoice::Fixed(Language::English)));
        assert!("japanese".parse::<LanguageChoice>().is_err());
        let fixed = DraftStyle {
            language: LanguageChoice::Fixed(Language::English),
            ..DraftStyle::default()
        };
        assert_eq!(fixed.locale(["日本語だけ"]).language, Language::English);
        assert_eq!(
            DraftStyle::default().locale(["日本語だけ"]).language,
            Language::Japanese
        );
    }

    #[test]
    fn times_are_local_and_the_zone_is_named_in_the_period() {
        let start = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2025, 3, 8, 0, 0, 0).unwrap();
        let ja = DraftStyle::default().locale(["日本語"]);
        assert_eq!(ja.time(start), "3/1(土) 09:00");
        assert_eq!(
            ja.period(start, end),
            "2025年3月1日(土) 09:00 〜 3月8日(土) 09:00（日本時間）"
        );
        let en = Locale {
            language: Language::English,
            time_zone: chrono_tz::America::New_York,
        };
        assert_eq!(en.time(start), "Fri Feb 28 19:00");
        assert_eq!(
            en.period(start, end),
            "Fri Feb 28, 2025 19:00 – Fri Mar 7, 2025 19:00 (America/New_York time)"
        );
        let due = |d| en.point(start, "Alice", Some(d), "t", "u");
        assert_eq!(
            due("by Friday"),
            "- Fri Feb 28 19:00 Alice (due by Friday): t u\n"
        );
        assert_eq!(
            due("due Mar 14"),
            "- Fri Feb 28 19:00 Alice (due Mar 14): t u\n"
        );
        assert_eq!(
            ja.point(start, "佐藤", Some("5/21まで"), "本文", "u"),
            "- 3/1(土) 09:00 佐藤（期限：5/21まで）：本文 u\n"
        );
        let new_year = Utc.with_ymd_and_hms(2025, 12, 30, 0, 0, 0).unwrap();
        let next = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
        assert_eq!(
            ja.period(new_year, next),
            "2025年12月30日(火) 09:00 〜 2026年1月2日(金) 09:00（日本時間）"
        );
    }

    #[test]
    fn task_deadlines_are_local_times_or_chatworks_days() {
        let ja = Locale {
            language: Language::Japanese,
            time_zone: chrono_tz::Asia::Tokyo,
        };
        let en = Locale {
            language: Language::English,
            ..ja
        };
        let end = Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap();
        let time = TaskDeadline::Time(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap());
        assert_eq!(ja.deadline(time, end).unwrap(), "12/7(月) 18:00");
        assert_eq!(en.deadline(time, end).unwrap(), "Mon Dec 7 18:00");
        let day = TaskDeadline::Date(NaiveDate::from_ymd_opt(2027, 1, 8).unwrap());
        assert_eq!(ja.deadline(day, end).unwrap(), "2027/1/8(金)");
        assert_eq!(en.deadline(day, end).unwrap(), "Fri Jan 8, 2027");
        assert_eq!(ja.deadline(TaskDeadline::None, end), None);
        let point = TaskPoint {
            assignee: "佐藤",
            assigned_by: Some("田中"),
            deadline: time,
            body: "見積書を送る",
            room: "営業",
        };
        assert_eq!(
            ja.task(&point, end),
            "- 佐藤 担当（依頼：田中） 期限：12/7(月) 18:00：見積書を送る［営業］\n"
        );
        assert_eq!(
            en.task(
                &TaskPoint {
                    assigned_by: None,
                    deadline: TaskDeadline::None,
                    ..point
                },
                end
            ),
            "- 佐藤, no deadline: 見積書を送る [営業]\n"
        );
        let utc = Locale {
            time_zone: chrono_tz::UTC,
            ..en
        };
        assert_eq!(utc.deadline(time, end).unwrap(), "Mon Dec 7 09:00");
    }
}
