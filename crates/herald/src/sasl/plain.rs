//! SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL password`.

use super::{Mechanism, Step};

pub(crate) struct Plain {
    message: Option<Vec<u8>>,
}

impl Plain {
    pub(crate) fn new(username: &str, password: &str) -> Plain {
        let mut m = Vec::with_capacity(username.len() + password.len() + 2);
        m.push(0);
        m.extend_from_slice(username.as_bytes());
        m.push(0);
        m.extend_from_slice(password.as_bytes());
        Plain { message: Some(m) }
    }
}

impl Mechanism for Plain {
    fn step(&mut self, _from_server: &[u8]) -> Result<Step, String> {
        Ok(match self.message.take() {
            Some(m) => Step::Send(m),
            None => Step::Done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_then_done() {
        // RFC 4616 section 4's example, without an authorization identity.
        let mut p = Plain::new("tim", "tanstaaftanstaaf");
        assert_eq!(
            p.step(b"").unwrap(),
            Step::Send(b"\0tim\0tanstaaftanstaaf".to_vec())
        );
        assert_eq!(p.step(b"").unwrap(), Step::Done);
    }
}
