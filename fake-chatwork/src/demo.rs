//! The demo data set: a dozen rooms of a small Japanese software company (株式会社ニシカゼ)
//! with its customers and an overseas partner. Japanese and English, emoji, and the
//! Chatwork markup a reader has to cope with: `[To:]`, `[rp]` replies, `[qt]` quotes,
//! `[info][title]` boxes, `[dtext:]` system texts and `[picon:]` icons. Ids look like
//! Chatwork's (9-digit rooms, 19-digit messages).
//! One room (the daily reports) holds more than 100 messages, so that `force=1` cannot
//! return all of it.
//!
//! The history is dated relative to the day it is built ([`Calendar`]): it happens on the
//! ten working days (Monday to Friday, in Tokyo) before that day, in office hours, so a
//! summary of "the last 7 days" always has something to read; the dates the messages
//! mention (「議事録（5/21）」, a report's date) are those days. Built twice on the same
//! day, it is the same data, byte for byte.
//!
//! Two accounts of the company speak to the API: the owner 佐藤 (the default token, a
//! member of the twelve rooms) and his colleague 鈴木 ([`DemoData::SECOND_ACCOUNT_TOKEN`]),
//! who shares the Minato project room with him and has three rooms of her own (her notes,
//! a prospect's proposal room, a direct chat with another customer) that he cannot see.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Weekday};

use crate::AccountSetup;
use crate::model::FakeOAuthClient;
use crate::model::{
    Account, FakeAccount, File, LimitType, Member, Message, Room, RoomType, Task, TaskStatus,
};

const MINUTE: i64 = 60;
/// Working days the history spans (two weeks).
pub const WORKDAYS: usize = 10;

/// The working days the demo's history happens on: the [`WORKDAYS`] weekdays before the
/// day (in Tokyo) it is built, oldest first; day 0 is two weeks back, day 9 the last
/// working day before today.
#[derive(Debug, Clone)]
pub struct Calendar {
    days: Vec<NaiveDate>,
}

/// Japan has no daylight saving time: UTC+9 all year.
fn tokyo() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("a valid offset")
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];

impl Calendar {
    /// The working days before the Tokyo day of `now` (seconds since the epoch).
    pub fn before(now: i64) -> Self {
        let today = tokyo()
            .timestamp_opt(now, 0)
            .single()
            .expect("a valid time")
            .date_naive();
        let mut days = Vec::with_capacity(WORKDAYS);
        let mut day = today;
        while days.len() < WORKDAYS {
            day -= Duration::days(1);
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                days.push(day);
            }
        }
        days.reverse();
        Self { days }
    }

    /// Working day `n` (0 to 9) at `hour`:`minute` in Tokyo, in seconds since the epoch.
    pub fn at(&self, n: usize, hour: u32, minute: u32) -> i64 {
        let time = self.days[n]
            .and_hms_opt(hour, minute, 0)
            .expect("a valid time of day");
        tokyo()
            .from_local_datetime(&time)
            .single()
            .expect("a fixed offset has no gaps")
            .timestamp()
    }

    /// `5/21`
    fn date(&self, n: usize) -> String {
        format!("{}/{}", self.days[n].month(), self.days[n].day())
    }

    /// `5/21(水)`
    fn date_weekday(&self, n: usize) -> String {
        format!(
            "{}({})",
            self.date(n),
            WEEKDAYS_JA[self.days[n].weekday().num_days_from_monday() as usize]
        )
    }

    /// `Thursday`
    fn weekday_en(&self, n: usize) -> String {
        self.days[n].format("%A").to_string()
    }

    /// `5/26(月)`: the `k`-th working day after the history (1 is the next one).
    fn ahead_weekday(&self, k: usize) -> String {
        let mut day = *self.days.last().expect("ten days");
        let mut left = k;
        while left > 0 {
            day += Duration::days(1);
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                left -= 1;
            }
        }
        format!(
            "{}/{}({})",
            day.month(),
            day.day(),
            WEEKDAYS_JA[day.weekday().num_days_from_monday() as usize]
        )
    }

    /// The `k`-th working day after the history (1 is the next one); 0 is the last day
    /// of the history, negative ones count back into it.
    fn workday(&self, k: i64) -> NaiveDate {
        if k <= 0 {
            let back = usize::try_from(-k).unwrap_or(0).min(self.days.len() - 1);
            return self.days[self.days.len() - 1 - back];
        }
        let mut day = *self.days.last().expect("ten days");
        let mut left = k;
        while left > 0 {
            day += Duration::days(1);
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                left -= 1;
            }
        }
        day
    }

    /// A task deadline of kind `date` on working day `k` (see [`Self::workday`]): the
    /// last second of that day in Tokyo.
    fn due_date(&self, k: i64) -> i64 {
        let end = self
            .workday(k)
            .and_hms_opt(23, 59, 59)
            .expect("a valid time of day");
        tokyo()
            .from_local_datetime(&end)
            .single()
            .expect("a fixed offset has no gaps")
            .timestamp()
    }

    /// A task deadline of kind `time`: working day `k` at `hour`:`minute` in Tokyo.
    fn due_time(&self, k: i64, hour: u32, minute: u32) -> i64 {
        let at = self
            .workday(k)
            .and_hms_opt(hour, minute, 0)
            .expect("a valid time of day");
        tokyo()
            .from_local_datetime(&at)
            .single()
            .expect("a fixed offset has no gaps")
            .timestamp()
    }

    /// `Jun 16`: `days` calendar days after the history's last day.
    fn ahead_en(&self, days: i64) -> String {
        (*self.days.last().expect("ten days") + Duration::days(days))
            .format("%b %-d")
            .to_string()
    }
}

/// The demo rooms and the people in them.
#[derive(Debug, Clone)]
pub struct DemoData {
    pub accounts: Vec<Account>,
    /// The owner's rooms (the default account is a member of each).
    pub rooms: Vec<Room>,
    /// The second account of the company ([`Self::SECOND_ACCOUNT_TOKEN`]).
    pub second_account: FakeAccount,
    /// The rooms only the second account is a member of.
    pub second_rooms: Vec<Room>,
}

/// The people of the demo, and the days they talk on.
struct People {
    cal: Calendar,
    sato: Account,
    suzuki: Account,
    takahashi: Account,
    tanaka: Account,
    emily: Account,
    ito: Account,
    watanabe: Account,
    daniel: Account,
    yamamoto: Account,
    nakamura: Account,
    kobayashi: Account,
    mori: Account,
}

impl People {
    fn new(cal: Calendar) -> Self {
        Self {
            cal,
            sato: Account::new(1_001_001, "佐藤 健一"),
            suzuki: Account::new(1_001_002, "鈴木 美咲"),
            takahashi: Account::new(1_001_003, "高橋 翔太"),
            tanaka: Account::new(1_001_004, "田中 由美"),
            emily: Account::new(1_001_005, "Emily Carter"),
            ito: Account::new(1_001_006, "伊藤 大輔"),
            watanabe: Account::new(1_001_007, "渡辺 さくら"),
            daniel: Account::new(1_001_008, "Daniel Kim"),
            yamamoto: Account::new(1_001_009, "山本 直樹"),
            nakamura: Account::new(1_001_010, "中村 彩"),
            kobayashi: Account::new(1_001_011, "小林 恵"),
            mori: Account::new(1_001_012, "森 拓也"),
        }
    }

    fn all(&self) -> Vec<Account> {
        vec![
            self.sato.clone(),
            self.suzuki.clone(),
            self.takahashi.clone(),
            self.tanaka.clone(),
            self.emily.clone(),
            self.ito.clone(),
            self.watanabe.clone(),
            self.daniel.clone(),
            self.yamamoto.clone(),
            self.nakamura.clone(),
            self.kobayashi.clone(),
            self.mori.clone(),
        ]
    }
}

/// Writes one room's history in order, keeping the clock and the ids.
struct Script {
    room: Room,
    clock: i64,
}

impl Script {
    fn new(room_id: i64, name: &str, room_type: RoomType, description: &str, start: i64) -> Self {
        let mut room = Room::new(room_id, name, room_type);
        room.description = description.to_owned();
        Self { room, clock: start }
    }

    fn role(mut self, role: &str) -> Self {
        self.room.role = role.to_owned();
        self
    }

    fn sticky(mut self) -> Self {
        self.room.sticky = true;
        self
    }

    /// Posts `body` as `who`, `minutes` after the previous message; returns its index.
    fn say(&mut self, who: &Account, minutes: i64, body: &str) -> usize {
        self.clock += minutes * MINUTE;
        let index = self.room.messages.len();
        // Chatwork-like 19-digit ids: they grow with time; the room and the position make
        // them unique.
        let id = self.clock as u128 * 1_000_000_000
            + (self.room.room_id % 1000) as u128 * 1_000_000
            + index as u128;
        self.room.messages.push(Message {
            message_id: id.to_string(),
            account: who.clone(),
            body: body.to_owned(),
            send_time: self.clock,
            update_time: 0,
        });
        self.room.last_update_time = self.room.last_update_time.max(self.clock);
        index
    }

    /// A reply to message `to`, with the `[rp]` header Chatwork's reply button writes.
    fn reply(&mut self, who: &Account, minutes: i64, to: usize, body: &str) -> usize {
        let target = &self.room.messages[to];
        let header = format!(
            "[rp aid={} to={}-{}]{}さん\n",
            target.account.account_id, self.room.room_id, target.message_id, target.account.name
        );
        self.say(who, minutes, &format!("{header}{body}"))
    }

    /// Message `index` as a `[qt]` quote, for the body of another message.
    fn quote(&self, index: usize) -> String {
        let m = &self.room.messages[index];
        format!(
            "[qt][qtmeta aid={} time={}]{}[/qt]",
            m.account.account_id, m.send_time, m.body
        )
    }

    /// Edits message `index` `minutes` after it was sent.
    fn edit(&mut self, index: usize, minutes: i64, body: &str) {
        let m = &mut self.room.messages[index];
        m.body = body.to_owned();
        m.update_time = m.send_time + minutes * MINUTE;
        self.room.last_update_time = self.room.last_update_time.max(m.update_time);
    }

    /// Jumps the clock to working day `day` of `cal`, at `hour`:`minute` JST.
    fn day(&mut self, cal: &Calendar, day: usize, hour: u32, minute: u32) {
        self.clock = self.clock.max(cal.at(day, hour, minute));
    }

    fn done(self) -> Room {
        self.room
    }
}

impl DemoData {
    /// The demo data set, dated on the ten working days before today (Tokyo).
    pub fn build() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Self::built_before(now)
    }

    /// The demo data set dated on the working days before the Tokyo day of `now`
    /// (seconds since the epoch); the same for any `now` of one day.
    pub fn built_before(now: i64) -> Self {
        let p = People::new(Calendar::before(now));
        let rooms = vec![
            my_chat(&p),
            direct_suzuki(&p),
            direct_emily(&p),
            direct_ito(&p),
            daily_reports(&p),
            minato_project(&p),
            sakura_support(&p),
            partnership(&p),
            announcements(&p),
            design_review(&p),
            accounting(&p),
            lunch(&p),
        ];
        let mut rooms = rooms;
        add_tasks_files_members(&mut rooms, &p);
        let second_rooms = vec![suzuki_my_chat(&p), aoba_proposal(&p), direct_mori(&p)];
        Self {
            accounts: p.all(),
            rooms,
            second_account: FakeAccount {
                account_id: Self::SECOND_ACCOUNT_ID,
                name: p.suzuki.name.clone(),
                organization_id: crate::state::default_account().organization_id,
                organization_name: crate::state::default_account().organization_name,
            },
            second_rooms,
        }
    }

    /// The account the demo token belongs to (its "my" room is its own).
    pub fn owner(&self) -> &Account {
        &self.accounts[0]
    }

    /// 鈴木 美咲, the owner's colleague in sales: the second account of the demo.
    pub const SECOND_ACCOUNT_ID: i64 = 1_001_002;
    /// The second account's API token.
    pub const SECOND_ACCOUNT_TOKEN: &'static str = "fake-chatwork-token-suzuki-fedcba9876543210";
    /// The room both accounts are members of (the Minato project room).
    pub const SHARED_ROOM_ID: i64 = 281_000_106;
    /// The organization of the demo's customer (伊藤 大輔 and his colleagues), as
    /// `GET /rooms/{id}/members` names it: the local runner's demo company bears this
    /// name, so the members of a room it is not linked to suggest it.
    pub const CUSTOMER_ORGANIZATION: &'static str =
        "ミナトロジスティクス株式会社 (Minato Logistics)";
    /// The room whose members suggest the customer's company though no link says so (the
    /// design review, which 伊藤 joined).
    pub const SUGGESTED_ROOM_ID: i64 = 281_000_110;
    /// The demo's OAuth client, registered by whoever knows its redirect URI
    /// ([`Self::oauth_client`]).
    pub const OAUTH_CLIENT_ID: &'static str = "fake-chatwork-demo-client";
    pub const OAUTH_CLIENT_SECRET: &'static str = "fake-chatwork-demo-client-secret-5f1e0c";

    /// The demo's OAuth client for these redirect URIs (the local runner's callback),
    /// for [`FakeChatwork::register_oauth_client`](crate::FakeChatwork::register_oauth_client).
    pub fn oauth_client(redirect_uris: Vec<String>) -> FakeOAuthClient {
        FakeOAuthClient {
            client_id: Self::OAUTH_CLIENT_ID.to_owned(),
            client_secret: Self::OAUTH_CLIENT_SECRET.to_owned(),
            redirect_uris,
        }
    }

    /// The second account as a fake starts with it: its token, the shared room, its own
    /// rooms.
    pub fn second_account_setup(&self) -> AccountSetup {
        AccountSetup {
            account: self.second_account.clone(),
            api_token: Some(Self::SECOND_ACCOUNT_TOKEN.to_owned()),
            shared_rooms: vec![Self::SHARED_ROOM_ID],
            own_rooms: self.second_rooms.clone(),
        }
    }
}

fn my_chat(p: &People) -> Room {
    let mut s = Script::new(
        281_000_101,
        "マイチャット",
        RoomType::My,
        "自分用のメモ",
        p.cal.at(0, 9, 0),
    )
    .role("admin")
    .sticky();
    let me = &p.sato;
    s.say(
        me,
        5,
        &format!(
            "今週のTODO\n・ミナトロジスティクス様 CSV取込の見積もり\n・サクラ製作所様 月次レポート\n・経費精算（{}締め）",
            p.cal.date(4)
        ),
    );
    s.say(
        me,
        90,
        "メモ：本番DBのメンテナンスは 今週の日曜 02:00〜04:00 JST",
    );
    s.say(
        me,
        240,
        "Chatwork API のレート制限は 5分あたり300回。同じトークンを複数のジョブで使うなら共有の予算が必要 ✅",
    );
    s.day(&p.cal, 3, 17, 40);
    s.say(
        me,
        0,
        "[info][title]読書メモ[/title]「チームトポロジー」より：ストリームアラインドチームを中心に置き、認知負荷を減らす。プラットフォームは\"薄く\"。[/info]",
    );
    let shopping = s.say(
        me,
        30,
        "買うもの：名刺 / USB-Cケーブル / 🎁 田中さんの誕生日プレゼント",
    );
    s.edit(
        shopping,
        600,
        "買うもの：名刺 / USB-Cケーブル×2 / 🎁 田中さんの誕生日プレゼント（済）",
    );
    s.day(&p.cal, 8, 9, 40);
    s.say(
        me,
        0,
        "1on1で話すこと\n1. 渡辺さんのサポート当番の負荷\n2. Danielさんのオンボーディング振り返り\n3. 夏休みの調整 🏖️",
    );
    s.done()
}

fn direct_suzuki(p: &People) -> Room {
    let mut s = Script::new(
        281_000_102,
        "鈴木 美咲",
        RoomType::Direct,
        "",
        p.cal.at(0, 9, 30),
    )
    .role("admin");
    let (me, her) = (&p.sato, &p.suzuki);
    s.say(
        her,
        0,
        "佐藤さん、おはようございます！ミナト様との打ち合わせ、明日10時から30分後ろ倒しできますか？先方の伊藤さんから相談がありました🙏",
    );
    s.say(me, 12, "おはようございます。10:30開始で大丈夫です！");
    s.say(
        her,
        3,
        "ありがとうございます、先方に返信しておきます。議事録テンプレートも更新しておきました📝",
    );
    let q = s.say(
        me,
        120,
        "見積もりのドラフト、共有フォルダに置きました。工数は CSV取込 5人日、画面改修 3人日で見ています。",
    );
    let quoted = s.quote(q);
    s.say(
        her,
        45,
        &format!(
            "{quoted}\n画面改修はデザイン確認込みですか？田中さんのレビュー時間も入れておきたいです。"
        ),
    );
    s.say(
        me,
        8,
        "込みではないので +1人日 にします。ご指摘ありがとうございます！",
    );
    s.day(&p.cal, 2, 17, 50);
    s.say(
        her,
        0,
        "今日もお疲れさまでした〜🍵 見積もり、先方OKでした！",
    );
    s.say(me, 20, "よかった！🎉 キックオフの日程を決めましょう");
    s.done()
}

fn direct_emily(p: &People) -> Room {
    let mut s = Script::new(
        281_000_103,
        "Emily Carter",
        RoomType::Direct,
        "",
        p.cal.at(1, 16, 0),
    )
    .role("admin");
    let (me, emily) = (&p.sato, &p.emily);
    s.say(
        emily,
        0,
        &format!(
            "Hi Kenichi! Quick one: could you share the API spec for the shipment webhook before our call on {}? 🙂",
            p.cal.weekday_en(4)
        ),
    );
    s.say(
        me,
        25,
        "Hi Emily, sure. I'll send the OpenAPI file tomorrow morning (JST). Rate limits are documented in section 4.",
    );
    s.say(
        emily,
        6,
        "Perfect, thanks. Also, is 9am Pacific OK for you? I know that's 1am in Tokyo 😅",
    );
    s.say(
        me,
        14,
        &format!(
            "Ha, that's a bit early for me. Could we do 5pm Pacific (9am JST {})?",
            p.cal.weekday_en(4)
        ),
    );
    s.say(emily, 3, "Works for me. Sending the invite now 👍");
    s.day(&p.cal, 4, 9, 32);
    s.say(
        me,
        0,
        "Thanks for the call! Summary: 1) webhook retries with exponential backoff, 2) idempotency key per shipment, 3) pilot with 2 warehouses in July.",
    );
    s.say(
        emily,
        40,
        "Great summary. One correction: it's 3 warehouses (Oakland was added). ありがとう！",
    );
    s.done()
}

fn direct_ito(p: &People) -> Room {
    let mut s = Script::new(
        281_000_104,
        "伊藤 大輔（ミナトロジスティクス）",
        RoomType::Direct,
        "",
        p.cal.at(3, 13, 0),
    )
    .role("admin");
    let (me, ito) = (&p.sato, &p.ito);
    s.say(
        ito,
        0,
        "佐藤様\nいつもお世話になっております。ミナトロジスティクスの伊藤です。\n先日のお見積もりの件、社内稟議が通りましたのでご連絡いたします。",
    );
    s.say(
        me,
        18,
        "伊藤様\nご連絡ありがとうございます！承知いたしました。\nキックオフの候補日を3つほどお送りしますので、ご都合をお聞かせください。",
    );
    s.say(
        me,
        2,
        &format!(
            "・{} 14:00〜\n・{} 10:00〜\n・{} 16:00〜",
            p.cal.date_weekday(5),
            p.cal.date_weekday(6),
            p.cal.date_weekday(7)
        ),
    );
    s.say(
        ito,
        35,
        &format!(
            "{} 10:00〜でお願いいたします。会議室は弊社の3階をご用意します。",
            p.cal.date_weekday(6)
        ),
    );
    s.say(
        me,
        4,
        "かしこまりました。当日は鈴木と2名で伺います。よろしくお願いいたします🙇",
    );
    s.done()
}

/// The room with more than 100 messages: five people's morning plans and daily reports
/// over two weeks, with a few replies.
fn daily_reports(p: &People) -> Room {
    let mut s = Script::new(
        281_000_105,
        "開発チーム 日報 / Daily reports",
        RoomType::Group,
        "[info][title]このチャットについて[/title]朝10時までに今日の予定を、18時までに日報を投稿してください。\nPlease post your plan for the day by 10am and your daily report by 6pm JST.[/info]",
        p.cal.at(0, 9, 0),
    )
    .role("admin");
    s.say(
        &p.sato,
        0,
        "[dtext:chatroom_groupchat_created]\n[dtext:chatroom_chatname_is]開発チーム 日報 / Daily reports[dtext:chatroom_set]\n\n[dtext:chatroom_member_is][piconname:1001002][piconname:1001004][piconname:1001007][piconname:1001008][dtext:chatroom_added]",
    );
    let done_ja = [
        "ミナト様 CSV取込のパーサー実装",
        "サクラ様 月次レポートの集計SQL修正",
        "配送ステータス画面のレビュー対応",
        "CIのキャッシュ設定見直し（ビルド 12分→7分）",
        "問い合わせ #482 の調査（タイムゾーンのずれ）",
        "APIクライアントのリトライ処理追加",
        "ステージング環境のDBマイグレーション",
        "E2Eテストの不安定なケースを修正",
        "請求書PDFのレイアウト調整",
        "顧客向け操作マニュアルの更新",
        "アラートの閾値チューニング",
        "ログのJSON化とCloudWatchのダッシュボード作成",
    ];
    let next_ja = [
        "CSV取込のエラー行レポート",
        "レポートのグラフ表示",
        "レビュー指摘の残り2件",
        "依存ライブラリの更新",
        "問い合わせ #482 の修正リリース",
        "負荷試験の準備",
        "本番リリース手順書の作成",
        "デザインレビュー",
    ];
    let blockers = [
        "特になし",
        "特になし🙆",
        "ステージングのDBが時々遅いです🐢",
        "先方からのサンプルCSV待ち",
        "特になし",
        "レビューお願いします🙏",
    ];
    let done_en = [
        "Implemented retry with backoff in the API client",
        "Fixed flaky E2E test around date pickers",
        "Reviewed Sato-san's PR on CSV import",
        "Wrote migration for the shipments table",
        "Pairing with Watanabe-san on support ticket #490",
        "Benchmarked the report query (p95 1.8s → 420ms 🚀)",
    ];
    let members = [&p.sato, &p.suzuki, &p.tanaka, &p.daniel, &p.watanabe];
    for workday in 0..WORKDAYS {
        let date = p.cal.date_weekday(workday);
        s.day(&p.cal, workday, 9, 30);
        for (i, who) in members.iter().enumerate() {
            let k = workday * 7 + i * 3;
            let body = if who.account_id == p.daniel.account_id {
                format!("Morning! Plan for today: {}", next_ja[k % next_ja.len()])
            } else {
                format!(
                    "おはようございます。今日は「{}」を進めます💪",
                    next_ja[k % next_ja.len()]
                )
            };
            s.say(who, 2 + (k % 4) as i64, &body);
        }
        s.day(&p.cal, workday, 17, 20);
        for (i, who) in members.iter().enumerate() {
            let k = workday * 7 + i * 3;
            let body = if who.account_id == p.daniel.account_id {
                format!(
                    "Daily report {date}\nDone:\n- {}\nNext:\n- {}\nBlockers: {}",
                    done_en[k % done_en.len()],
                    next_ja[(k + 1) % next_ja.len()],
                    if k.is_multiple_of(4) {
                        "waiting for review on PR #211 🙏"
                    } else {
                        "none"
                    }
                )
            } else {
                format!(
                    "【日報】{date}\n■ 今日やったこと\n・{}\n・{}\n■ 明日やること\n・{}\n■ 困っていること\n{}",
                    done_ja[k % done_ja.len()],
                    done_ja[(k + 5) % done_ja.len()],
                    next_ja[k % next_ja.len()],
                    blockers[k % blockers.len()]
                )
            };
            let posted = s.say(who, 4 + (k % 9) as i64, &body);
            // Now and then the lead answers a report.
            if (workday + i) % 6 == 0 && who.account_id != p.sato.account_id {
                let text = if who.account_id == p.daniel.account_id {
                    "Thanks Daniel! I'll review #211 tomorrow morning 👍"
                } else {
                    "お疲れさまです！困っている点、明日の朝会で一緒に見ましょう🙌"
                };
                s.reply(&p.sato, 6, posted, text);
            }
        }
    }
    s.done()
}

fn minato_project(p: &People) -> Room {
    let mut s = Script::new(
        281_000_106,
        "【ミナトロジスティクス様】配送管理システム導入",
        RoomType::Group,
        "ミナトロジスティクス様と株式会社ニシカゼの導入プロジェクト用チャットです。\n定例：週1回 10:30〜",
        p.cal.at(6, 11, 0),
    );
    s.say(
        &p.ito,
        0,
        "皆さま、本日はキックオフありがとうございました。ミナトロジスティクスの伊藤です。今後ともよろしくお願いいたします。",
    );
    s.say(
        &p.suzuki,
        10,
        &format!(
            "[To:1001006]伊藤様\nこちらこそありがとうございました！議事録を共有いたします。\n[info][title]キックオフ議事録（{}）[/title]・本番稼働目標：3か月後\n・CSV取込は現行の出荷データ形式（Shift_JIS）に対応\n・週次定例：毎週 10:30〜\n・次回までの宿題：サンプルCSVのご提供（伊藤様）[/info]",
            p.cal.date(6)
        ),
    );
    s.day(&p.cal, 7, 10, 15);
    let csv = s.say(
        &p.ito,
        0,
        "サンプルCSVをお送りします。出荷データ_直近1か月.csv（約1.2万行）です。文字コードは Shift_JIS です。",
    );
    s.reply(
        &p.sato,
        25,
        csv,
        "ありがとうございます！確認しました。全角スペースを含む住所が一部あるので、取込時に正規化します。",
    );
    s.say(
        &p.ito,
        40,
        "[To:1001001]佐藤様\n承知しました。ちなみに、お届け先の電話番号はハイフンあり・なしが混在しています…😓",
    );
    let reply = s.say(
        &p.sato,
        15,
        "[To:1001006]伊藤様\n両方に対応しますのでご安心ください。取込後はハイフンなしに統一します。",
    );
    s.edit(
        reply,
        3,
        "[To:1001006]伊藤様\n両方に対応しますのでご安心ください。取込後はハイフンなしで保存し、画面ではハイフン付きで表示します。",
    );
    s.day(&p.cal, 9, 10, 30);
    s.say(
        &p.suzuki,
        0,
        &format!(
            "[info][title]進捗報告（{}）[/title]・CSV取込：実装完了、テスト中（進捗 80%）\n・配送ステータス画面：デザイン確定\n・リスク：特になし[/info]",
            p.cal.date(9)
        ),
    );
    s.say(
        &p.ito,
        30,
        "ご報告ありがとうございます。順調で安心しました👏",
    );
    s.say(
        &p.sato,
        20,
        &format!(
            "[To:1001006]伊藤様\n受入テスト用に、直近1か月分の出荷データを{}までにご提供いただけますと幸いです。個人情報はマスキング済みのもので構いません。",
            p.cal.ahead_weekday(3)
        ),
    );
    s.say(
        &p.ito,
        25,
        "[To:1001001]佐藤様\n承知しました、社内で確認します。ところで、配送ステータス画面は次回の定例で実際の画面を見せていただけますか？",
    );
    s.done()
}

fn sakura_support(p: &People) -> Room {
    let mut s = Script::new(
        281_000_107,
        "【サクラ製作所様】保守サポート",
        RoomType::Group,
        "サクラ製作所様 生産管理システムの保守窓口です。緊急時は 03-0000-0000 までお電話ください。",
        p.cal.at(1, 9, 0),
    );
    let incident = s.say(
        &p.yamamoto,
        35,
        "お世話になっております。サクラ製作所の山本です。\n今朝から月次レポートの画面がタイムアウトするようになりました。至急確認いただけますでしょうか。",
    );
    s.reply(
        &p.watanabe,
        7,
        incident,
        "ご連絡ありがとうございます。すぐに確認いたします。",
    );
    s.say(
        &p.watanabe,
        25,
        &format!(
            "[info][title]障害報告（第1報）[/title]発生時刻：{} 08:50頃\n影響：月次レポート画面の表示不可\n原因：集計クエリの実行計画の変化（調査中）\n対応：インデックスの追加を検討中[/info]",
            p.cal.date(1)
        ),
    );
    s.say(
        &p.sato,
        40,
        "[To:1001009]山本様\nインデックスを追加し、画面が表示されることを確認しました。お手数ですがご確認いただけますか？",
    );
    s.say(
        &p.yamamoto,
        10,
        "表示されました！迅速なご対応ありがとうございます🙇‍♂️",
    );
    s.say(
        &p.watanabe,
        60,
        "[info][title]障害報告（最終報）[/title]原因：データ量の増加により集計クエリがフルスキャンになっていた\n恒久対応：インデックス追加済み、クエリの監視アラートを設定\n再発防止：月次でスロークエリを確認します[/info]",
    );
    s.day(&p.cal, 8, 14, 0);
    let question = s.say(
        &p.yamamoto,
        0,
        "別件ですが、CSV出力の日付形式を「2025/06/02」から「2025-06-02」に変更することは可能でしょうか？",
    );
    let quoted = s.quote(question);
    s.say(
        &p.watanabe,
        50,
        &format!(
            "{quoted}\n可能です。設定画面から切り替えられるようにいたします。来週のリリースに含めます📦"
        ),
    );
    s.done()
}

fn partnership(p: &People) -> Room {
    let mut s = Script::new(
        281_000_108,
        "Acme Pacific × Nishikaze Partnership",
        RoomType::Group,
        "Shared room for the US pilot. Time zones: JST (UTC+9) and PT (UTC-7). Weekly sync at 9am JST.",
        p.cal.at(4, 10, 0),
    );
    s.say(
        &p.emily,
        0,
        "Welcome everyone! This room is for the pilot with our Oakland, Reno and Fresno warehouses 📦",
    );
    s.say(
        &p.takahashi,
        30,
        "Thanks Emily! I'm Shota from the sales team. Let me know if you need anything on the contract side.",
    );
    s.day(&p.cal, 5, 9, 40);
    let q = s.say(
        &p.emily,
        0,
        "[To:1001008]Daniel Are shipment events delivered in order, or should we sort them by timestamp?",
    );
    s.reply(
        &p.daniel,
        45,
        q,
        "Good question. Events for one shipment are in order; across shipments there is no global order. Please de-duplicate by event_id 🙏",
    );
    s.say(&p.emily, 20, "Got it. We'll key on event_id. 👍");
    s.day(&p.cal, 6, 11, 0);
    s.say(
        &p.sato,
        0,
        &format!(
            "[info][title]Pilot timeline[/title]{}: sandbox access\n{}: pilot starts (3 warehouses)\n{}: review and go/no-go[/info]",
            p.cal.ahead_en(17),
            p.cal.ahead_en(31),
            p.cal.ahead_en(61)
        ),
    );
    let typo = s.say(&p.takahashi, 15, "I'll send the updated NDA by tomorow.");
    s.edit(typo, 2, "I'll send the updated NDA by tomorrow. 📄");
    s.say(
        &p.emily,
        90,
        "Received, thanks! Legal will review it this week. Have a good evening everyone 🌉",
    );
    s.done()
}

fn announcements(p: &People) -> Room {
    let mut s = Script::new(
        281_000_109,
        "全社連絡",
        RoomType::Group,
        "全社向けのお知らせ専用です。返信は不要です。",
        p.cal.at(0, 9, 0),
    )
    .role("readonly");
    s.say(
        &p.nakamura,
        0,
        &format!(
            "[info][title]経費精算の締め日について[/title]今月分の経費精算は {} 18:00 締めです。領収書の画像添付をお忘れなく。[/info]",
            p.cal.date_weekday(4)
        ),
    );
    s.day(&p.cal, 2, 10, 0);
    s.say(
        &p.suzuki,
        0,
        "[info][title]オフィス移転のお知らせ[/title]再来月より新オフィス（渋谷区神南）に移転します。\n引越し作業の日程は追ってご連絡します🏢[/info]",
    );
    s.day(&p.cal, 5, 13, 0);
    s.say(
        &p.nakamura,
        0,
        "[info][title]健康診断のご案内[/title]今年の健康診断の予約受付を始めました。予約フォームから日時を選んでください。[/info]",
    );
    s.day(&p.cal, 7, 9, 15);
    s.say(
        &p.sato,
        0,
        "[info][title]Welcome Daniel![/title]エンジニアの Daniel Kim さんが入社しました🎉 Please say hi! [picon:1001008][/info]",
    );
    s.done()
}

fn design_review(p: &People) -> Room {
    let mut s = Script::new(
        281_000_110,
        "デザインレビュー",
        RoomType::Group,
        "画面デザインのレビュー依頼はこちらへ。Figma のリンクを添えてください。",
        p.cal.at(4, 11, 0),
    );
    let request = s.say(
        &p.tanaka,
        0,
        "配送ステータス画面のデザイン案です！2案あります🎨\nA案：タイムライン表示\nB案：テーブル表示\nご意見ください。",
    );
    s.reply(
        &p.suzuki,
        30,
        request,
        "A案が分かりやすいです！ただ件数が多いとスクロールが長くなりそうなので、折りたたみがあると嬉しいです。",
    );
    let daniel = s.say(
        &p.daniel,
        12,
        "I like A too. For accessibility, please check the color contrast of the \"delayed\" badge (orange on white).",
    );
    let quoted = s.quote(daniel);
    s.say(
        &p.tanaka,
        45,
        &format!("{quoted}\nありがとうございます！コントラスト比 4.5:1 以上になるよう調整します。"),
    );
    s.say(
        &p.sato,
        20,
        "A案＋折りたたみで進めましょう。[To:1001004]田中さん、来週水曜までに修正版をお願いできますか？",
    );
    s.say(&p.tanaka, 5, "承知しました！👌");
    s.done()
}

fn accounting(p: &People) -> Room {
    let mut s = Script::new(
        281_000_111,
        "経理・請求",
        RoomType::Group,
        "請求書・支払い関連の連絡用",
        p.cal.at(8, 10, 0),
    );
    s.say(
        &p.nakamura,
        0,
        "[To:1001003]高橋さん\nミナトロジスティクス様の今月分請求書、金額のご確認をお願いします。\n初期費用 1,200,000円（税別）です。",
    );
    s.say(
        &p.takahashi,
        20,
        "確認しました、問題ありません。送付をお願いします🙏",
    );
    s.say(&p.nakamura, 5, "送付しました。支払期日は来月末です。");
    s.day(&p.cal, 9, 15, 0);
    s.say(
        &p.nakamura,
        0,
        "[info][title]入金確認[/title]サクラ製作所様 保守費用（先月分）入金を確認しました。[/info]",
    );
    s.done()
}

fn lunch(p: &People) -> Room {
    let mut s = Script::new(
        281_000_112,
        "雑談・ランチ 🍜",
        RoomType::Group,
        "なんでも雑談。ランチのお誘いもどうぞ！",
        p.cal.at(0, 12, 0),
    );
    s.say(
        &p.watanabe,
        0,
        "今日ランチ行く人〜？🙋‍♀️ 駅前の新しいラーメン屋さん気になってます🍜",
    );
    s.say(&p.takahashi, 3, "行きます！");
    s.say(&p.daniel, 4, "Me too! Is it tonkotsu? 🤤");
    s.say(&p.watanabe, 2, "醤油と塩みたいです！12:10にロビー集合で〜");
    s.day(&p.cal, 6, 15, 30);
    s.say(
        &p.tanaka,
        0,
        "京都のお土産を給湯室に置いてます🍵 八つ橋です、ご自由にどうぞ〜",
    );
    s.say(&p.suzuki, 6, "ありがとうございます！いただきます😋");
    s.say(
        &p.daniel,
        10,
        "First time trying yatsuhashi, it's delicious!",
    );
    s.done()
}

/// 鈴木's own notes.
fn suzuki_my_chat(p: &People) -> Room {
    let mut s = Script::new(
        281_000_201,
        "マイチャット",
        RoomType::My,
        "自分用のメモ",
        p.cal.at(0, 9, 10),
    )
    .role("admin")
    .sticky();
    let me = &p.suzuki;
    s.say(
        me,
        0,
        "今週の営業TODO\n・アオバ商事様 提案書の初稿\n・ヒカリ不動産様 更新契約の見積もり\n・ミナト様 キックオフの議事録テンプレート",
    );
    s.day(&p.cal, 4, 17, 30);
    s.say(
        me,
        0,
        "[info][title]提案のポイント（アオバ商事様）[/title]・紙の受注票をなくしたい\n・営業所ごとに在庫の見え方が違う\n・予算は今期中に決裁[/info]",
    );
    s.day(&p.cal, 9, 9, 15);
    s.say(
        me,
        0,
        &format!(
            "予定：アオバ商事様 デモ（{}）／森様 契約更新の押印確認",
            p.cal.ahead_weekday(2)
        ),
    );
    s.done()
}

/// A prospect's room that only 鈴木 is in (with the prospect's people).
fn aoba_proposal(p: &People) -> Room {
    let mut s = Script::new(
        281_000_202,
        "【アオバ商事様】受注管理システム ご提案",
        RoomType::Group,
        "アオバ商事様への受注管理システムのご提案用チャットです。",
        p.cal.at(2, 10, 0),
    );
    let (me, her) = (&p.suzuki, &p.kobayashi);
    s.say(
        me,
        0,
        "[To:1001011]小林様\nいつもお世話になっております。株式会社ニシカゼの鈴木です。\n先日はお時間をいただきありがとうございました。ご提案用にこちらのチャットを作成しました。",
    );
    s.say(
        her,
        40,
        "鈴木様\nご丁寧にありがとうございます。アオバ商事の小林です。社内の関係者にも共有しておきます。",
    );
    let ask = s.say(
        her,
        5,
        "早速ですが、現在の受注票（紙）のサンプルをお送りします。営業所ごとに書式が少しずつ違う点がご相談したいところです。",
    );
    s.reply(
        me,
        30,
        ask,
        "拝見しました。書式の違いは取込時に吸収できます。共通の項目を整理した一覧を作成してお送りします。",
    );
    s.day(&p.cal, 6, 14, 0);
    let draft = s.say(
        me,
        0,
        &format!(
            "[info][title]ご提案書（初稿）[/title]・受注入力の画面化とFAX受注の取込\n・営業所別の在庫照会\n・導入期間：約3か月\n・概算費用：別紙のとおり\nご確認のほど、よろしくお願いいたします（{}）。[/info]",
            p.cal.date(6)
        ),
    );
    s.edit(
        draft,
        12,
        &format!(
            "[info][title]ご提案書（初稿）[/title]・受注入力の画面化とFAX受注の取込\n・営業所別の在庫照会\n・導入期間：約3か月（段階導入も可）\n・概算費用：別紙のとおり\nご確認のほど、よろしくお願いいたします（{}）。[/info]",
            p.cal.date(6)
        ),
    );
    s.say(
        her,
        90,
        "ありがとうございます。段階導入ができるのは助かります。部長にも見せて、来週までにご連絡します🙏",
    );
    s.day(&p.cal, 9, 11, 0);
    s.say(
        her,
        0,
        &format!(
            "鈴木様\n社内で前向きに検討することになりました。一度、実際の画面を見せていただけますか？候補日は{}の午後です。",
            p.cal.ahead_weekday(2)
        ),
    );
    s.say(
        me,
        20,
        "ありがとうございます！その日の14時からはいかがでしょうか。デモ環境をご用意して伺います。",
    );
    s.done()
}

/// A direct chat of 鈴木 with a long-standing customer.
fn direct_mori(p: &People) -> Room {
    let mut s = Script::new(
        281_000_203,
        "森 拓也（ヒカリ不動産）",
        RoomType::Direct,
        "",
        p.cal.at(3, 11, 30),
    )
    .role("admin");
    let (me, him) = (&p.suzuki, &p.mori);
    s.say(
        him,
        0,
        "鈴木さん、お疲れさまです。ヒカリ不動産の森です。物件管理システムの保守契約、来月で更新ですよね。今年も同じ条件で大丈夫でしょうか？",
    );
    s.say(
        me,
        25,
        "森様、お疲れさまです！はい、来月末で更新です。条件は昨年と同じで、更新のお見積もりを今週中にお送りします。",
    );
    s.say(
        him,
        10,
        "助かります。あと、スマホから空室情報を見られるようにしたいという話が社内で出ていまして…別途ご相談できますか？",
    );
    s.say(
        me,
        15,
        "ぜひ！まずは現状の画面と使い方をお伺いしたいので、30分ほどお打ち合わせの時間をいただけますか？📱",
    );
    s.day(&p.cal, 8, 16, 0);
    s.say(
        me,
        0,
        "お見積もりをお送りしました。ご確認のうえ、押印した注文書をご返送いただけますと幸いです。",
    );
    s.say(him, 45, "受け取りました。来週早々に返送します👍");
    s.done()
}

/// The demo's tasks, files and members: in the customer's rooms, tasks with deadlines
/// (open with a date, open with a time, one done, one overdue) and files; in the design
/// review, the customer's 伊藤 among the members (the company suggestion) and a task and
/// a file of its own. Ids are fixed, so the data is the same for a day.
fn add_tasks_files_members(rooms: &mut [Room], p: &People) {
    let cal = &p.cal;
    let nishikaze = crate::state::default_account().organization_name;
    let customer = DemoData::CUSTOMER_ORGANIZATION;
    let member = |account: &Account, organization: &str, role: &str| Member {
        role: role.to_owned(),
        department: if organization == customer {
            "物流企画部".to_owned()
        } else {
            String::new()
        },
        ..Member::new(account.clone(), organization)
    };
    let message_of = |room: &Room, index: usize| {
        room.messages
            .get(index)
            .map(|m| m.message_id.clone())
            .unwrap_or_default()
    };
    let task = |id: i64, to: &Account, by: &Account, body: &str| Task {
        task_id: id,
        ..Task::new(to.clone(), by.clone(), body)
    };
    let file = |id: i64, by: &Account, name: &str, bytes: &[u8], at: i64| File {
        file_id: id,
        upload_time: at,
        ..File::new(by.clone(), name, bytes.to_vec())
    };
    for room in rooms.iter_mut() {
        match room.room_id {
            281_000_104 => {
                room.tasks.push(
                    task(
                        52_000_004,
                        &p.sato,
                        &p.ito,
                        "電話番号の正規化ルール（ハイフンあり・なし）を文書で共有する",
                    )
                    .due(LimitType::Date, cal.due_date(-2)),
                );
                room.members = vec![
                    member(&p.sato, &nishikaze, "admin"),
                    member(&p.ito, customer, "admin"),
                ];
            }
            281_000_106 => {
                let first = room.messages.first().map_or(0, |m| m.send_time);
                let mut done = task(
                    52_000_001,
                    &p.ito,
                    &p.suzuki,
                    "サンプルCSV（出荷データ）のご提供",
                )
                .due(LimitType::Date, cal.due_date(-2));
                done.status = TaskStatus::Done;
                done.message_id = message_of(room, 1);
                let mut data = task(
                    52_000_002,
                    &p.ito,
                    &p.sato,
                    "受入テスト用の出荷データ（直近1か月分・マスキング済み）のご提供",
                )
                .due(LimitType::Date, cal.due_date(3));
                data.message_id = message_of(room, room.messages.len().saturating_sub(2));
                let demo = task(
                    52_000_003,
                    &p.sato,
                    &p.suzuki,
                    "次回定例で配送ステータス画面の実機デモ",
                )
                .due(LimitType::Time, cal.due_time(2, 10, 30));
                room.tasks.extend([done, data, demo]);
                room.files.push(file(
                    73_000_001,
                    &p.ito,
                    "出荷データ_サンプル.csv",
                    "伝票番号,お届け先,電話番号\n0001,東京都港区芝浦1-1-1,03-1234-5678\n0002,横浜市中区山下町2,0451234567\n".as_bytes(),
                    first + 24 * 3600,
                ));
                room.files.push(file(
                    73_000_002,
                    &p.suzuki,
                    "キックオフ議事録.pdf",
                    b"%PDF-1.4\n% demo minutes of the kickoff\n%%EOF\n",
                    first + 600,
                ));
                room.members = vec![
                    member(&p.sato, &nishikaze, "admin"),
                    member(&p.suzuki, &nishikaze, "admin"),
                    member(&p.ito, customer, "member"),
                ];
            }
            DemoData::SUGGESTED_ROOM_ID => {
                let first = room.messages.first().map_or(0, |m| m.send_time);
                room.tasks.push(
                    task(
                        52_000_005,
                        &p.tanaka,
                        &p.sato,
                        "配送ステータス画面 A案＋折りたたみの修正版",
                    )
                    .due(LimitType::Date, cal.due_date(2)),
                );
                room.files.push(file(
                    73_000_003,
                    &p.tanaka,
                    "delivery-status-A.png",
                    b"\x89PNG\r\n\x1a\n demo image",
                    first,
                ));
                room.members = vec![
                    member(&p.sato, &nishikaze, "admin"),
                    member(&p.suzuki, &nishikaze, "member"),
                    member(&p.tanaka, &nishikaze, "member"),
                    member(&p.daniel, &nishikaze, "member"),
                    member(&p.ito, customer, "readonly"),
                ];
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn demo_data_has_what_the_demo_and_the_tests_need() {
        let data = DemoData::build();
        assert!(
            data.rooms[4].messages.len() > 100,
            "the daily reports room: {}",
            data.rooms[4].messages.len()
        );
        assert_eq!(data.rooms.len(), 12);
        // The second account: three rooms of its own, none of the owner's ids, and the
        // shared room is one of the owner's.
        assert_eq!(data.second_rooms.len(), 3);
        let second = data.second_account_setup();
        assert_eq!(second.account.account_id, DemoData::SECOND_ACCOUNT_ID);
        assert_eq!(second.shared_rooms, vec![DemoData::SHARED_ROOM_ID]);
        assert!(
            data.rooms
                .iter()
                .any(|r| r.room_id == DemoData::SHARED_ROOM_ID)
        );
        assert!(data.second_rooms.iter().all(|r| {
            !data.rooms.iter().any(|o| o.room_id == r.room_id) && r.messages.len() >= 3
        }));
        let types: HashSet<RoomType> = data.rooms.iter().map(|r| r.room_type).collect();
        assert_eq!(types.len(), 3);
        assert!(data.rooms.iter().any(|r| r.messages.len() > 100));
        let bodies: String = data
            .rooms
            .iter()
            .flat_map(|r| r.messages.iter().map(|m| m.body.as_str()))
            .collect();
        for markup in [
            "[To:", "[rp aid=", "[qt]", "[/qt]", "[info]", "[title]", "[dtext:", "[picon:",
        ] {
            assert!(bodies.contains(markup), "{markup}");
        }
        let mut ids = HashSet::new();
        for room in data.rooms.iter().chain(&data.second_rooms) {
            assert!(room.last_update_time > 0);
            let mut previous: Option<u128> = None;
            for m in &room.messages {
                assert_eq!(m.message_id.len(), 19, "{}", m.message_id);
                let id: u128 = m.message_id.parse().unwrap();
                assert!(previous.is_none_or(|p| p < id), "ids grow within a room");
                previous = Some(id);
                assert!(ids.insert(m.message_id.clone()), "ids are unique");
                assert!(m.update_time == 0 || m.update_time > m.send_time);
            }
        }
        assert!(
            data.rooms
                .iter()
                .flat_map(|r| &r.messages)
                .any(|m| m.update_time > 0)
        );
    }

    /// 2026-11-30 10:00 JST, a Monday.
    const MONDAY_MORNING: i64 = 1_796_000_400;

    #[test]
    fn the_history_is_the_last_two_weeks_of_working_hours_in_tokyo() {
        for now in [MONDAY_MORNING, MONDAY_MORNING + 2 * 86_400 + 5 * 3600] {
            let data = DemoData::built_before(now);
            let tokyo = tokyo();
            let today = tokyo.timestamp_opt(now, 0).unwrap().date_naive();
            for room in data.rooms.iter().chain(&data.second_rooms) {
                for m in &room.messages {
                    let at = tokyo.timestamp_opt(m.send_time, 0).unwrap();
                    let days_ago = (today - at.date_naive()).num_days();
                    assert!((1..=14).contains(&days_ago), "{} {at}", room.name);
                    assert!(
                        !matches!(at.weekday(), Weekday::Sat | Weekday::Sun),
                        "{} {at}",
                        room.name
                    );
                    let hm = at.format("%H:%M").to_string();
                    assert!(
                        ("09:00".."18:31").contains(&hm.as_str()),
                        "{} {at}",
                        room.name
                    );
                }
            }
            // The demo company's project room talks in the last seven days.
            let project = data
                .rooms
                .iter()
                .find(|r| r.room_id == 281_000_106)
                .unwrap();
            let recent = project
                .messages
                .iter()
                .filter(|m| m.send_time >= now - 7 * 86_400)
                .count();
            assert!(recent >= 5, "{recent} messages in the last 7 days");
        }
        // Any moment of one day builds the same data.
        let morning = DemoData::built_before(MONDAY_MORNING);
        let evening = DemoData::built_before(MONDAY_MORNING + 10 * 3600);
        let ids = |d: &DemoData| -> Vec<String> {
            d.rooms
                .iter()
                .flat_map(|r| r.messages.iter().map(|m| m.message_id.clone()))
                .collect()
        };
        assert_eq!(ids(&morning), ids(&evening));
        // The dates the messages mention are the days they were sent on.
        let minato = &morning.rooms[5];
        assert!(
            minato.messages[1]
                .body
                .contains("キックオフ議事録（11/24）")
        );
        assert!(
            morning.rooms[4].messages[1..]
                .iter()
                .any(|m| m.body.contains("【日報】11/27(金)"))
        );
    }
}
