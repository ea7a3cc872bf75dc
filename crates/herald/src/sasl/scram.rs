//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the client
//! proves it knows the password without sending it, and checks the
//! server's signature, which proves the server knows it too.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{Mechanism, Step};

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    pub(crate) fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi() of RFC 5802: PBKDF2 with this hash's HMAC.
    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations)
                    .to_vec()
            }
            ScramHash::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, iterations)
                    .to_vec()
            }
        }
    }
}

/// The fewest PBKDF2 iterations accepted from a server (RFC 7677 asks for
/// at least 4,096; Kafka's minimum is 4,096 too).
const MIN_ITERATIONS: u32 = 4096;
/// The most: Kafka's brokers store at most 16,384, and a server asking
/// for billions would stall the connection in PBKDF2.
const MAX_ITERATIONS: u32 = 16_384;

enum State {
    Start,
    SentFirst { bare: String },
    SentFinal { server_signature: Vec<u8> },
    Done,
}

pub(crate) struct Scram {
    hash: ScramHash,
    username: String,
    password: String,
    nonce: String,
    state: State,
}

/// RFC 5802's saslname: `=` and `,` escaped.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    pub(crate) fn new(hash: ScramHash, username: &str, password: &str) -> Scram {
        use rand::Rng;
        let raw: [u8; 24] = rand::thread_rng().gen();
        Self::with_nonce(hash, username, password, &B64.encode(raw))
    }

    pub(crate) fn with_nonce(
        hash: ScramHash,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Scram {
        Scram {
            hash,
            username: username.to_string(),
            password: password.to_string(),
            nonce: nonce.to_string(),
            state: State::Start,
        }
    }
}

impl Mechanism for Scram {
    fn step(&mut self, from_server: &[u8]) -> Result<Step, String> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => {
                let bare = format!("n={},r={}", saslname(&self.username), self.nonce);
                let first = format!("n,,{bare}");
                self.state = State::SentFirst { bare };
                Ok(Step::Send(first.into_bytes()))
            }
            State::SentFirst { bare } => {
                let server_first = std::str::from_utf8(from_server)
                    .map_err(|_| "the server's first message is not UTF-8".to_string())?;
                let mut nonce = None;
                let mut salt = None;
                let mut iterations = None;
                for part in server_first.split(',') {
                    match part.split_at_checked(2) {
                        Some(("r=", v)) => nonce = Some(v),
                        Some(("s=", v)) => salt = Some(v),
                        Some(("i=", v)) => iterations = Some(v),
                        Some(("e=", v)) => return Err(format!("the server said `{v}`")),
                        _ => {}
                    }
                }
                let nonce = nonce.ok_or("the server sent no nonce")?;
                if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
                    return Err("the server's nonce does not extend ours".into());
                }
                let salt = B64
                    .decode(salt.ok_or("the server sent no salt")?)
                    .map_err(|_| "the server's salt is not base64".to_string())?;
                let iterations: u32 = iterations
                    .ok_or("the server sent no iteration count")?
                    .parse()
                    .map_err(|_| "the server's iteration count is not a number".to_string())?;
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                    return Err(format!(
                        "the server asks for {iterations} iterations, outside Kafka's \
                         {MIN_ITERATIONS} to {MAX_ITERATIONS}"
                    ));
                }
                let h = self.hash;
                let salted = h.salted_password(&self.password, &salt, iterations);
                let client_key = h.hmac(&salted, b"Client Key");
                let stored_key = h.hash(&client_key);
                let without_proof = format!("c=biws,r={nonce}");
                let auth_message = format!("{bare},{server_first},{without_proof}");
                let signature = h.hmac(&stored_key, auth_message.as_bytes());
                let proof: Vec<u8> = client_key
                    .iter()
                    .zip(&signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                let server_key = h.hmac(&salted, b"Server Key");
                self.state = State::SentFinal {
                    server_signature: h.hmac(&server_key, auth_message.as_bytes()),
                };
                Ok(Step::Send(
                    format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
                ))
            }
            State::SentFinal { server_signature } => {
                let server_final = std::str::from_utf8(from_server)
                    .map_err(|_| "the server's final message is not UTF-8".to_string())?;
                if let Some(e) = server_final.strip_prefix("e=") {
                    return Err(format!("the server said `{e}`"));
                }
                let v = server_final
                    .split(',')
                    .find_map(|p| p.strip_prefix("v="))
                    .ok_or("the server's final message has no signature")?;
                if B64.decode(v).ok().as_deref() != Some(&server_signature[..]) {
                    return Err("the server's signature is wrong: it does not know the password (or is not the broker)".into());
                }
                Ok(Step::Done)
            }
            State::Done => Ok(Step::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: the SCRAM-SHA-256 exchange for user "user",
    /// password "pencil".
    #[test]
    fn rfc7677_sha256_test_vector() {
        let mut s = Scram::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            s.step(b"").unwrap(),
            Step::Send(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec())
        );
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            s.step(server_first).unwrap(),
            Step::Send(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                    .to_vec()
            )
        );
        assert_eq!(
            s.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            Step::Done
        );
    }

    #[test]
    fn a_wrong_server_signature_or_an_error_is_refused() {
        let first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let run = |last: &[u8]| {
            let mut s =
                Scram::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
            s.step(b"").unwrap();
            s.step(first).unwrap();
            s.step(last)
        };
        assert!(run(b"v=AAAAdBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err()
            .contains("signature is wrong"));
        assert!(run(b"e=invalid-proof")
            .unwrap_err()
            .contains("invalid-proof"));
        // A nonce that does not extend ours, and too few iterations.
        let mut s = Scram::with_nonce(ScramHash::Sha512, "u", "p", "abc");
        s.step(b"").unwrap();
        assert!(s
            .step(b"r=xyz123,s=AAAA,i=4096")
            .unwrap_err()
            .contains("nonce"));
        let mut s = Scram::with_nonce(ScramHash::Sha512, "u", "p", "abc");
        s.step(b"").unwrap();
        assert!(s
            .step(b"r=abc123,s=AAAA,i=10")
            .unwrap_err()
            .contains("iterations"));
        // Nor so many that PBKDF2 would stall the connection.
        let mut s = Scram::with_nonce(ScramHash::Sha512, "u", "p", "abc");
        s.step(b"").unwrap();
        assert!(s
            .step(b"r=abc123,s=AAAA,i=4000000000")
            .unwrap_err()
            .contains("outside Kafka's 4096 to 16384"));
    }

    #[test]
    fn usernames_are_escaped() {
        let mut s = Scram::with_nonce(ScramHash::Sha512, "a=b,c", "p", "n");
        assert_eq!(
            s.step(b"").unwrap(),
            Step::Send(b"n,,n=a=3Db=2Cc,r=n".to_vec())
        );
    }
}
