//! The server side of SASL for `MockBroker`, one user, written from the
//! specifications for the tests: PLAIN (RFC 4616), SCRAM-SHA-256/512
//! (RFC 5802), OAUTHBEARER (RFC 7628, with unsecured JWTs checked for
//! subject and expiry as Kafka's unsecured validator does) and
//! AWS_MSK_IAM (the signature checked by AWS's own SigV4 signer, the
//! `aws-sigv4` crate); and KIP-368 sessions: with a session lifetime set,
//! a connection must authenticate again before it ends, and one used for
//! anything else after it ends is closed, as Kafka does.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// What the mock accepts: the mechanisms it enables and its one user.
#[derive(Clone, Debug, Default)]
pub struct SaslUser {
    pub mechanisms: Vec<&'static str>,
    /// PLAIN and SCRAM's user; OAUTHBEARER's token subject.
    pub username: String,
    pub password: String,
    /// AWS_MSK_IAM's credentials and region.
    pub aws: Option<AwsUser>,
    /// `connections.max.reauth.ms`: sessions end this long after they
    /// authenticate (for OAUTHBEARER, at the token's expiry if sooner).
    pub session_lifetime: Option<Duration>,
}

/// The AWS identity AWS_MSK_IAM signatures are checked against.
#[derive(Clone, Debug)]
pub struct AwsUser {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

/// What the broker's SASL saw, for tests to assert on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslCounts {
    /// Authentications that succeeded, first ones and again.
    pub authentications: usize,
    /// Of those, re-authentications on a connection already authenticated.
    pub reauthentications: usize,
    /// Authentications refused.
    pub refused: usize,
    /// Connections closed because they were used after their session
    /// ended (any request, SASL's too: stricter than Kafka, which lets a
    /// late re-authentication start, so a client that renews late fails).
    pub expired_closes: usize,
    /// Connections closed for a request other than SASL's before they
    /// authenticated, or during a re-authentication.
    pub unauthenticated_closes: usize,
}

impl SaslCounts {
    /// Connections that authenticated (first authentications).
    pub fn connections(&self) -> usize {
        self.authentications - self.reauthentications
    }
}

/// UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED,
/// ILLEGAL_SASL_STATE.
pub(crate) const UNSUPPORTED: i16 = 33;
pub(crate) const FAILED: i16 = 58;
pub(crate) const ILLEGAL_STATE: i16 = 34;

/// One connection's progress.
#[derive(Default)]
pub(crate) struct Session {
    step: Step,
    /// The mechanism of the first authentication (a re-authentication
    /// must use the same).
    mechanism: Option<&'static str>,
    /// When the current session ends; `None` while not authenticated, or
    /// authenticated without a lifetime.
    expires: Option<Instant>,
    /// Authenticated at least once, and when last.
    ever: bool,
    authenticated_at: Option<Instant>,
}

#[derive(Default)]
enum Step {
    #[default]
    Start,
    Chosen(&'static str),
    ScramFirst {
        sha512: bool,
        bare: String,
        server_first: String,
    },
    /// OAUTHBEARER's error was sent as a challenge; 0x01 comes next.
    OAuthRefused(String),
    Done,
}

/// How a non-SASL request on a connection is treated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Allowed,
    /// Not (or not yet again) authenticated: close.
    Unauthenticated,
    /// The session ran out without re-authentication: close.
    Expired,
}

/// An authentication's outcome: the bytes to answer and, once it is
/// complete, the session lifetime to announce.
pub(crate) struct Answer {
    pub(crate) bytes: Vec<u8>,
    pub(crate) lifetime_ms: i64,
    pub(crate) completed: Option<bool>,
}

const SALT: &[u8] = b"herald mock salt";
const ITERATIONS: u32 = 4096;

fn hmac(sha512: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    if sha512 {
        let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

fn salted(sha512: bool, password: &str) -> Vec<u8> {
    if sha512 {
        pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), SALT, ITERATIONS).to_vec()
    } else {
        pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), SALT, ITERATIONS).to_vec()
    }
}

impl Session {
    /// Whether a request may be served now.
    pub(crate) fn access(&self, now: Instant) -> Access {
        match (&self.step, self.expires) {
            (_, Some(e)) if now >= e => Access::Expired,
            (Step::Done, _) => Access::Allowed,
            _ => Access::Unauthenticated,
        }
    }

    /// SaslHandshake: the error code (the enabled mechanisms go with it).
    /// On an authenticated connection it starts a re-authentication, if
    /// sessions have a lifetime, with the same mechanism only.
    pub(crate) fn handshake(&mut self, user: &SaslUser, mechanism: &str) -> i16 {
        // Re-authentication: only where sessions end, with the same
        // mechanism, and (as in Kafka) not within 1 s of the last.
        if matches!(self.step, Step::Done)
            && (self.expires.is_none()
                || self.mechanism != Some(mechanism)
                || self
                    .authenticated_at
                    .is_some_and(|at| at.elapsed() < Duration::from_secs(1)))
        {
            return ILLEGAL_STATE;
        }
        match user.mechanisms.iter().find(|m| **m == mechanism) {
            Some(m) => {
                self.step = Step::Chosen(m);
                0
            }
            None => UNSUPPORTED,
        }
    }

    /// SaslAuthenticate: the answer, or an error code and message.
    pub(crate) fn authenticate(
        &mut self,
        user: &SaslUser,
        bytes: &[u8],
    ) -> Result<Answer, (i16, String)> {
        let now = Instant::now();
        let mut lifetime = user.session_lifetime;
        let out = self.exchange(user, bytes, &mut lifetime)?;
        if !matches!(self.step, Step::Done) {
            return Ok(Answer {
                bytes: out,
                lifetime_ms: 0,
                completed: None,
            });
        }
        let again = self.ever;
        self.ever = true;
        self.authenticated_at = Some(now);
        self.expires = lifetime.map(|l| now + l);
        Ok(Answer {
            bytes: out,
            lifetime_ms: lifetime.map_or(0, |l| l.as_millis() as i64),
            completed: Some(again),
        })
    }

    fn exchange(
        &mut self,
        user: &SaslUser,
        bytes: &[u8],
        lifetime: &mut Option<Duration>,
    ) -> Result<Vec<u8>, (i16, String)> {
        let refused = |why: &str| Err((FAILED, format!("Authentication failed: {why}")));
        let text = String::from_utf8_lossy(bytes).to_string();
        match std::mem::take(&mut self.step) {
            Step::Chosen("PLAIN") => {
                let parts: Vec<&str> = text.split('\0').collect();
                if parts.len() == 3 && parts[1] == user.username && parts[2] == user.password {
                    self.done("PLAIN");
                    Ok(Vec::new())
                } else {
                    refused("invalid username or password")
                }
            }
            Step::Chosen("OAUTHBEARER") => match check_oauth(user, &text) {
                Ok(token_left) => {
                    *lifetime = Some(lifetime.map_or(token_left, |l| l.min(token_left)));
                    self.done("OAUTHBEARER");
                    Ok(Vec::new())
                }
                Err(status) => {
                    // RFC 7628 3.2.2: the error is a challenge; the client
                    // answers 0x01 and the failure follows.
                    let json = format!("{{\"status\":\"{status}\"}}");
                    self.step = Step::OAuthRefused(json.clone());
                    Ok(json.into_bytes())
                }
            },
            Step::OAuthRefused(json) => {
                if bytes == [1] {
                    Err((FAILED, json))
                } else {
                    refused("expected 0x01 after the error")
                }
            }
            Step::Chosen("AWS_MSK_IAM") => match check_msk_iam(user, bytes) {
                Ok(()) => {
                    self.done("AWS_MSK_IAM");
                    Ok(br#"{"version":"2020_10_22","request-id":"mock-request"}"#.to_vec())
                }
                Err(why) => Err((FAILED, format!("[mock-request]: Access denied ({why})"))),
            },
            Step::Chosen(m @ ("SCRAM-SHA-256" | "SCRAM-SHA-512")) => {
                let sha512 = m == "SCRAM-SHA-512";
                let Some(bare) = text.strip_prefix("n,,") else {
                    return refused("bad client-first message");
                };
                let mut name = None;
                let mut nonce = None;
                for p in bare.split(',') {
                    if let Some(v) = p.strip_prefix("n=") {
                        name = Some(v.replace("=2C", ",").replace("=3D", "="));
                    }
                    if let Some(v) = p.strip_prefix("r=") {
                        nonce = Some(v.to_string());
                    }
                }
                if name.as_deref() != Some(user.username.as_str()) {
                    return refused("unknown user");
                }
                let server_first = format!(
                    "r={}mockserver,s={},i={ITERATIONS}",
                    nonce.unwrap_or_default(),
                    B64.encode(SALT)
                );
                self.step = Step::ScramFirst {
                    sha512,
                    bare: bare.to_string(),
                    server_first: server_first.clone(),
                };
                Ok(server_first.into_bytes())
            }
            Step::ScramFirst {
                sha512,
                bare,
                server_first,
            } => {
                let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
                    return refused("no proof");
                };
                let salted = salted(sha512, &user.password);
                let client_key = hmac(sha512, &salted, b"Client Key");
                let stored_key = if sha512 {
                    Sha512::digest(&client_key).to_vec()
                } else {
                    Sha256::digest(&client_key).to_vec()
                };
                let auth = format!("{bare},{server_first},{without_proof}");
                let signature = hmac(sha512, &stored_key, auth.as_bytes());
                let proof = B64.decode(proof).unwrap_or_default();
                if proof.len() != signature.len() {
                    return refused("bad proof");
                }
                let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                let recovered_stored = if sha512 {
                    Sha512::digest(&recovered).to_vec()
                } else {
                    Sha256::digest(&recovered).to_vec()
                };
                if recovered_stored != stored_key {
                    return refused("invalid credentials");
                }
                let server_key = hmac(sha512, &salted, b"Server Key");
                self.done(if sha512 {
                    "SCRAM-SHA-512"
                } else {
                    "SCRAM-SHA-256"
                });
                Ok(format!(
                    "v={}",
                    B64.encode(hmac(sha512, &server_key, auth.as_bytes()))
                )
                .into_bytes())
            }
            _ => Err((ILLEGAL_STATE, "unexpected SaslAuthenticate".into())),
        }
    }

    fn done(&mut self, mechanism: &'static str) {
        self.step = Step::Done;
        self.mechanism.get_or_insert(mechanism);
    }
}

/// The unsecured JWT of an OAUTHBEARER first message: its subject must be
/// the user and it must not have expired. The time it has left, or the
/// RFC 6750 status to refuse with.
fn check_oauth(user: &SaslUser, message: &str) -> Result<Duration, &'static str> {
    // GS2 header, key=value pairs each ended by 0x01, a final 0x01.
    let Some(body) = message.strip_suffix("\u{1}\u{1}") else {
        return Err("invalid_request");
    };
    let mut fields = body.split('\u{1}');
    if fields.next() != Some("n,,") {
        return Err("invalid_request");
    }
    let token = fields
        .next()
        .and_then(|f| f.strip_prefix("auth=Bearer "))
        .ok_or("invalid_request")?;
    let claims = token.split('.').nth(1).ok_or("invalid_token")?;
    let claims = B64URL.decode(claims).map_err(|_| "invalid_token")?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).map_err(|_| "invalid_token")?;
    if claims.get("sub").and_then(|s| s.as_str()) != Some(user.username.as_str()) {
        return Err("invalid_token");
    }
    let exp = claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or("invalid_token")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    if exp <= now {
        return Err("invalid_token");
    }
    Ok(Duration::from_secs_f64(exp - now))
}

/// An AWS_MSK_IAM payload: the fields MSK reads, the credential scope of
/// the user's key and region, a date within the expiry, and the signature
/// as AWS's SigV4 signer computes it for the same request.
fn check_msk_iam(user: &SaslUser, payload: &[u8]) -> Result<(), String> {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    let aws = user.aws.as_ref().ok_or("no AWS user")?;
    let p: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let field = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let need = |k: &str| field(k).ok_or_else(|| format!("no {k}"));
    if need("version")? != "2020_10_22" || need("action")? != "kafka-cluster:Connect" {
        return Err("wrong version or action".into());
    }
    let host = need("host")?;
    let date = need("x-amz-date")?;
    let scope = format!(
        "{}/{}/kafka-cluster/aws4_request",
        &date.get(..8).unwrap_or(""),
        aws.region
    );
    if need("x-amz-credential")? != format!("{}/{scope}", aws.access_key_id) {
        return Err("wrong access key, date or region in the credential".into());
    }
    if need("x-amz-signedheaders")? != "host" || need("x-amz-algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("wrong signed headers or algorithm".into());
    }
    if field("x-amz-security-token") != aws.session_token {
        return Err("wrong session token".into());
    }
    let expires: u64 = need("x-amz-expires")?.parse().map_err(|_| "bad expiry")?;
    let signed_at = parse_amz_date(&date).ok_or("bad x-amz-date")?;
    let now = SystemTime::now();
    if expires > 900
        || signed_at > now + Duration::from_secs(300)
        || now > signed_at + Duration::from_secs(expires)
    {
        return Err("signature expired or from the future".into());
    }
    let identity = aws_credential_types::Credentials::new(
        &aws.access_key_id,
        &aws.secret_access_key,
        aws.session_token.clone(),
        None,
        "mock",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(expires));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name("kafka-cluster")
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        "GET",
        format!("https://{host}/?Action=kafka-cluster%3AConnect"),
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let expected = sign(request, &params).map_err(|e| e.to_string())?;
    if need("x-amz-signature")? != expected.signature() {
        return Err("signature does not match".into());
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` to a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if s.len() != 16 || &s[8..9] != "T" || &s[15..] != "Z" {
        return None;
    }
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    // Days from civil (the inverse of the usual era arithmetic).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}
