//! Personal data out of text before any summarizer (or model) sees it: e-mail addresses
//! become `[email]` and phone numbers `[phone]`.
//!
//! Phone numbers come in many shapes; these are the ones masked:
//! - Japanese numbers with a leading 0: `03-1234-5678`, `045-123-4567`,
//!   `090-1234-5678`, `0120-123-456`, with hyphens, dots, spaces or `ー` between the
//!   groups, `(03) 1234-5678`, `03(1234)5678`, or ten or eleven digits in a row;
//! - international numbers: `+81 3-1234-5678`, `+81 (0)90 1234 5678`, `+819012345678`,
//!   `+1 415 555 0100`;
//! - North American `(415) 555-0100` and `415-555-0100`.
//!
//! Full-width digits, hyphens, `＋`, `＠` and parentheses are read as their ASCII forms
//! first (the text keeps them so), so `０３－１２３４－５６７８` is masked too. A match
//! that continues into more digits (an order or message number) is left alone.

use std::sync::LazyLock;

use regex_lite::Regex;

pub const EMAIL: &str = "[email]";
pub const PHONE: &str = "[phone]";

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("a valid pattern")
});

static PHONE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let separator = r"[ \-.ー]";
    let patterns = [
        // International: +CC, an optional (0), then groups.
        format!(
            r"\+\d{{1,3}}{separator}?(?:\(0\){separator}?)?\d{{1,4}}(?:{separator}?\d{{1,4}}){{1,3}}"
        ),
        // (03) 1234-5678
        format!(r"\(0\d{{1,4}}\){separator}?\d{{1,4}}{separator}\d{{3,4}}"),
        // 03(1234)5678
        r"0\d{1,4}\(\d{1,4}\)\d{3,4}".to_owned(),
        // 03-1234-5678, 090-1234-5678, 0120-123-456
        format!(r"0\d{{1,4}}{separator}\d{{1,4}}{separator}\d{{3,4}}"),
        // (415) 555-0100, 415-555-0100
        format!(r"\(\d{{3}}\){separator}?\d{{3}}{separator}\d{{4}}"),
        format!(r"\d{{3}}{separator}\d{{3}}{separator}\d{{4}}"),
        // 0312345678, 09012345678
        r"0\d{9,10}".to_owned(),
    ];
    Regex::new(&patterns.join("|")).expect("a valid pattern")
});

/// `text` with e-mail addresses and phone numbers replaced.
pub fn mask(text: &str) -> String {
    // Matching runs on a copy with full-width forms made ASCII. Every replaced character
    // is one char either way, so char positions agree between the two.
    let folded: String = text.chars().map(fold).collect();
    let mut spans: Vec<(usize, usize, &str)> = Vec::new();
    for m in EMAIL_RE.find_iter(&folded) {
        spans.push((m.start(), m.end(), EMAIL));
    }
    for m in PHONE_RE.find_iter(&folded) {
        if touches_digits(&folded, m.start(), m.end())
            || spans.iter().any(|(s, e, _)| m.start() < *e && *s < m.end())
            || m.as_str().chars().filter(char::is_ascii_digit).count() < 7
        {
            continue;
        }
        spans.push((m.start(), m.end(), PHONE));
    }
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort_by_key(|(s, _, _)| *s);
    // Byte offsets in `folded` to char offsets, then to byte offsets in `text`.
    let char_starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let folded_starts: Vec<usize> = folded.char_indices().map(|(i, _)| i).collect();
    let to_text = |folded_byte: usize| -> usize {
        match folded_starts.binary_search(&folded_byte) {
            Ok(char_index) => char_starts[char_index],
            Err(_) => text.len(),
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, placeholder) in spans {
        let (start, end) = (to_text(start), to_text(end));
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(placeholder);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// A full-width digit, sign or bracket as its ASCII form; anything else as it is.
fn fold(c: char) -> char {
    match c {
        '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
        '－' | '‐' | '‑' | '‒' | '−' => '-',
        '＋' => '+',
        '＠' => '@',
        '（' => '(',
        '）' => ')',
        '．' => '.',
        '　' => ' ',
        _ => c,
    }
}

/// Whether the match at `start..end` continues into digits on either side.
fn touches_digits(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_masked() {
        assert_eq!(
            mask("連絡先: taro.yamada+sales@example.co.jp までお願いします"),
            "連絡先: [email] までお願いします"
        );
        assert_eq!(
            mask("mail alice@mail.example.com, bob_1@ex-ample.org."),
            "mail [email], [email]."
        );
        assert_eq!(mask("全角＠も yamada＠example.jp"), "全角＠も [email]");
        assert_eq!(mask("@佐藤さん 確認します"), "@佐藤さん 確認します");
    }

    #[test]
    fn japanese_phone_numbers_are_masked() {
        for (text, expected) in [
            ("電話は03-1234-5678です", "電話は[phone]です"),
            ("携帯 090-1234-5678 まで", "携帯 [phone] まで"),
            ("045-123-4567", "[phone]"),
            ("フリーダイヤル0120-123-456", "フリーダイヤル[phone]"),
            ("(03) 1234-5678", "[phone]"),
            ("03(1234)5678", "[phone]"),
            ("09012345678に", "[phone]に"),
            ("０３－１２３４－５６７８", "[phone]"),
            ("080ー1234ー5678", "[phone]"),
            ("03.1234.5678", "[phone]"),
        ] {
            assert_eq!(mask(text), expected, "{text}");
        }
    }

    #[test]
    fn international_phone_numbers_are_masked() {
        for (text, expected) in [
            ("+81 3-1234-5678", "[phone]"),
            ("+81-90-1234-5678", "[phone]"),
            ("+81 (0)90 1234 5678", "[phone]"),
            ("tel:+819012345678.", "tel:[phone]."),
            ("call +1 415 555 0100 now", "call [phone] now"),
            ("(415) 555-0100", "[phone]"),
            ("415-555-0100", "[phone]"),
        ] {
            assert_eq!(mask(text), expected, "{text}");
        }
    }

    #[test]
    fn numbers_that_are_not_phone_numbers_stay() {
        for text in [
            "2025-03-01 10:00",
            "見積もりは1,200,000円",
            "message 1234567890123456789",
            "rid101-1234567890123456789",
            "v1.2.3",
            "3月5日 14:00",
            "注文番号 12345",
            "2025年3月",
        ] {
            assert_eq!(mask(text), text, "{text}");
        }
    }

    #[test]
    fn masking_keeps_the_rest_of_the_text() {
        let text = "佐藤です。\n> 連絡は sato@example.jp か 03-1111-2222 へ\nOK";
        assert_eq!(mask(text), "佐藤です。\n> 連絡は [email] か [phone] へ\nOK");
    }
}
