//! AWS Signature Version 4, the query-string ("presigned") form that
//! AWS_MSK_IAM authentication carries: a canonical request, a string to
//! sign, a signing key derived from the secret, date, region and service,
//! and an HMAC-SHA256 signature. Written from AWS's SigV4 documentation
//! and checked against its published examples in the tests below.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name, as it appears in `X-Amz-Algorithm`.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A UTC instant split the way SigV4 writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmzDate {
    /// `YYYYMMDD`, for the credential scope.
    pub(crate) date: String,
    /// `YYYYMMDDTHHMMSSZ`, for `X-Amz-Date`.
    pub(crate) date_time: String,
}

impl AmzDate {
    /// Format seconds since the Unix epoch (UTC).
    pub(crate) fn from_unix(secs: u64) -> AmzDate {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let date = format!("{y:04}{m:02}{d:02}");
        let date_time = format!(
            "{date}T{:02}{:02}{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
        AmzDate { date, date_time }
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by
/// the well-known era arithmetic (no calendar crate needed for one date).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// URI-encode as SigV4 asks: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`
/// with upper-case hex (so `/`, `:` and `=` are encoded too).
pub(crate) fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query parameters sorted by encoded name and joined as SigV4's canonical
/// query string.
pub(crate) fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The lower-case hex SHA-256 of `data`.
pub(crate) fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The credential scope: `date/region/service/aws4_request`.
pub(crate) fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The signing key: HMAC chained over date, region, service and
/// `aws4_request`, starting from `AWS4` + the secret.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The string to sign for a canonical request.
pub(crate) fn string_to_sign(date_time: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{date_time}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign` with `key`.
pub(crate) fn signature(key: &[u8], string_to_sign: &str) -> String {
    hex(&hmac(key, string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example of deriving a signing key (the IAM
    /// "Examples of how to derive a signing key" page).
    #[test]
    fn signing_key_matches_the_aws_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// The `get-vanilla` case of AWS's SigV4 test suite: a GET of `/` with
    /// two headers, signed in the Authorization header.
    #[test]
    fn get_vanilla_from_the_aws_test_suite() {
        let canonical = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let scope = scope("20150830", "us-east-1", "service");
        let sts = string_to_sign("20150830T123600Z", &scope, canonical);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        assert_eq!(
            signature(&key, &sts),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// AWS's S3 example of a presigned URL (query-string authentication):
    /// GET /test.txt on examplebucket, valid 86400 s, unsigned payload.
    #[test]
    fn presigned_url_from_the_s3_example() {
        let date = AmzDate::from_unix(1_369_353_600); // 2013-05-24T00:00:00Z
        assert_eq!(date.date, "20130524");
        assert_eq!(date.date_time, "20130524T000000Z");
        let scope = scope(&date.date, "us-east-1", "s3");
        let credential = format!("AKIAIOSFODNN7EXAMPLE/{scope}");
        let query = canonical_query(&[
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", &credential),
            ("X-Amz-Date", &date.date_time),
            ("X-Amz-Expires", "86400"),
            ("X-Amz-SignedHeaders", "host"),
        ]);
        assert_eq!(
            query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        );
        let canonical = format!(
            "GET\n/test.txt\n{query}\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
        );
        let sts = string_to_sign(&date.date_time, &scope, &canonical);
        assert_eq!(
            hex_sha256(canonical.as_bytes()),
            "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
        );
        // This example's secret has `/` where the others have `+`.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            &date.date,
            "us-east-1",
            "s3",
        );
        assert_eq!(
            signature(&key, &sts),
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn dates_across_leap_years_and_centuries() {
        assert_eq!(AmzDate::from_unix(0).date_time, "19700101T000000Z");
        // 2000-02-29T23:59:59Z and the second after it.
        assert_eq!(
            AmzDate::from_unix(951_868_799).date_time,
            "20000229T235959Z"
        );
        assert_eq!(
            AmzDate::from_unix(951_868_800).date_time,
            "20000301T000000Z"
        );
        // 2015-08-30T12:36:00Z, the test suite's date.
        assert_eq!(
            AmzDate::from_unix(1_440_938_160).date_time,
            "20150830T123600Z"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes() {
        assert_eq!(
            uri_encode("kafka-cluster:Connect"),
            "kafka-cluster%3AConnect"
        );
        assert_eq!(uri_encode("a/b=c d~e_f.g+"), "a%2Fb%3Dc%20d~e_f.g%2B");
    }
}
