//! The `sasl.*` properties, and the providers an application plugs in,
//! resolved into one [`SaslConfig`]; errors name the property to fix.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{
    AwsCredentialsProvider, EnvOrProfile, OAuthBearerTokenProvider, RefreshSettings, SaslConfig,
    ScramHash, Secret, TokenCache, UnsecuredJwt,
};
use crate::error::Error;

/// The property names these settings accept.
pub const PROPERTIES: &[&str] = &[
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.config",
    "enable.sasl.oauthbearer.unsecure.jwt",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.buffer.seconds",
    "sasl.aws.region",
    "sasl.aws.profile",
];

/// SASL settings by Kafka's (and librdkafka's) property names; only read
/// when `security.protocol` is SASL_PLAINTEXT or SASL_SSL.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct SaslSettings {
    /// `sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`,
    /// `OAUTHBEARER` or `AWS_MSK_IAM` (Kafka's default, `GSSAPI`, is not
    /// supported).
    pub mechanism: Option<String>,
    /// `sasl.username` (PLAIN, SCRAM).
    pub username: Option<String>,
    /// `sasl.password` (PLAIN, SCRAM; shown as `***` in `Debug`).
    pub password: Option<Secret>,
    /// `sasl.oauthbearer.config` (librdkafka's): settings of the unsecured
    /// JWTs made with `enable.sasl.oauthbearer.unsecure.jwt`, such as
    /// `principal=alice lifeSeconds=3600 scope=a,b extension_traceId=1`.
    pub oauthbearer_config: Option<String>,
    /// `enable.sasl.oauthbearer.unsecure.jwt` (default false): make
    /// unsecured (`alg: none`) tokens from `sasl.oauthbearer.config`, for
    /// development brokers that accept them.
    pub oauthbearer_unsecure_jwt: bool,
    /// `sasl.login.refresh.*`: when OAUTHBEARER tokens are refreshed.
    pub login_refresh: RefreshSettings,
    /// `sasl.aws.region` (AWS_MSK_IAM): without it, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, then the region in the broker's host name.
    pub aws_region: Option<String>,
    /// `sasl.aws.profile` (AWS_MSK_IAM): take credentials from this
    /// profile of the shared credentials file only.
    pub aws_profile: Option<String>,
    oauthbearer_provider: Option<Arc<dyn OAuthBearerTokenProvider>>,
    aws_credentials: Option<Arc<dyn AwsCredentialsProvider>>,
}

impl fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("oauthbearer_config", &self.oauthbearer_config)
            .field("oauthbearer_unsecure_jwt", &self.oauthbearer_unsecure_jwt)
            .field("login_refresh", &self.login_refresh)
            .field("aws_region", &self.aws_region)
            .field("aws_profile", &self.aws_profile)
            .field("oauthbearer_provider", &self.oauthbearer_provider.is_some())
            .field("aws_credentials", &self.aws_credentials.is_some())
            .finish()
    }
}

impl SaslSettings {
    /// Set one `sasl.*` property; `None` if `key` is not one of them.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Option<Result<(), Error>> {
        use crate::config::{parse_bool, parse_in_range};
        let number = |v: &str, range| parse_in_range::<f64>(key, v, range, "a number");
        let seconds = |v: &str, max: u64| {
            parse_in_range::<u64>(key, v, 0..=max, "whole seconds").map(Duration::from_secs)
        };
        let r = &mut self.login_refresh;
        let result = match key {
            "sasl.mechanism" => {
                self.mechanism = Some(value.trim().to_string());
                Ok(())
            }
            "sasl.username" => {
                self.username = Some(value.to_string());
                Ok(())
            }
            "sasl.password" => {
                self.password = Some(Secret::new(value));
                Ok(())
            }
            "sasl.oauthbearer.config" => {
                self.oauthbearer_config = Some(value.to_string());
                Ok(())
            }
            "enable.sasl.oauthbearer.unsecure.jwt" => {
                parse_bool(key, value).map(|b| self.oauthbearer_unsecure_jwt = b)
            }
            // Kafka's ranges for each.
            "sasl.login.refresh.window.factor" => {
                number(value, 0.5..=1.0).map(|n| r.window_factor = n)
            }
            "sasl.login.refresh.window.jitter" => {
                number(value, 0.0..=0.25).map(|n| r.window_jitter = n)
            }
            "sasl.login.refresh.min.period.seconds" => {
                seconds(value, 900).map(|n| r.min_period = n)
            }
            "sasl.login.refresh.buffer.seconds" => seconds(value, 3600).map(|n| r.buffer = n),
            // Empty means unset: the fallbacks apply.
            "sasl.aws.region" => {
                self.aws_region = Some(value.trim().to_string()).filter(|v| !v.is_empty());
                Ok(())
            }
            "sasl.aws.profile" => {
                self.aws_profile = Some(value.trim().to_string()).filter(|v| !v.is_empty());
                Ok(())
            }
            _ => return None,
        };
        Some(result)
    }

    /// Use this provider's tokens for OAUTHBEARER.
    pub fn oauthbearer_token_provider(&mut self, p: Arc<dyn OAuthBearerTokenProvider>) {
        self.oauthbearer_provider = Some(p);
    }

    /// Sign AWS_MSK_IAM requests with this provider's credentials instead
    /// of the environment's or the credentials file's.
    pub fn aws_credentials_provider(&mut self, p: Arc<dyn AwsCredentialsProvider>) {
        self.aws_credentials = Some(p);
    }

    /// The mechanism and its credentials; an error names the missing or
    /// wrong property.
    pub(crate) fn resolve(&self) -> Result<SaslConfig, Error> {
        let mechanism = self.mechanism.as_deref().unwrap_or("GSSAPI");
        let user_and_password = || -> Result<(String, Secret), Error> {
            let username = self.username.clone().ok_or_else(|| {
                Error::config("sasl.username", format!("required for SASL {mechanism}"))
            })?;
            let password = self.password.clone().ok_or_else(|| {
                Error::config("sasl.password", format!("required for SASL {mechanism}"))
            })?;
            Ok((username, password))
        };
        Ok(match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let (username, password) = user_and_password()?;
                SaslConfig::Plain { username, password }
            }
            m @ ("SCRAM-SHA-256" | "SCRAM-SHA-512") => {
                let (username, password) = user_and_password()?;
                SaslConfig::Scram {
                    hash: if m == "SCRAM-SHA-256" {
                        ScramHash::Sha256
                    } else {
                        ScramHash::Sha512
                    },
                    username,
                    password,
                }
            }
            "OAUTHBEARER" => {
                let provider: Arc<dyn OAuthBearerTokenProvider> =
                    match (&self.oauthbearer_provider, self.oauthbearer_unsecure_jwt) {
                        (Some(p), _) => p.clone(),
                        (None, true) => {
                            let config = self.oauthbearer_config.as_deref().unwrap_or("");
                            Arc::new(
                                UnsecuredJwt::parse(config)
                                    .map_err(|e| Error::config("sasl.oauthbearer.config", e))?,
                            )
                        }
                        (None, false) => {
                            return Err(Error::config(
                                "sasl.oauthbearer.config",
                                "OAUTHBEARER needs a token provider \
                                 (SaslSettings::oauthbearer_token_provider), or, for development \
                                 brokers that accept unsecured tokens, \
                                 enable.sasl.oauthbearer.unsecure.jwt=true with \
                                 sasl.oauthbearer.config=principal=NAME",
                            ))
                        }
                    };
                SaslConfig::OAuthBearer {
                    tokens: Arc::new(TokenCache::new(provider, self.login_refresh)),
                }
            }
            "AWS_MSK_IAM" => SaslConfig::AwsMskIam {
                region: self.aws_region.clone(),
                credentials: match &self.aws_credentials {
                    Some(p) => p.clone(),
                    None => Arc::new(EnvOrProfile {
                        profile: self.aws_profile.clone(),
                    }),
                },
            },
            other => {
                return Err(Error::config(
                    "sasl.mechanism",
                    format!(
                        "`{other}` is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, \
                         OAUTHBEARER or AWS_MSK_IAM)"
                    ),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<SaslConfig, Error> {
        let mut s = SaslSettings::default();
        for (k, v) in pairs {
            s.set(k, v).expect("a sasl key")?;
        }
        s.resolve()
    }

    #[test]
    fn each_mechanism_resolves_or_names_the_missing_property() {
        let c = with(&[
            ("sasl.mechanism", "scram-sha-256"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
        ])
        .unwrap();
        assert_eq!(c.mechanism(), "SCRAM-SHA-256");
        let e = with(&[("sasl.mechanism", "PLAIN"), ("sasl.username", "u")]).unwrap_err();
        assert!(e.to_string().contains("sasl.password"), "{e}");
        let e = with(&[]).unwrap_err();
        assert!(
            e.to_string().contains("sasl.mechanism") && e.to_string().contains("GSSAPI"),
            "{e}"
        );
        let e = with(&[("sasl.mechanism", "OAUTHBEARER")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("enable.sasl.oauthbearer.unsecure.jwt"),
            "{e}"
        );
        let e = with(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
            ("sasl.oauthbearer.config", "lifeSeconds=60"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("sasl.oauthbearer.config")
                && e.to_string().contains("principal"),
            "{e}"
        );
        let c = with(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
            ("sasl.oauthbearer.config", "principal=alice"),
        ])
        .unwrap();
        assert_eq!(c.mechanism(), "OAUTHBEARER");
        let c = with(&[
            ("sasl.mechanism", "AWS_MSK_IAM"),
            ("sasl.aws.region", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(c.mechanism(), "AWS_MSK_IAM");
    }

    #[test]
    fn refresh_settings_within_kafkas_ranges() {
        let mut s = SaslSettings::default();
        s.set("sasl.login.refresh.window.factor", "0.9")
            .unwrap()
            .unwrap();
        s.set("sasl.login.refresh.buffer.seconds", "120")
            .unwrap()
            .unwrap();
        assert_eq!(s.login_refresh.window_factor, 0.9);
        assert_eq!(s.login_refresh.buffer, Duration::from_secs(120));
        let e = s
            .set("sasl.login.refresh.window.factor", "0.2")
            .unwrap()
            .unwrap_err();
        assert!(
            e.to_string().contains("sasl.login.refresh.window.factor"),
            "{e}"
        );
        let e = s
            .set("sasl.login.refresh.buffer.seconds", "1.5")
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("whole seconds"), "{e}");
        let e = s
            .set("sasl.login.refresh.window.jitter", "x")
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("0.25"), "{e}");
        assert!(s.set("sasl.nonsense", "1").is_none());
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut s = SaslSettings::default();
        s.set("sasl.password", "hunter2").unwrap().unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
