//! SASL OAUTHBEARER (RFC 7628, KIP-255, KIP-342): the client sends a
//! bearer token, with optional SASL extensions, in one message; the broker
//! answers with nothing when it accepts the token, or with a JSON error as
//! a challenge, which the client acknowledges with a lone 0x01 before the
//! broker fails the authentication.
//!
//! Tokens come from an [`OAuthBearerTokenProvider`] the application
//! supplies (its identity provider), or, for development, from unsecured
//! JWTs built from `sasl.oauthbearer.config` as librdkafka builds them
//! (`enable.sasl.oauthbearer.unsecure.jwt=true`). A [`TokenCache`] keeps
//! the current token and asks for a new one once it passes its refresh
//! point, computed with Kafka's `sasl.login.refresh.*` rules, so no
//! connection or re-authentication presents a token near its expiry.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;

use super::{Mechanism, Secret, Step};

/// A bearer token and what the client needs to know about it.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthBearerToken {
    /// The token itself (a JWT, usually).
    pub value: Secret,
    /// When it expires.
    pub expires_at: SystemTime,
    /// Whom it names, for errors and logs.
    pub principal: String,
    /// SASL extensions sent with the token (KIP-342): names are letters
    /// only and not `auth`; values are printable ASCII.
    pub extensions: Vec<(String, String)>,
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at)
            .field("principal", &self.principal)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// The future a token provider returns.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<OAuthBearerToken, String>> + Send + 'a>>;

/// Where OAUTHBEARER tokens come from: asked when there is no token yet
/// and when the current one passes its refresh point. An error keeps the
/// current token while it is still valid (asking again 10 s later);
/// without one, authentication fails with the provider's message.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use herald::sasl::{OAuthBearerToken, OAuthBearerTokenProvider, Secret, TokenFuture};
///
/// # async fn fetch_token_somehow() -> Result<(String, SystemTime), std::io::Error> {
/// #     Ok(("eyJ.e30.".into(), SystemTime::now() + Duration::from_secs(3600)))
/// # }
/// struct FromMyIdp;
/// impl OAuthBearerTokenProvider for FromMyIdp {
///     fn token(&self) -> TokenFuture<'_> {
///         Box::pin(async {
///             let (jwt, expires_at) = fetch_token_somehow().await.map_err(|e| e.to_string())?;
///             Ok(OAuthBearerToken { value: Secret::new(jwt), expires_at, principal: "svc-orders".into(), extensions: vec![] })
///         })
///     }
/// }
///
/// # fn main() -> Result<(), herald::Error> {
/// let mut config = herald::ProducerConfig::new("broker1:9094");
/// config.set("security.protocol", "SASL_SSL")?.set("sasl.mechanism", "OAUTHBEARER")?;
/// config.sasl.oauthbearer_token_provider(Arc::new(FromMyIdp));
/// let producer = herald::Producer::new(config)?; // validates: a missing provider is named
/// # Ok(()) }
/// ```
pub trait OAuthBearerTokenProvider: Send + Sync {
    /// A fresh token.
    fn token(&self) -> TokenFuture<'_>;
}

/// Kafka's `sasl.login.refresh.*` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshSettings {
    /// `sasl.login.refresh.window.factor` (0.8): refresh this far into
    /// the token's lifetime.
    pub window_factor: f64,
    /// `sasl.login.refresh.window.jitter` (0.05): plus up to this much,
    /// at random, so clients do not refresh together.
    pub window_jitter: f64,
    /// `sasl.login.refresh.min.period.seconds` (60): not sooner than this
    /// after the last refresh.
    pub min_period: Duration,
    /// `sasl.login.refresh.buffer.seconds` (300): at least this long
    /// before expiry.
    pub buffer: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        RefreshSettings {
            window_factor: 0.8,
            window_jitter: 0.05,
            min_period: Duration::from_secs(60),
            buffer: Duration::from_secs(300),
        }
    }
}

impl RefreshSettings {
    /// When to refresh a token obtained at `start` that expires at
    /// `expiry`, `jitter01` being a uniform draw in [0, 1). Kafka's rule:
    /// a point `factor + jitter` into the lifetime, moved earlier to keep
    /// the buffer before expiry, or later to keep the minimum period, as
    /// long as the token lives long enough for both; a short-lived token
    /// ignores them.
    pub(crate) fn refresh_at(
        &self,
        start: SystemTime,
        expiry: SystemTime,
        jitter01: f64,
    ) -> SystemTime {
        let lifetime = expiry.duration_since(start).unwrap_or_default();
        let pct = self.window_factor + self.window_jitter * jitter01;
        let proposed = start + lifetime.mul_f64(pct.clamp(0.0, 1.0));
        if start + self.min_period + self.buffer > expiry {
            return proposed;
        }
        let latest = expiry - self.buffer;
        let earliest = start + self.min_period;
        if proposed > latest {
            latest
        } else if proposed < earliest {
            earliest
        } else {
            proposed
        }
    }
}

/// A provider failure leaves the current token in use and is retried
/// after this long, as Kafka's refreshing login does.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

struct Cached {
    token: OAuthBearerToken,
    refresh_at: SystemTime,
}

#[derive(Default)]
struct CacheState {
    current: Option<Cached>,
    /// No new request to the provider before this (after a failure).
    quiet_until: Option<SystemTime>,
}

/// The token in use, refreshed from the provider past its refresh point;
/// shared by every connection of a producer or admin client.
pub struct TokenCache {
    provider: std::sync::Arc<dyn OAuthBearerTokenProvider>,
    settings: RefreshSettings,
    state: Mutex<CacheState>,
    /// One refresh at a time: connections opening together wait for the
    /// same answer instead of each asking the provider.
    refreshing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the cache should do at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Use the current token.
    Current,
    /// Ask the provider; the current token, if any, is still valid.
    Refresh { have_valid: bool },
}

impl CacheState {
    fn need(&self, now: SystemTime) -> Need {
        let quiet = self.quiet_until.is_some_and(|q| now < q);
        match &self.current {
            Some(c) if now < c.refresh_at => Need::Current,
            Some(c) if now < c.token.expires_at && quiet => Need::Current,
            Some(c) => Need::Refresh {
                have_valid: now < c.token.expires_at,
            },
            None => Need::Refresh { have_valid: false },
        }
    }
}

impl TokenCache {
    /// A cache over `provider`, refreshing by `settings`.
    pub fn new(
        provider: std::sync::Arc<dyn OAuthBearerTokenProvider>,
        settings: RefreshSettings,
    ) -> TokenCache {
        TokenCache {
            provider,
            settings,
            state: Mutex::new(CacheState::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// A token fit to present now.
    pub(crate) async fn token(&self) -> Result<OAuthBearerToken, String> {
        if let Some(t) = self.current_if_fresh(SystemTime::now()) {
            return Ok(t);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        let now = SystemTime::now();
        let have_valid = match self.state.lock().expect("not poisoned").need(now) {
            Need::Current => return Ok(self.current().expect("current")),
            Need::Refresh { have_valid } => have_valid,
        };
        // A token the broker would refuse counts as a failure to refresh.
        let fetched = super::contained("the token provider", self.provider.token())
            .await
            .and_then(|token| {
                check_token(&token)?;
                if token.expires_at <= SystemTime::now() {
                    return Err("the token provider gave a token that has already expired".into());
                }
                Ok(token)
            });
        match fetched {
            Ok(token) => {
                let refresh_at = self.settings.refresh_at(
                    SystemTime::now(),
                    token.expires_at,
                    rand::random::<f64>(),
                );
                let mut st = self.state.lock().expect("not poisoned");
                st.current = Some(Cached {
                    token: token.clone(),
                    refresh_at,
                });
                st.quiet_until = None;
                Ok(token)
            }
            Err(e) if have_valid => {
                tracing::warn!(error = %e, "OAUTHBEARER token refresh failed; the current token stays in use");
                let mut st = self.state.lock().expect("not poisoned");
                st.quiet_until = Some(SystemTime::now() + RETRY_AFTER_FAILURE);
                Ok(st.current.as_ref().expect("valid").token.clone())
            }
            Err(e) => Err(format!("the token provider failed: {e}")),
        }
    }

    fn current_if_fresh(&self, now: SystemTime) -> Option<OAuthBearerToken> {
        let st = self.state.lock().expect("not poisoned");
        (st.need(now) == Need::Current).then(|| st.current.as_ref().expect("current").token.clone())
    }

    fn current(&self) -> Option<OAuthBearerToken> {
        let st = self.state.lock().expect("not poisoned");
        st.current.as_ref().map(|c| c.token.clone())
    }
}

/// Refuse what a broker would refuse, with the reason, before sending.
fn check_token(t: &OAuthBearerToken) -> Result<(), String> {
    // RFC 6750's b64token.
    let v = t.value.expose();
    let body = v.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err("the token is empty or has characters a bearer token cannot have".into());
    }
    for (i, (k, val)) in t.extensions.iter().enumerate() {
        if t.extensions[..i].iter().any(|(other, _)| other == k) {
            return Err(format!("SASL extension `{k}` is given twice"));
        }
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) || k == "auth" {
            return Err(format!(
                "SASL extension name `{k}` is not allowed (letters only, not `auth`)"
            ));
        }
        if val.is_empty()
            || !val
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
        {
            return Err(format!(
                "SASL extension `{k}` has an empty value or one with characters outside printable ASCII"
            ));
        }
    }
    Ok(())
}

/// The client's first message: GS2 header, `auth=Bearer <token>`, the
/// extensions (sorted by name), each pair ended by 0x01, and a final 0x01.
pub(crate) fn client_first_message(token: &OAuthBearerToken) -> Vec<u8> {
    let mut m = b"n,,\x01auth=Bearer ".to_vec();
    m.extend_from_slice(token.value.expose().as_bytes());
    m.push(1);
    let mut ext: Vec<&(String, String)> = token.extensions.iter().collect();
    ext.sort();
    for (k, v) in ext {
        m.extend_from_slice(k.as_bytes());
        m.push(b'=');
        m.extend_from_slice(v.as_bytes());
        m.push(1);
    }
    m.push(1);
    m
}

enum State {
    Start(Vec<u8>),
    Sent,
    /// The broker sent an error; it will fail the authentication once
    /// the client acknowledges.
    Acknowledged,
}

pub(crate) struct OAuthBearer {
    state: State,
}

impl OAuthBearer {
    pub(crate) fn new(token: &OAuthBearerToken) -> OAuthBearer {
        OAuthBearer {
            state: State::Start(client_first_message(token)),
        }
    }
}

impl Mechanism for OAuthBearer {
    fn step(&mut self, from_server: &[u8]) -> Result<Step, String> {
        match std::mem::replace(&mut self.state, State::Acknowledged) {
            State::Start(m) => {
                self.state = State::Sent;
                Ok(Step::Send(m))
            }
            State::Sent if from_server.is_empty() => Ok(Step::Done),
            // An error challenge: acknowledge it, the broker then answers
            // SASL_AUTHENTICATION_FAILED with the same JSON.
            State::Sent => Ok(Step::Send(vec![1])),
            State::Acknowledged => Err(format!(
                "the broker refused the token: {}",
                String::from_utf8_lossy(from_server)
            )),
        }
    }
}

/// Unsecured JWTs (`alg: none`) from `sasl.oauthbearer.config`, as
/// librdkafka builds them with `enable.sasl.oauthbearer.unsecure.jwt`:
/// for brokers that accept them (development and tests), never production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredJwt {
    principal: String,
    principal_claim: String,
    scope_claim: String,
    scope: Vec<String>,
    life: Duration,
    extensions: Vec<(String, String)>,
}

impl UnsecuredJwt {
    /// Parse librdkafka's space-separated `key=value` settings: `principal`
    /// (required), `principalClaimName` (`sub`), `scopeClaimName`
    /// (`scope`), `scope` (comma-separated), `lifeSeconds` (3600) and
    /// `extension_NAME`. The error names the bad setting.
    pub fn parse(config: &str) -> Result<UnsecuredJwt, String> {
        let mut jwt = UnsecuredJwt {
            principal: String::new(),
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            scope: Vec::new(),
            life: Duration::from_secs(3600),
            extensions: Vec::new(),
        };
        for part in config.split_whitespace() {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            if v.contains('"') || v.contains('\\') {
                return Err(format!("`{k}` has a quote or backslash"));
            }
            match k {
                "principal" => jwt.principal = v.into(),
                "principalClaimName" => jwt.principal_claim = v.into(),
                "scopeClaimName" => jwt.scope_claim = v.into(),
                "scope" => {
                    for s in v.split(',').filter(|s| !s.is_empty()) {
                        if !jwt.scope.iter().any(|x| x == s) {
                            jwt.scope.push(s.into());
                        }
                    }
                }
                "lifeSeconds" => {
                    let secs: u64 = v
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("lifeSeconds `{v}` is not a positive number"))?;
                    jwt.life = Duration::from_secs(secs);
                }
                other => match other.strip_prefix("extension_") {
                    Some(name) => jwt.extensions.push((name.into(), v.into())),
                    None => return Err(format!("unknown setting `{other}`")),
                },
            }
        }
        if jwt.principal.is_empty() {
            return Err("`principal=` is required".into());
        }
        Ok(jwt)
    }

    /// The token, issued at `now` (milliseconds since the epoch).
    pub(crate) fn token_at(&self, now_ms: u64) -> OAuthBearerToken {
        let iat = now_ms as f64 / 1000.0;
        let exp = iat + self.life.as_secs_f64();
        let mut claims = format!(
            "{{\"{}\":\"{}\",\"iat\":{iat:.3},\"exp\":{exp:.3}",
            self.principal_claim, self.principal
        );
        if !self.scope.is_empty() {
            let scope: Vec<String> = self.scope.iter().map(|s| format!("\"{s}\"")).collect();
            claims.push_str(&format!(",\"{}\":[{}]", self.scope_claim, scope.join(",")));
        }
        claims.push('}');
        let header = B64URL.encode(br#"{"alg":"none"}"#);
        OAuthBearerToken {
            value: Secret::new(format!("{header}.{}.", B64URL.encode(claims))),
            expires_at: UNIX_EPOCH + Duration::from_millis(now_ms) + self.life,
            principal: self.principal.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

impl OAuthBearerTokenProvider for UnsecuredJwt {
    fn token(&self) -> TokenFuture<'_> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let t = self.token_at(now);
        Box::pin(async move { Ok(t) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn token(v: &str, exp: SystemTime) -> OAuthBearerToken {
        OAuthBearerToken {
            value: Secret::new(v),
            expires_at: exp,
            principal: "alice".into(),
            extensions: vec![],
        }
    }

    #[test]
    fn first_message_as_kafka_reads_it() {
        let mut t = token("eyJ.abc.", UNIX_EPOCH);
        assert_eq!(
            client_first_message(&t),
            b"n,,\x01auth=Bearer eyJ.abc.\x01\x01".to_vec()
        );
        t.extensions = vec![
            ("traceId".into(), "x 1".into()),
            ("logicalCluster".into(), "lkc-1".into()),
        ];
        assert_eq!(
            client_first_message(&t),
            b"n,,\x01auth=Bearer eyJ.abc.\x01logicalCluster=lkc-1\x01traceId=x 1\x01\x01".to_vec()
        );
    }

    #[test]
    fn accepted_with_an_empty_answer_refused_after_acknowledging_the_error() {
        let t = token("tok", UNIX_EPOCH);
        let mut m = OAuthBearer::new(&t);
        assert!(matches!(m.step(b"").unwrap(), Step::Send(_)));
        assert_eq!(m.step(b"").unwrap(), Step::Done);
        let mut m = OAuthBearer::new(&t);
        m.step(b"").unwrap();
        // RFC 7628 3.2.2: the error comes as a challenge, answered by 0x01.
        assert_eq!(
            m.step(br#"{"status":"invalid_token"}"#).unwrap(),
            Step::Send(vec![1])
        );
    }

    #[test]
    fn bad_tokens_and_extensions_are_refused_before_sending() {
        let exp = UNIX_EPOCH;
        assert!(check_token(&token("abc.def-_~+/==", exp)).is_ok());
        assert!(check_token(&token("", exp)).is_err());
        assert!(check_token(&token("has space", exp)).is_err());
        let mut t = token("abc", exp);
        t.extensions = vec![("auth".into(), "x".into())];
        assert!(check_token(&t).unwrap_err().contains("`auth`"));
        t.extensions = vec![("a1".into(), "x".into())];
        assert!(check_token(&t).is_err());
        t.extensions = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert!(check_token(&t).unwrap_err().contains("twice"));
        t.extensions = vec![("ok".into(), "caf\u{e9}".into())];
        assert!(check_token(&t).unwrap_err().contains("`ok`"));
    }

    /// librdkafka's own unit tests' expected tokens for the same settings
    /// and time (now = 1000 ms).
    #[test]
    fn unsecured_jwts_match_librdkafkas() {
        let jwt = UnsecuredJwt::parse("principal=fubar scopeClaimName=whatever").unwrap();
        assert_eq!(
            jwt.token_at(1000).value.expose(),
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJmdWJhciIsImlhdCI6MS4wMDAsImV4cCI6MzYwMS4wMDB9."
        );
        let jwt = UnsecuredJwt::parse("principal=fubar scope=role1,role2 lifeSeconds=60").unwrap();
        let t = jwt.token_at(1000);
        assert_eq!(
            t.value.expose(),
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJmdWJhciIsImlhdCI6MS4wMDAsImV4cCI6NjEuMDAwLCJzY29wZSI6WyJyb2xlMSIsInJvbGUyIl19."
        );
        assert_eq!(t.expires_at, UNIX_EPOCH + Duration::from_secs(61));
        assert_eq!(t.principal, "fubar");
        let jwt = UnsecuredJwt::parse("principal=p extension_traceId=abc").unwrap();
        assert_eq!(
            jwt.token_at(0).extensions,
            vec![("traceId".to_string(), "abc".to_string())]
        );
        assert!(UnsecuredJwt::parse("scope=a")
            .unwrap_err()
            .contains("principal"));
        assert!(UnsecuredJwt::parse("principal=p lifeSeconds=x")
            .unwrap_err()
            .contains("lifeSeconds"));
        assert!(UnsecuredJwt::parse("principal=p colour=red")
            .unwrap_err()
            .contains("colour"));
    }

    /// Kafka's refresh rule: 80-85 % into the lifetime; the buffer before
    /// expiry and the minimum period apply only to tokens that live long
    /// enough for both.
    #[test]
    fn refresh_points_follow_kafkas_rule() {
        let s = RefreshSettings::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |life: u64, j: f64| {
            s.refresh_at(t0, t0 + Duration::from_secs(life), j)
                .duration_since(t0)
                .unwrap()
        };
        // One hour: 80 % (2880 s) is before expiry - 300 s, after 60 s.
        assert_eq!(at(3600, 0.0), Duration::from_secs(2880));
        assert_eq!(at(3600, 0.999_999).as_secs(), 3059);
        // Two hours: 80 % (5760 s) is before expiry - 300 s (6900 s).
        assert_eq!(at(7200, 0.0), Duration::from_secs(5760));
        // 20 minutes: 80 % = 960 s; the buffer wants <= 900 s.
        assert_eq!(at(1200, 0.0), Duration::from_secs(900));
        // 5 minutes (shorter than min period + buffer): plain 80 %.
        assert_eq!(at(300, 0.0), Duration::from_secs(240));
        // With a small buffer, the minimum period wins over an early 80 %.
        let s = RefreshSettings {
            buffer: Duration::from_secs(1),
            ..RefreshSettings::default()
        };
        let at = s.refresh_at(t0, t0 + Duration::from_secs(70), 0.0);
        assert_eq!(at.duration_since(t0).unwrap(), Duration::from_secs(60));
    }

    struct Counting {
        calls: AtomicUsize,
        life: Duration,
        fail_after: usize,
        /// After `fail_after` calls, a malformed token instead of an error.
        malformed: bool,
    }

    impl OAuthBearerTokenProvider for Counting {
        fn token(&self) -> TokenFuture<'_> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let r = if n <= self.fail_after {
                Ok(token(&format!("t{n}"), SystemTime::now() + self.life))
            } else if self.malformed {
                Ok(token("not a token", SystemTime::now() + self.life))
            } else {
                Err("identity provider down".to_string())
            };
            Box::pin(async move { r })
        }
    }

    /// A cache over a provider whose first token lives an hour and whose
    /// later answers fail (with an error, or a malformed token).
    fn cache_failing_after_one(malformed: bool) -> (Arc<Counting>, TokenCache) {
        let p = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            life: Duration::from_secs(3600),
            fail_after: 1,
            malformed,
        });
        let cache = TokenCache::new(p.clone(), RefreshSettings::default());
        (p, cache)
    }

    /// Make the current token due for refresh.
    fn due_now(cache: &TokenCache) {
        let mut st = cache.state.lock().unwrap();
        st.current.as_mut().unwrap().refresh_at = SystemTime::now();
    }

    /// A malformed token from the provider is a failed refresh like an
    /// error: the still-valid token stays in use.
    #[tokio::test]
    async fn a_malformed_refresh_keeps_the_valid_token() {
        let (p, cache) = cache_failing_after_one(true);
        assert_eq!(cache.token().await.unwrap().value.expose(), "t1");
        due_now(&cache);
        assert_eq!(cache.token().await.unwrap().value.expose(), "t1");
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
        cache.state.lock().unwrap().current = None;
        let e = cache.token().await.unwrap_err();
        assert!(e.contains("characters a bearer token cannot have"), "{e}");
    }

    #[tokio::test]
    async fn the_cache_asks_once_per_refresh_and_keeps_a_valid_token_on_failure() {
        let (p, cache) = cache_failing_after_one(false);
        assert_eq!(cache.token().await.unwrap().value.expose(), "t1");
        assert_eq!(cache.token().await.unwrap().value.expose(), "t1");
        assert_eq!(p.calls.load(Ordering::SeqCst), 1, "one call while fresh");
        // Past the refresh point, the provider is asked; its failure keeps
        // the still-valid token, and it is not asked again at once.
        due_now(&cache);
        assert_eq!(cache.token().await.unwrap().value.expose(), "t1");
        assert_eq!(cache.token().await.unwrap().value.expose(), "t1");
        assert_eq!(p.calls.load(Ordering::SeqCst), 2, "no retry within 10 s");
        // Once the token has expired, the failure is the answer.
        {
            let mut st = cache.state.lock().unwrap();
            st.current.as_mut().unwrap().token.expires_at = SystemTime::now();
            st.quiet_until = None;
        }
        let e = cache.token().await.unwrap_err();
        assert!(e.contains("identity provider down"), "{e}");
    }

    #[test]
    fn need_by_time() {
        let t0 = UNIX_EPOCH + Duration::from_secs(100);
        let mut st = CacheState::default();
        assert_eq!(st.need(t0), Need::Refresh { have_valid: false });
        st.current = Some(Cached {
            token: token("t", t0 + Duration::from_secs(10)),
            refresh_at: t0 + Duration::from_secs(8),
        });
        assert_eq!(st.need(t0), Need::Current);
        let late = t0 + Duration::from_secs(9);
        assert_eq!(st.need(late), Need::Refresh { have_valid: true });
        st.quiet_until = Some(t0 + Duration::from_secs(20));
        assert_eq!(st.need(late), Need::Current);
        // Quiet or not, an expired token is never handed out.
        assert_eq!(
            st.need(t0 + Duration::from_secs(11)),
            Need::Refresh { have_valid: false }
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let t = token("super-secret-token", UNIX_EPOCH);
        assert!(!format!("{t:?}").contains("super-secret"));
    }
}
