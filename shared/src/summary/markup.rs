//! Chatwork message markup made readable.
//!
//! Chatwork bodies carry tags: `[To:123]` and `[rp aid=.. to=..]` address people,
//! `[qt]...[/qt]` quotes, `[info][title]..[/title]..[/info]` frames notices, and system
//! messages are made of `[dtext:...]` keys the client translates and `[picon:..]`
//! avatars. A summary needs what people wrote: mentions become `@name`, quotes become
//! `> ` lines, notices become `title: body`, and the system keys and avatars go.
//! Anything that only looks like a tag stays as written. Which earlier messages a body
//! replies to or quotes is kept ([`Reference`]): an answered question is not an open one.

/// A body with its markup resolved, and what the markup said about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Readable text; quoted lines start with `> `.
    pub text: String,
    /// How many people (or `toall`) the message addresses with `[To:]`, `[toall]` or `[rp]`.
    pub mentions: u32,
    /// Whether the message answers another one (`[rp]`).
    pub reply: bool,
    /// The earlier messages it replies to or quotes (what makes a question answered).
    pub answers: Vec<Reference>,
}

/// An earlier message a message answers: by `[rp ... to=room-message]`, or by a
/// `[qt][qtmeta aid=.. time=..]` quote, which names the author and the send time only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Reply { message_id: String },
    Quote { account_id: i64, send_time: i64 },
}

impl Cleaned {
    /// The author's own words: the text without quoted lines.
    pub fn own_text(&self) -> String {
        self.text
            .lines()
            .filter(|l| !l.starts_with('>'))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    /// `[name]`, `[name:arg]` or `[name attrs]`, name lower-cased; `closing` for `[/name]`.
    Tag {
        name: String,
        arg: &'a str,
        closing: bool,
    },
}

/// Tags this module understands; any other bracket is text.
const KNOWN: &[&str] = &[
    "to",
    "toall",
    "rp",
    "qt",
    "qtmeta",
    "info",
    "title",
    "code",
    "hr",
    "dtext",
    "picon",
    "piconname",
    "preview",
    "download",
    "task",
    "deleted",
];

fn tokenize(body: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let bytes = body.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'['
            && let Some(len) = body[i..].find(']')
        {
            let inner = &body[i + 1..i + len];
            if let Some(tag) = parse_tag(inner) {
                if text_start < i {
                    tokens.push(Token::Text(&body[text_start..i]));
                }
                tokens.push(tag);
                i += len + 1;
                text_start = i;
                continue;
            }
        }
        i += 1;
    }
    if text_start < body.len() {
        tokens.push(Token::Text(&body[text_start..]));
    }
    tokens
}

fn parse_tag(inner: &str) -> Option<Token<'_>> {
    let (closing, rest) = match inner.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let name = rest[..end].to_ascii_lowercase();
    if name.is_empty() || !KNOWN.contains(&name.as_str()) {
        return None;
    }
    let arg = &rest[end..];
    // `[To:123]`, `[rp aid=1 to=2-3]`, `[qt]`: what follows the name is empty, `:...`
    // or ` ...`.
    let arg = match arg.chars().next() {
        None => "",
        Some(':') | Some(' ') => &arg[1..],
        Some(_) => return None,
    };
    if closing && !arg.is_empty() {
        return None;
    }
    Some(Token::Tag { name, arg, closing })
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Frame {
    Root,
    Quote,
    Info,
    Title,
    Code,
}

struct Open {
    frame: Frame,
    text: String,
    /// An `[info]`'s title, once its `[/title]` closed.
    title: Option<String>,
}

/// Resolves the markup of `body`.
pub fn clean(body: &str) -> Cleaned {
    let tokens = tokenize(body);
    let mut cleaned = Cleaned::default();
    let mut stack = vec![Open {
        frame: Frame::Root,
        text: String::new(),
        title: None,
    }];
    for (i, token) in tokens.iter().enumerate() {
        let top = stack.last_mut().expect("the root frame stays");
        match token {
            Token::Text(text) => top.text.push_str(text),
            Token::Tag {
                name,
                arg,
                closing: false,
            } => match name.as_str() {
                "to" | "rp" => {
                    cleaned.mentions += 1;
                    let who = if name == "rp" {
                        cleaned.reply = true;
                        if let Some((_, message_id)) =
                            attribute(arg, "to").and_then(|to| to.split_once('-'))
                        {
                            cleaned.answers.push(Reference::Reply {
                                message_id: message_id.to_owned(),
                            });
                        }
                        top.text.push_str("Re: ");
                        attribute(arg, "aid").unwrap_or("")
                    } else {
                        arg
                    };
                    top.text.push('@');
                    // Chatwork writes the name after the tag; without one, the id says who.
                    if !names_follow(&tokens, i) {
                        top.text.push_str(who.trim());
                    }
                }
                "toall" => {
                    cleaned.mentions += 1;
                    top.text.push_str("@all");
                }
                "hr" => top.text.push('\n'),
                "qt" | "info" | "title" | "code" => {
                    let frame = match name.as_str() {
                        "qt" => Frame::Quote,
                        "info" => Frame::Info,
                        "title" => Frame::Title,
                        _ => Frame::Code,
                    };
                    stack.push(Open {
                        frame,
                        text: String::new(),
                        title: None,
                    });
                }
                "qtmeta" => {
                    let number = |name| attribute(arg, name).and_then(|v| v.parse().ok());
                    if let (Some(account_id), Some(send_time)) = (number("aid"), number("time")) {
                        cleaned.answers.push(Reference::Quote {
                            account_id,
                            send_time,
                        });
                    }
                }
                // System keys, avatars, previews: nothing to read.
                _ => {}
            },
            Token::Tag {
                name,
                closing: true,
                ..
            } => {
                let frame = match name.as_str() {
                    "qt" => Frame::Quote,
                    "info" => Frame::Info,
                    "title" => Frame::Title,
                    "code" => Frame::Code,
                    _ => continue,
                };
                // A closing tag ends the innermost frame of its kind (and what is left open
                // inside it); one with no open frame is ignored.
                if let Some(depth) = stack.iter().rposition(|o| o.frame == frame)
                    && depth > 0
                {
                    while stack.len() > depth {
                        close_top(&mut stack);
                    }
                }
            }
        }
    }
    while stack.len() > 1 {
        close_top(&mut stack);
    }
    cleaned.text = tidy(&stack.pop().expect("the root frame").text);
    cleaned
}

/// Whether text that can be a name follows the tag at `i` on the same line.
fn names_follow(tokens: &[Token<'_>], i: usize) -> bool {
    match tokens.get(i + 1) {
        Some(Token::Text(text)) => text
            .chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && c != '\n'),
        _ => false,
    }
}

/// The value of `name=` in a tag's attributes (`aid=123 to=456-789`).
fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
    attributes.split_whitespace().find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

fn close_top(stack: &mut Vec<Open>) {
    let open = stack.pop().expect("a frame to close");
    let parent = stack.last_mut().expect("the root frame stays");
    match open.frame {
        Frame::Root => unreachable!("the root frame is never closed"),
        Frame::Title => {
            let title = open.text.trim().to_owned();
            if parent.frame == Frame::Info {
                parent.title = Some(title);
            } else if !title.is_empty() {
                parent.text.push_str(&title);
                parent.text.push('\n');
            }
        }
        Frame::Info => {
            let title = open.title.unwrap_or_default();
            let body = tidy(&open.text);
            let block = match (title.is_empty(), body.is_empty()) {
                (true, true) => String::new(),
                (false, true) => title,
                (true, false) => body,
                (false, false) if body.contains('\n') => format!("{title}:\n{body}"),
                (false, false) => format!("{title}: {body}"),
            };
            push_block(&mut parent.text, &block);
        }
        Frame::Quote => {
            let quoted = tidy(&open.text);
            let block: Vec<String> = quoted
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    if l.starts_with('>') {
                        format!(">{l}")
                    } else {
                        format!("> {l}")
                    }
                })
                .collect();
            push_block(&mut parent.text, &block.join("\n"));
        }
        Frame::Code => parent.text.push_str(&open.text),
    }
}

/// Appends `block` on lines of its own.
fn push_block(text: &mut String, block: &str) {
    if block.is_empty() {
        return;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(block);
    text.push('\n');
}

/// Trailing spaces off every line, no runs of blank lines, no blank ends.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_become_readable() {
        let c = clean("[To:123]佐藤さん\n[To:456]Aliceさん\n明日の件、確認お願いします。");
        assert_eq!(
            c.text,
            "@佐藤さん\n@Aliceさん\n明日の件、確認お願いします。"
        );
        assert_eq!((c.mentions, c.reply), (2, false));
        let c = clean("[To:123]\nplease check");
        assert_eq!(c.text, "@123\nplease check");
        let c = clean("[toall]\n全員へ");
        assert_eq!((c.text.as_str(), c.mentions), ("@all\n全員へ", 1));
    }

    #[test]
    fn replies_name_who_they_answer() {
        let c = clean("[rp aid=123 to=101-1234567890123456789]鈴木さん\n了解です");
        assert_eq!(
            c.answers,
            [Reference::Reply {
                message_id: "1234567890123456789".into()
            }]
        );
        assert_eq!(c.text, "Re: @鈴木さん\n了解です");
        assert!(c.reply);
        assert_eq!(c.mentions, 1);
        let c = clean("[rp aid=77 to=1-2]\nok");
        assert_eq!(c.text, "Re: @77\nok");
    }

    #[test]
    fn quotes_become_quoted_lines() {
        let c = clean(
            "[qt][qtmeta aid=1 time=1700000000]見積もりは\n来週送ります[/qt]ありがとうございます",
        );
        assert_eq!(
            c.answers,
            [Reference::Quote {
                account_id: 1,
                send_time: 1_700_000_000
            }]
        );
        assert_eq!(c.text, "> 見積もりは\n> 来週送ります\nありがとうございます");
        assert_eq!(c.own_text(), "ありがとうございます");
        // Nested quotes keep their depth; an unclosed quote ends with the message.
        let c = clean("[qt]outer [qt]inner[/qt][/qt]reply");
        assert_eq!(c.text, "> outer\n>> inner\nreply");
        let c = clean("before[qt]never closed");
        assert_eq!(c.text, "before\n> never closed");
    }

    #[test]
    fn notices_read_as_title_and_body() {
        let c = clean("[info][title]定例会議[/title]3月5日 14:00から[/info]");
        assert_eq!(c.text, "定例会議: 3月5日 14:00から");
        let c = clean("[info][title]Agenda[/title]1. budget\n2. hiring[/info]");
        assert_eq!(c.text, "Agenda:\n1. budget\n2. hiring");
        let c = clean("[info]body only[/info]");
        assert_eq!(c.text, "body only");
    }

    #[test]
    fn system_keys_and_avatars_are_dropped() {
        let c = clean(
            "[info][title][dtext:chatroom_chat_edited][/title][dtext:chatroom_member_is][piconname:123][dtext:chatroom_added][/info]",
        );
        assert_eq!(c.text, "");
        let c = clean("[picon:42] [piconname:43]さんが参加しました");
        assert_eq!(c.text, "さんが参加しました");
        let c = clean("[preview id=1 ht=100]見積書.pdf[download:9]見積書.pdf[/download]");
        assert_eq!(c.text, "見積書.pdf見積書.pdf");
    }

    #[test]
    fn brackets_that_are_not_tags_stay() {
        for text in [
            "[重要] 価格の件",
            "array[0] and [x]",
            "[To:",
            "a ] b [",
            "[/qt] stray",
        ] {
            let expected = if text == "[/qt] stray" { "stray" } else { text };
            assert_eq!(clean(text).text, expected, "{text}");
        }
        assert_eq!(clean("[code]let a = [1];[/code]").text, "let a = [1];");
    }

    #[test]
    fn blank_lines_are_tidied() {
        assert_eq!(clean("  a  \n\n\n\nb\n\n").text, "a\n\nb");
    }
}
