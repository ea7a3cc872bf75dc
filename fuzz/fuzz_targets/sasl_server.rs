//! SASL server messages are input from the network: each mechanism's
//! client (SCRAM-SHA-256/512, OAUTHBEARER, AWS_MSK_IAM, PLAIN) given any
//! bytes as the server's messages returns an error or its next message,
//! never panics and never stalls (a server asking SCRAM for billions of
//! PBKDF2 iterations is refused).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    herald::fuzzing::sasl_steps(data);
});
