//! What a summarizer reads: a company's messages of a period, room by room in time order,
//! with markup resolved ([`markup`](super::markup)) and personal data masked
//! ([`mask`](super::mask)). Nothing unmasked leaves this module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
        }
    }

    pub fn message_count(&self) -> usize {
        self.rooms.iter().map(|r| r.lines.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Every message's text, for choosing the draft's language.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.rooms
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| l.text.as_str()))
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
}
