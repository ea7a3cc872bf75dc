//! The server side of SASL for `MockBroker`: PLAIN (RFC 4616) and
//! SCRAM-SHA-256/512 (RFC 5802), one user, written from the RFCs for the
//! tests (herald's client side is checked against RFC 7677's vector too).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// What the mock accepts: the mechanisms it enables and its one user.
#[derive(Clone, Debug)]
pub struct SaslUser {
    pub mechanisms: Vec<&'static str>,
    pub username: String,
    pub password: String,
}

/// UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED,
/// ILLEGAL_SASL_STATE.
pub(crate) const UNSUPPORTED: i16 = 33;
pub(crate) const FAILED: i16 = 58;
pub(crate) const ILLEGAL_STATE: i16 = 34;

/// One connection's progress.
#[derive(Default)]
pub(crate) enum Session {
    #[default]
    Start,
    Chosen(&'static str),
    ScramFirst {
        sha512: bool,
        bare: String,
        server_first: String,
    },
    Done,
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
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self, Session::Done)
    }

    /// SaslHandshake: the error code, and the enabled mechanisms.
    pub(crate) fn handshake(&mut self, user: &SaslUser, mechanism: &str) -> i16 {
        match user.mechanisms.iter().find(|m| **m == mechanism) {
            Some(m) => {
                *self = Session::Chosen(m);
                0
            }
            None => UNSUPPORTED,
        }
    }

    /// SaslAuthenticate: the bytes to answer, or an error code and message.
    pub(crate) fn authenticate(
        &mut self,
        user: &SaslUser,
        bytes: &[u8],
    ) -> Result<Vec<u8>, (i16, String)> {
        let refused = |why: &str| Err((FAILED, format!("Authentication failed: {why}")));
        let text = String::from_utf8_lossy(bytes).to_string();
        match std::mem::take(self) {
            Session::Chosen("PLAIN") => {
                let parts: Vec<&str> = text.split('\0').collect();
                if parts.len() == 3 && parts[1] == user.username && parts[2] == user.password {
                    *self = Session::Done;
                    Ok(Vec::new())
                } else {
                    refused("invalid username or password")
                }
            }
            Session::Chosen(m @ ("SCRAM-SHA-256" | "SCRAM-SHA-512")) => {
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
                *self = Session::ScramFirst {
                    sha512,
                    bare: bare.to_string(),
                    server_first: server_first.clone(),
                };
                Ok(server_first.into_bytes())
            }
            Session::ScramFirst {
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
                *self = Session::Done;
                Ok(format!(
                    "v={}",
                    B64.encode(hmac(sha512, &server_key, auth.as_bytes()))
                )
                .into_bytes())
            }
            _ => Err((ILLEGAL_STATE, "unexpected SaslAuthenticate".into())),
        }
    }
}
