//! SASL AWS_MSK_IAM: Amazon MSK's IAM access control. The client speaks
//! first, with one JSON object whose fields are a SigV4 presign (service
//! `kafka-cluster`, action `kafka-cluster:Connect`) of a GET on the
//! broker's host name; the broker answers with a JSON object naming the
//! protocol version and its request id. A refusal is the broker's
//! SASL_AUTHENTICATION_FAILED ("Access denied"), not a message body.
//!
//! Credentials come from an [`AwsCredentialsProvider`]: by default the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), then the shared credentials file, as the AWS SDKs
//! look; or one the application supplies (for roles, SSO, instance
//! metadata: wrap the AWS SDK's own provider).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use super::sigv4::{self, AmzDate};
use super::{Mechanism, Secret, Step};

/// The payload format MSK brokers accept.
const VERSION: &str = "2020_10_22";
/// The signing name of MSK's IAM authentication.
const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";
/// How long the signature is valid, as the reference client signs it.
const EXPIRES_SECS: u32 = 900;

/// AWS credentials for signing.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id (`AKIA…`, or `ASIA…` for temporary credentials).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// The future a provider returns.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AwsCredentials, String>> + Send + 'a>>;

/// Where AWS_MSK_IAM gets its credentials: asked on every authentication
/// (each new connection and each re-authentication), so rotating
/// credentials are picked up. An error is reported as a security error
/// that says what the provider said.
pub trait AwsCredentialsProvider: Send + Sync {
    /// Current credentials.
    fn credentials(&self) -> CredentialsFuture<'_>;
}

/// The default provider: the environment, then the shared credentials
/// file (`AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`) under the
/// profile `AWS_PROFILE` (or `default`). With an explicit profile
/// (`sasl.aws.profile`), only that profile of the file.
#[derive(Debug, Clone, Default)]
pub struct EnvOrProfile {
    /// `sasl.aws.profile`.
    pub profile: Option<String>,
}

impl AwsCredentialsProvider for EnvOrProfile {
    fn credentials(&self) -> CredentialsFuture<'_> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let result = self.resolve(env);
        Box::pin(async move { result })
    }
}

impl EnvOrProfile {
    fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<AwsCredentials, String> {
        if self.profile.is_none() {
            match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => {
                    return Ok(AwsCredentials {
                        access_key_id: id,
                        secret_access_key: Secret::new(secret),
                        session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
                    })
                }
                (Some(_), None) => {
                    return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
                }
                _ => {}
            }
        }
        let profile = self
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let path = match env("AWS_SHARED_CREDENTIALS_FILE") {
            Some(p) => PathBuf::from(p),
            None => match env("HOME") {
                Some(home) => PathBuf::from(home).join(".aws").join("credentials"),
                None => {
                    return Err(
                        "no AWS credentials: AWS_ACCESS_KEY_ID is not set, and neither \
                                HOME nor AWS_SHARED_CREDENTIALS_FILE locates a credentials file"
                            .into(),
                    )
                }
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let env_hint = if self.profile.is_none() {
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and "
            } else {
                ""
            };
            format!(
                "no AWS credentials: {env_hint}the credentials file {} (profile `{profile}`) \
                 cannot be read ({e}); set them, write the file, or give the producer a \
                 credentials provider",
                path.display()
            )
        })?;
        profile_credentials(&text, &profile)
            .map_err(|why| format!("{why} in {} (profile `{profile}`)", path.display()))
    }
}

/// Credentials of `profile` in the INI text of a shared credentials file.
fn profile_credentials(text: &str, profile: &str) -> Result<AwsCredentials, String> {
    let mut in_profile = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    if !found {
        return Err("no such profile".into());
    }
    Ok(AwsCredentials {
        access_key_id: id.ok_or("no aws_access_key_id")?,
        secret_access_key: Secret::new(secret.ok_or("no aws_secret_access_key")?),
        session_token: token.map(Secret::new),
    })
}

/// The region of an MSK broker host name: the label before
/// `.amazonaws.com` (or `.amazonaws.com.cn`), as in
/// `b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com`.
pub(crate) fn region_from_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.');
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let region = rest.rsplit('.').next()?;
    let looks_like_region = region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    looks_like_region.then(|| region.to_string())
}

/// The authentication payload: the presign's query parameters as JSON,
/// keys in lower case, values not URI-encoded.
pub(crate) fn payload(
    creds: &AwsCredentials,
    region: &str,
    host: &str,
    date: &AmzDate,
    expires_secs: u32,
) -> String {
    let scope = sigv4::scope(&date.date, region, SERVICE);
    let credential = format!("{}/{scope}", creds.access_key_id);
    let expires = expires_secs.to_string();
    let token = creds.session_token.as_ref().map(|t| t.expose());
    let mut params = vec![
        ("Action", ACTION),
        ("X-Amz-Algorithm", sigv4::ALGORITHM),
        ("X-Amz-Credential", credential.as_str()),
        ("X-Amz-Date", date.date_time.as_str()),
        ("X-Amz-Expires", expires.as_str()),
        ("X-Amz-SignedHeaders", "host"),
    ];
    if let Some(t) = token {
        params.push(("X-Amz-Security-Token", t));
    }
    // GET / with only the host header signed and an empty body.
    let canonical = format!(
        "GET\n/\n{}\nhost:{host}\n\nhost\n{}",
        sigv4::canonical_query(&params),
        sigv4::hex_sha256(b"")
    );
    let key = sigv4::signing_key(
        creds.secret_access_key.expose(),
        &date.date,
        region,
        SERVICE,
    );
    let signature = sigv4::signature(
        &key,
        &sigv4::string_to_sign(&date.date_time, &scope, &canonical),
    );
    let mut json = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        json.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    };
    put("version", VERSION);
    put("host", host);
    put("user-agent", concat!("herald/", env!("CARGO_PKG_VERSION")));
    put("action", ACTION);
    put("x-amz-algorithm", sigv4::ALGORITHM);
    put("x-amz-credential", &credential);
    put("x-amz-date", &date.date_time);
    if let Some(t) = token {
        put("x-amz-security-token", t);
    }
    put("x-amz-signedheaders", "host");
    put("x-amz-expires", &expires);
    put("x-amz-signature", &signature);
    serde_json::Value::Object(json).to_string()
}

pub(crate) struct AwsMskIam {
    payload: Option<Vec<u8>>,
}

impl AwsMskIam {
    /// Sign for `host` (the broker's host name, without the port) now.
    pub(crate) fn new(creds: &AwsCredentials, region: &str, host: &str) -> AwsMskIam {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = AmzDate::from_unix(now);
        AwsMskIam {
            payload: Some(payload(creds, region, host, &date, EXPIRES_SECS).into_bytes()),
        }
    }
}

impl Mechanism for AwsMskIam {
    fn step(&mut self, from_server: &[u8]) -> Result<Step, String> {
        if let Some(p) = self.payload.take() {
            return Ok(Step::Send(p));
        }
        // The broker's answer names the version it speaks.
        let answer: serde_json::Value = serde_json::from_slice(from_server)
            .map_err(|_| "the broker's answer is not the JSON AWS_MSK_IAM expects".to_string())?;
        match answer.get("version").and_then(|v| v.as_str()) {
            Some(VERSION) => Ok(Step::Done),
            other => Err(format!(
                "the broker answered with AWS_MSK_IAM version {other:?}, not {VERSION}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str, secret: &str, token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: id.into(),
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        }
    }

    fn date(date_time: &str) -> AmzDate {
        AmzDate {
            date: date_time[..8].to_string(),
            date_time: date_time.to_string(),
        }
    }

    fn field(payload: &str, key: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        v.get(key).map(|s| s.as_str().unwrap().to_string())
    }

    /// Published MSK IAM signatures of other clients' test suites, for
    /// fixed credentials and time: segmentio/kafka-go (expiry 300 s, no
    /// session token), kafka-python (900 s, with and without a token) and
    /// the kafkajs MSK IAM mechanism (900 s, with a token).
    #[test]
    fn signatures_match_other_clients_published_vectors() {
        let cases = [
            (
                creds("ACCESS_KEY", "SECRET_KEY", None),
                "localhost",
                "20211014T130500Z",
                300,
                "6b8d25f9b45b9c7db9da855a49112d80379224153a27fd279c305a5b7940d1a7",
            ),
            (
                creds(&"X".repeat(20), &"X".repeat(40), None),
                "localhost",
                "20210818T212511Z",
                900,
                "0fa42ae3d5693777942a7a4028b564f0b372bafa2f71c1a19ad60680e6cb994b",
            ),
            (
                creds(&"X".repeat(20), &"X".repeat(40), Some("XXXXX")),
                "localhost",
                "20210818T212511Z",
                900,
                "b0619c50b7ecb4a7f6f92bd5f733770df5710e97b25146f97015c0b1db783b05",
            ),
            (
                creds("accessKeyId", "secretAccessKey", Some("sessionToken")),
                "examples.com",
                "20210101T000000Z",
                900,
                "3515d158e62c159a3d8d4344942cff44c865cdeac6748a4b5dc42686641bb272",
            ),
        ];
        for (c, host, at, expires, want) in cases {
            let p = payload(&c, "us-east-1", host, &date(at), expires);
            assert_eq!(field(&p, "x-amz-signature").as_deref(), Some(want), "{p}");
        }
    }

    #[test]
    fn payload_carries_every_field_the_broker_reads() {
        let c = creds("AKID", "secret", Some("tok"));
        let p = payload(
            &c,
            "eu-west-1",
            "b-1.x.kafka.eu-west-1.amazonaws.com",
            &date("20240102T030405Z"),
            900,
        );
        assert_eq!(field(&p, "version").as_deref(), Some("2020_10_22"));
        assert_eq!(
            field(&p, "host").as_deref(),
            Some("b-1.x.kafka.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            field(&p, "action").as_deref(),
            Some("kafka-cluster:Connect")
        );
        assert_eq!(
            field(&p, "x-amz-algorithm").as_deref(),
            Some("AWS4-HMAC-SHA256")
        );
        assert_eq!(
            field(&p, "x-amz-credential").as_deref(),
            Some("AKID/20240102/eu-west-1/kafka-cluster/aws4_request")
        );
        assert_eq!(field(&p, "x-amz-date").as_deref(), Some("20240102T030405Z"));
        assert_eq!(field(&p, "x-amz-security-token").as_deref(), Some("tok"));
        assert_eq!(field(&p, "x-amz-signedheaders").as_deref(), Some("host"));
        assert_eq!(field(&p, "x-amz-expires").as_deref(), Some("900"));
        assert!(field(&p, "user-agent").unwrap().starts_with("herald/"));
        // Without a session token, the key is absent rather than empty.
        let p = payload(
            &creds("AKID", "secret", None),
            "eu-west-1",
            "h",
            &date("20240102T030405Z"),
            900,
        );
        assert_eq!(field(&p, "x-amz-security-token"), None);
        assert!(!p.contains("secret\""), "the secret is not in the payload");
    }

    #[test]
    fn the_exchange_ends_on_the_brokers_version() {
        let mut m = AwsMskIam::new(&creds("AKID", "s", None), "us-east-1", "h");
        assert!(matches!(m.step(b"").unwrap(), Step::Send(_)));
        assert_eq!(
            m.step(br#"{"version":"2020_10_22","request-id":"r1"}"#)
                .unwrap(),
            Step::Done
        );
        let mut m = AwsMskIam::new(&creds("AKID", "s", None), "us-east-1", "h");
        m.step(b"").unwrap();
        assert!(m.step(br#"{"version":"1999"}"#).is_err());
        let mut m = AwsMskIam::new(&creds("AKID", "s", None), "us-east-1", "h");
        m.step(b"").unwrap();
        assert!(m.step(b"").is_err());
    }

    #[test]
    fn regions_from_msk_host_names() {
        assert_eq!(
            region_from_host("b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            region_from_host("b-2.x.y.kafka.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_from_host("localhost"), None);
        assert_eq!(region_from_host("kafka.example.com"), None);
    }

    #[test]
    fn credentials_from_env_then_profile_file() {
        let dir = std::env::temp_dir().join(format!("herald-aws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n\
             # a comment\n[dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key=s2\naws_session_token=t2\n\
             [broken]\naws_access_key_id=AKIDX\n",
        )
        .unwrap();
        let file_s = file.to_string_lossy().to_string();
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let default = EnvOrProfile::default();
        // The environment first.
        let c = default
            .resolve(vars(vec![
                ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
                ("AWS_SECRET_ACCESS_KEY", "s0".into()),
                ("AWS_SHARED_CREDENTIALS_FILE", file_s.clone()),
            ]))
            .unwrap();
        assert_eq!(c.access_key_id, "AKIDENV");
        // Then the file's default profile, or AWS_PROFILE's.
        let c = default
            .resolve(vars(vec![("AWS_SHARED_CREDENTIALS_FILE", file_s.clone())]))
            .unwrap();
        assert_eq!(c.access_key_id, "AKIDDEFAULT");
        let c = default
            .resolve(vars(vec![
                ("AWS_SHARED_CREDENTIALS_FILE", file_s.clone()),
                ("AWS_PROFILE", "dev".into()),
            ]))
            .unwrap();
        assert_eq!(
            (
                c.access_key_id.as_str(),
                c.session_token.as_ref().map(|t| t.expose())
            ),
            ("AKIDDEV", Some("t2"))
        );
        // An explicit profile wins over the environment.
        let dev = EnvOrProfile {
            profile: Some("dev".into()),
        };
        let c = dev
            .resolve(vars(vec![
                ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
                ("AWS_SECRET_ACCESS_KEY", "s0".into()),
                ("AWS_SHARED_CREDENTIALS_FILE", file_s.clone()),
            ]))
            .unwrap();
        assert_eq!(c.access_key_id, "AKIDDEV");
        // Each way of failing says what is missing and where.
        let e = EnvOrProfile {
            profile: Some("nope".into()),
        }
        .resolve(vars(vec![("AWS_SHARED_CREDENTIALS_FILE", file_s.clone())]))
        .unwrap_err();
        assert!(
            e.contains("no such profile") && e.contains("`nope`") && e.contains(&file_s),
            "{e}"
        );
        let e = EnvOrProfile {
            profile: Some("broken".into()),
        }
        .resolve(vars(vec![("AWS_SHARED_CREDENTIALS_FILE", file_s.clone())]))
        .unwrap_err();
        assert!(e.contains("aws_secret_access_key"), "{e}");
        let e = default
            .resolve(vars(vec![("HOME", "/nonexistent-home".into())]))
            .unwrap_err();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID") && e.contains("/nonexistent-home/.aws/credentials"),
            "{e}"
        );
        let e = default
            .resolve(vars(vec![("AWS_ACCESS_KEY_ID", "AKID".into())]))
            .unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_hides_the_secret_and_token() {
        let c = creds("AKIDSHOWN", "very-secret", Some("session-secret"));
        let d = format!("{c:?}");
        assert!(d.contains("AKIDSHOWN"));
        assert!(
            !d.contains("very-secret") && !d.contains("session-secret"),
            "{d}"
        );
    }
}
