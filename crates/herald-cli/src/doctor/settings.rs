//! The doctor's settings: a team's Java `producer.properties` read as
//! `java.util.Properties` reads it, sorted into what herald's producer
//! takes, what the schema registry takes (Confluent's names), and what only
//! the Java client knows (reported, not failed); and shown back with every
//! value that may be a secret as `***`.

/// The settings, sorted.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    /// Producer properties by Kafka's names.
    pub producer: Vec<(String, String)>,
    /// `schema.registry.url`, if the file has it.
    pub registry_url: Option<String>,
    /// Registry settings by Confluent's names (basic.auth.user.info…).
    pub registry: Vec<(String, String)>,
    /// Java-only settings left out, each with a note.
    pub ignored: Vec<String>,
    /// `value.subject.name.strategy`, if set.
    pub value_subject_strategy: Option<String>,
}

/// Java client settings herald has no use for, and what to do instead.
fn java_only(key: &str, value: &str) -> Option<String> {
    let note = match key {
        "key.serializer" | "value.serializer" => {
            "the Java serializer class; herald serializes itself"
        }
        "sasl.jaas.config" if value.contains("IAMLoginModule") => {
            "IAMLoginModule: herald's AWS_MSK_IAM takes credentials from the environment or \
             ~/.aws/credentials (awsProfileName is read as sasl.aws.profile); awsRoleArn is not \
             supported: assume the role first and export its credentials"
        }
        "sasl.jaas.config" => "a JAAS line; give sasl.username and sasl.password instead",
        "sasl.client.callback.handler.class" | "sasl.login.callback.handler.class" => {
            "a Java class"
        }
        k if k.starts_with("ssl.truststore.") => {
            "a Java truststore; give the CA as PEM with ssl.ca.location"
        }
        k if k.starts_with("ssl.keystore.") || k == "ssl.key.password" => {
            "a Java keystore; give ssl.certificate.location and ssl.key.location (an unencrypted PEM key)"
        }
        "interceptor.classes" | "partitioner.class" | "metric.reporters" => "a Java class",
        "client.dns.lookup" => "the Java client's DNS policy; herald uses every address a name resolves to",
        "ssl.protocol" | "ssl.enabled.protocols" | "ssl.cipher.suites" => {
            "rustls offers TLS 1.2 and 1.3 with its own safe cipher suites"
        }
        "auto.register.schemas"
        | "use.latest.version"
        | "use.schema.id"
        | "normalize.schemas"
        | "latest.compatibility.strict"
        | "specific.avro.reader"
        | "key.subject.name.strategy"
        | "value.subject.name.strategy" => {
            "a serializer setting; the doctor checks the schema itself"
        }
        _ => return None,
    };
    Some(format!("{key} ({note})"))
}

/// Sort `props` (in order; later wins) into the [`Settings`].
pub(crate) fn sort(props: Vec<(String, String)>) -> Settings {
    let mut s = Settings::default();
    for (k, v) in props {
        if k == "schema.registry.url" {
            s.registry_url = Some(v);
        } else if let Some(rest) = k.strip_prefix("schema.registry.basic.auth.") {
            // Confluent's alias of basic.auth.*.
            s.registry.push((format!("basic.auth.{rest}"), v));
        } else if k.starts_with("schema.registry.")
            || k.starts_with("basic.auth.")
            || k.starts_with("bearer.auth.")
        {
            s.registry.push((k, v));
        } else if let Some(note) = java_only(&k, &v) {
            if k == "value.subject.name.strategy" {
                s.value_subject_strategy = Some(v.clone());
            }
            if k == "sasl.jaas.config" {
                if let Some(profile) = jaas_option(&v, "awsProfileName") {
                    s.producer.push(("sasl.aws.profile".into(), profile));
                }
            }
            s.ignored.push(note);
        } else {
            s.producer.push((k, v));
        }
    }
    s
}

/// `name="value"` (or `name=value`) out of a JAAS line.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let at = jaas.find(&format!("{name}="))? + name.len() + 1;
    let rest = &jaas[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => Some(quoted[..quoted.find('"')?].to_string()),
        None => Some(
            rest.split(|c: char| c.is_whitespace() || c == ';')
                .next()?
                .to_string(),
        )
        .filter(|v| !v.is_empty()),
    }
}

/// The key/value pairs of a properties file as `java.util.Properties`
/// reads them: `#`/`!` comments, `=`, `:` or white space between key and
/// value, a `\` at the end of a line continues it, `\`-escapes.
pub(crate) fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            if lines.clone().next().is_some() {
                continue;
            }
        } else {
            logical.push_str(line);
        }
        out.push(split_pair(&std::mem::take(&mut logical)));
    }
    out
}

/// A logical line's key and value, unescaped.
fn split_pair(line: &str) -> (String, String) {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    key.push(unescape(n));
                }
            }
            '=' | ':' => break,
            c if c.is_whitespace() => {
                // White space, then at most one `=` or `:`.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('=') | Some(':')) {
                    chars.next();
                }
                break;
            }
            c => key.push(c),
        }
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    // The value: escapes decoded; trailing white space dropped (Kafka's
    // and Confluent's configs trim values) unless escaped.
    let mut value = String::new();
    let mut kept = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        value.push(ch);
                    }
                    kept = value.len();
                }
                Some(n) => {
                    value.push(unescape(n));
                    kept = value.len();
                }
                None => {}
            },
            c => value.push(c),
        }
    }
    let end = value.trim_end().len().max(kept);
    value.truncate(end);
    (key, value)
}

fn unescape(c: char) -> char {
    match c {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\u{c}',
        c => c,
    }
}

/// Settings whose values are shown; any other value (a password, a key,
/// a token, a misspelt key that may hold one) is `***`.
const SHOWN: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.aws.region",
    "sasl.aws.profile",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
    "acks",
    "enable.idempotence",
    "compression.type",
    "linger.ms",
    "batch.size",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "max.block.ms",
    "socket.connection.setup.timeout.ms",
    "retries",
    "max.in.flight.requests.per.connection",
    "key.serializer",
    "value.serializer",
];

/// `key=value`, or `key=***` unless the key is known to hold no secret.
pub(crate) fn shown(k: &str, v: &str) -> String {
    if SHOWN.contains(&k) {
        format!("{k}={v}")
    } else {
        format!("{k}=***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_syntax() {
        let text = "# comment\n! another\nbootstrap.servers = a:9098,\\\n    b:9098\n\
                    security.protocol:SASL_SSL\nsasl.mechanism AWS_MSK_IAM\n\
                    sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required \\\n  \
                    awsProfileName=\"bus\";\nkey\\:with\\=escapes=v\\tx\n";
        let p = parse_properties(text);
        assert_eq!(p[0], ("bootstrap.servers".into(), "a:9098,b:9098".into()));
        assert_eq!(p[1], ("security.protocol".into(), "SASL_SSL".into()));
        assert_eq!(p[2], ("sasl.mechanism".into(), "AWS_MSK_IAM".into()));
        assert!(
            p[3].1.ends_with("required awsProfileName=\"bus\";"),
            "{:?}",
            p[3]
        );
        assert_eq!(p[4], ("key:with=escapes".into(), "v\tx".into()));
        let p = parse_properties("sasl.password=secret  \nsasl.username=al\\u0069ce\\ \n");
        assert_eq!(p[0].1, "secret", "trailing spaces trimmed, as Kafka trims");
        assert_eq!(p[1].1, "alice ", "an escaped space is kept");
        assert_eq!(
            jaas_option("x required awsProfileName=bus;", "awsProfileName").as_deref(),
            Some("bus")
        );
    }

    #[test]
    fn seed_004s_java_settings_are_sorted() {
        let s = sort(vec![
            ("bootstrap.servers".into(), "b:9098".into()),
            (
                "key.serializer".into(),
                "io.confluent.kafka.serializers.KafkaAvroSerializer".into(),
            ),
            ("schema.registry.url".into(), "https://registry:8081".into()),
            ("basic.auth.user.info".into(), "u:p".into()),
            ("auto.register.schemas".into(), "false".into()),
            (
                "ssl.truststore.location".into(),
                "/tmp/kafka.client.truststore.jks".into(),
            ),
            (
                "sasl.jaas.config".into(),
                "software.amazon.msk.auth.iam.IAMLoginModule required awsProfileName=\"bus\";"
                    .into(),
            ),
        ]);
        assert_eq!(
            s.producer,
            vec![
                ("bootstrap.servers".to_string(), "b:9098".to_string()),
                ("sasl.aws.profile".to_string(), "bus".to_string())
            ]
        );
        assert_eq!(s.registry_url.as_deref(), Some("https://registry:8081"));
        assert_eq!(
            s.registry,
            vec![("basic.auth.user.info".to_string(), "u:p".to_string())]
        );
        assert_eq!(s.ignored.len(), 4);
        assert!(s
            .ignored
            .iter()
            .any(|n| n.contains("awsRoleArn is not supported")));
        assert!(s.ignored.iter().any(|n| n.contains("ssl.ca.location")));
    }

    #[test]
    fn only_known_harmless_values_are_shown() {
        assert_eq!(shown("sasl.password", "s3cret"), "sasl.password=***");
        assert_eq!(shown("sasl.pasword", "s3cret"), "sasl.pasword=***");
        assert_eq!(shown("sasl.username", "alice"), "sasl.username=alice");
        assert_eq!(shown("bootstrap.servers", "a:1"), "bootstrap.servers=a:1");
    }
}
