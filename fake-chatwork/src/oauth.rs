//! OAuth 2.0 as Chatwork offers it, free of HTTP: registered clients, authorization codes,
//! grants and their access and refresh tokens.
//!
//! What Chatwork documents (developer.chatwork.com, "OAuth 2.0"), and so the fake:
//! - The authorization code grant only, for confidential clients (HTTP Basic client
//!   authentication at the token endpoint), with PKCE (`S256`).
//! - A code lives one minute and works once; presenting a used code again also revokes
//!   what was issued from it (RFC 6749 §4.1.2).
//! - An access token lives 15 minutes; a refresh token 14 days, or until revoked with the
//!   `offline_access` scope. A refresh issues a new refresh token and the old one dies at
//!   once.
//!
//! A *grant* is one consent of one account to one client: the code, and every token
//! issued from it and its refreshes, belong to it. Revoking a grant (the user removes the
//! app, or a code is replayed) kills all of them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::model::{FakeOAuthClient, TokenOutcome, TokenRequestRecord};

/// Chatwork's lifetimes.
pub const CODE_TTL: Duration = Duration::from_secs(60);
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// The scope that keeps a refresh token alive until it is revoked.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The scopes Chatwork knows, with a word for the consent page. The `*.all:*` ones cover
/// the narrower ones of their family (see [`Scopes::allows`]).
pub const KNOWN_SCOPES: [(&str, &str); 20] = [
    ("users.all:read", "自分のアカウント情報の取得"),
    ("users.profile.me:read", "自分のプロフィールの取得"),
    ("users.status.me:read", "自分の未読数・タスク数の取得"),
    ("users.tasks.me:read", "自分のタスクの取得"),
    ("rooms.all:read_write", "チャットの取得と操作"),
    ("rooms.all:read", "チャットの取得"),
    ("rooms.all:write", "チャットの操作"),
    ("rooms:write", "チャットの作成・削除"),
    ("rooms.info:read", "チャットの概要の取得"),
    ("rooms.members:read", "チャットのメンバーの取得"),
    ("rooms.messages:read", "メッセージの取得"),
    ("rooms.messages:write", "メッセージの投稿"),
    ("rooms.tasks:read", "タスクの取得"),
    ("rooms.tasks:write", "タスクの作成"),
    ("rooms.files:read", "ファイルの取得"),
    ("rooms.files:write", "ファイルのアップロード"),
    ("contacts.all:read_write", "コンタクトの取得と操作"),
    ("contacts.all:read", "コンタクトの取得"),
    ("contacts.all:write", "コンタクトの操作"),
    (OFFLINE_ACCESS, "アクセスを継続（ログアウト後も利用）"),
];

/// The scopes of a grant, space-separated as OAuth writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a `scope` parameter; `Err` names the first scope Chatwork does not know, or
    /// is empty when there is none at all.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut scopes: Vec<String> = Vec::new();
        for scope in raw.split_ascii_whitespace() {
            if !KNOWN_SCOPES.iter().any(|(known, _)| *known == scope) {
                return Err(scope.to_owned());
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.is_empty() {
            return Err(String::new());
        }
        Ok(Self(scopes))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether the grant allows what `needed` names, itself or through the `*.all:*`
    /// scope of its family.
    pub fn allows(&self, needed: &str) -> bool {
        let (family, access) = needed.split_once(':').unwrap_or((needed, ""));
        let top = family.split('.').next().unwrap_or(family);
        self.iter().any(|s| {
            s == needed
                || s == format!("{top}.all:{access}")
                || s == format!("{top}.all:read_write")
        })
    }

    fn has(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// A refusal at the token endpoint: the OAuth error code and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: &'static str,
    pub description: &'static str,
}

fn invalid_grant(description: &'static str) -> Refusal {
    Refusal {
        error: "invalid_grant",
        description,
    }
}

/// What a successful token request hands out.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub scope: String,
    pub account_id: i64,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    account_id: i64,
    scopes: Scopes,
    challenge: String,
    expires_ms: u64,
    /// The grant its exchange opened (`Some` once presented by its client).
    grant: Option<u64>,
    used: bool,
}

struct Grant {
    account_id: i64,
    client_id: String,
    scopes: Scopes,
    revoked: bool,
}

struct AccessToken {
    grant: u64,
    expires_ms: u64,
}

struct RefreshToken {
    grant: u64,
    /// `None`: lives until revoked (`offline_access`).
    expires_ms: Option<u64>,
}

/// Every OAuth thing of a fake. Lives in its state, under its lock.
pub(crate) struct OAuth {
    clients: HashMap<String, FakeOAuthClient>,
    codes: HashMap<String, Code>,
    grants: HashMap<u64, Grant>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    next_grant: u64,
    pub code_ttl: Duration,
    pub access_ttl: Duration,
    pub log: Vec<TokenRequestRecord>,
    /// Successful `refresh_token` grants.
    pub refreshes: usize,
    rng: fastrand::Rng,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge of a verifier (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Secrets compared without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl OAuth {
    pub fn new() -> Self {
        Self {
            clients: HashMap::new(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_grant: 1,
            code_ttl: CODE_TTL,
            access_ttl: ACCESS_TOKEN_TTL,
            log: Vec::new(),
            refreshes: 0,
            // Tokens are drawn from an unseeded generator: no two fakes hand out the same.
            rng: fastrand::Rng::new(),
        }
    }

    fn random(&mut self, prefix: &str) -> String {
        let tail: String = (0..40).map(|_| self.rng.alphanumeric()).collect();
        format!("{prefix}{tail}")
    }

    /// Registers a client, or replaces the one with the same id.
    pub fn register(&mut self, client: FakeOAuthClient) {
        self.clients.insert(client.client_id.clone(), client);
    }

    pub fn client(&self, client_id: &str) -> Option<&FakeOAuthClient> {
        self.clients.get(client_id)
    }

    /// Whether `redirect_uri` is one the client registered (exactly).
    pub fn redirect_allowed(&self, client_id: &str, redirect_uri: &str) -> bool {
        self.client(client_id)
            .is_some_and(|c| c.redirect_uris.iter().any(|u| u == redirect_uri))
    }

    /// The client of Basic credentials, when id and secret match.
    pub fn authenticate_client(&self, client_id: &str, secret: &str) -> bool {
        self.client(client_id)
            .is_some_and(|c| same(&c.client_secret, secret))
    }

    /// A code for what the user just allowed.
    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        account_id: i64,
        scopes: Scopes,
        challenge: &str,
        now_ms: u64,
    ) -> String {
        let code = self.random("");
        let expires_ms = now_ms + ms(self.code_ttl);
        self.codes.insert(
            code.clone(),
            Code {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                account_id,
                scopes,
                challenge: challenge.to_owned(),
                expires_ms,
                grant: None,
                used: false,
            },
        );
        code
    }

    fn issue_tokens(&mut self, grant_id: u64, now_ms: u64) -> Issued {
        let grant = &self.grants[&grant_id];
        let (account_id, scope) = (grant.account_id, grant.scopes.to_string());
        let offline = grant.scopes.has(OFFLINE_ACCESS);
        let access_token = self.random("");
        let refresh_token = self.random("");
        self.access.insert(
            access_token.clone(),
            AccessToken {
                grant: grant_id,
                expires_ms: now_ms + ms(self.access_ttl),
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshToken {
                grant: grant_id,
                expires_ms: (!offline).then(|| now_ms + ms(REFRESH_TOKEN_TTL)),
            },
        );
        Issued {
            access_token,
            refresh_token,
            expires_in: self.access_ttl.as_secs(),
            scope,
            account_id,
        }
    }

    /// `grant_type=authorization_code` for an authenticated client.
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now_ms: u64,
    ) -> Result<Issued, Refusal> {
        let Some(stored) = self.codes.get_mut(code) else {
            return Err(invalid_grant("The authorization code is invalid."));
        };
        if stored.client_id != client_id {
            return Err(invalid_grant(
                "The authorization code was issued to another client.",
            ));
        }
        if stored.used {
            // A replayed code: whatever it gave is revoked too.
            if let Some(grant) = stored.grant.and_then(|g| self.grants.get_mut(&g)) {
                grant.revoked = true;
            }
            return Err(invalid_grant("The authorization code was already used."));
        }
        // Presented by its client: it is spent, whatever happens next.
        stored.used = true;
        if now_ms >= stored.expires_ms {
            return Err(invalid_grant("The authorization code has expired."));
        }
        if redirect_uri != Some(stored.redirect_uri.as_str()) {
            return Err(invalid_grant(
                "The redirect_uri does not match the authorization request.",
            ));
        }
        let verified = verifier.is_some_and(|v| {
            verifier_well_formed(v) && same(&s256_challenge(v), &stored.challenge)
        });
        if !verified {
            return Err(invalid_grant("The code_verifier does not match."));
        }
        let grant_id = self.next_grant;
        self.next_grant += 1;
        stored.grant = Some(grant_id);
        let grant = Grant {
            account_id: stored.account_id,
            client_id: client_id.to_owned(),
            scopes: stored.scopes.clone(),
            revoked: false,
        };
        self.grants.insert(grant_id, grant);
        Ok(self.issue_tokens(grant_id, now_ms))
    }

    /// `grant_type=refresh_token` for an authenticated client: the old refresh token dies.
    pub fn refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
        now_ms: u64,
    ) -> Result<Issued, Refusal> {
        let refused = invalid_grant("The refresh token is invalid, expired or revoked.");
        let Some(stored) = self.refresh.get(refresh_token) else {
            return Err(refused);
        };
        let grant_id = stored.grant;
        let live = stored.expires_ms.is_none_or(|end| now_ms < end);
        let Some(grant) = self.grants.get(&grant_id) else {
            return Err(refused);
        };
        if grant.client_id != client_id {
            return Err(refused);
        }
        if grant.revoked || !live {
            return Err(refused);
        }
        self.refresh.remove(refresh_token);
        self.refreshes += 1;
        Ok(self.issue_tokens(grant_id, now_ms))
    }

    /// The account and scopes of a live access token; `Err(true)` when it expired,
    /// `Err(false)` when it is unknown or revoked.
    pub fn access(&self, token: &str, now_ms: u64) -> Result<(i64, Scopes), bool> {
        let stored = self.access.get(token).ok_or(false)?;
        let grant = self.grants.get(&stored.grant).ok_or(false)?;
        if grant.revoked {
            return Err(false);
        }
        if now_ms >= stored.expires_ms {
            return Err(true);
        }
        Ok((grant.account_id, grant.scopes.clone()))
    }

    /// The account an access token was issued for, live or not.
    pub fn account_of_access(&self, token: &str) -> Option<i64> {
        let stored = self.access.get(token)?;
        self.grants.get(&stored.grant).map(|g| g.account_id)
    }

    /// Every access token issued so far expires now.
    pub fn expire_access_tokens(&mut self, now_ms: u64) {
        for token in self.access.values_mut() {
            token.expires_ms = token.expires_ms.min(now_ms);
        }
    }

    /// Every grant of the account is revoked: its access and refresh tokens die.
    pub fn revoke_account(&mut self, account_id: i64) {
        for grant in self.grants.values_mut() {
            if grant.account_id == account_id {
                grant.revoked = true;
            }
        }
    }

    pub fn record(
        &mut self,
        grant_type: &str,
        client_id: Option<&str>,
        outcome: Result<i64, &str>,
    ) {
        let (account_id, outcome) = match outcome {
            Ok(id) => (Some(id), TokenOutcome::Ok),
            Err(code) => (None, TokenOutcome::Error(code.to_owned())),
        };
        self.log.push(TokenRequestRecord {
            grant_type: grant_type.to_owned(),
            client_id: client_id.map(str::to_owned),
            account_id,
            outcome,
            at: SystemTime::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s256_challenge_matches_rfc_7636s_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn scopes_are_known_and_a_family_scope_covers_its_members() {
        let scopes = Scopes::parse("rooms.all:read users.profile.me:read").unwrap();
        assert!(scopes.allows("rooms.messages:read"));
        assert!(scopes.allows("rooms.info:read"));
        assert!(scopes.allows("users.profile.me:read"));
        assert!(!scopes.allows("rooms.messages:write"));
        assert!(
            !Scopes::parse("rooms.info:read")
                .unwrap()
                .allows("rooms.messages:read")
        );
        assert!(
            Scopes::parse("rooms.all:read_write")
                .unwrap()
                .allows("rooms.messages:write")
        );
        assert_eq!(
            Scopes::parse("rooms.everything").unwrap_err(),
            "rooms.everything"
        );
        assert_eq!(Scopes::parse("  ").unwrap_err(), "");
    }
}
