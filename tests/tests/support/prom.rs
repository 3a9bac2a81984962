//! A small reader of the Prometheus / OpenMetrics text that `/metrics` serves: every line is
//! checked for syntax, samples are looked up by name and exact label set.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the whole text; panics, quoting the line, on anything malformed.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "text after `# EOF`: {line:?}");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            assert!(
                matches!(kind, "HELP" | "TYPE" | "UNIT") && valid_name(name),
                "bad comment line {line:?}"
            );
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    matches!(
                        t,
                        "counter" | "gauge" | "histogram" | "info" | "unknown" | "summary"
                    ),
                    "bad type in {line:?}"
                );
            }
            continue;
        }
        assert!(!line.is_empty(), "empty line in the exposition");
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("no `}}` in {line:?}"));
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close], line),
                    &line[close + 1..],
                )
            }
            None => {
                let sp = line
                    .find(' ')
                    .unwrap_or_else(|| panic!("no value in {line:?}"));
                (&line[..sp], BTreeMap::new(), &line[sp..])
            }
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        let value = rest
            .trim()
            .split(' ')
            .next()
            .and_then(|v| match v {
                "+Inf" => Some(f64::INFINITY),
                "-Inf" => Some(f64::NEG_INFINITY),
                v => v.parse().ok(),
            })
            .unwrap_or_else(|| panic!("bad value in {line:?}"));
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    assert!(eof, "the exposition does not end with `# EOF`");
    out
}

fn parse_labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let eq = rest
            .find("=\"")
            .unwrap_or_else(|| panic!("bad labels in {line:?}"));
        let key = &rest[..eq];
        assert!(valid_name(key), "bad label name {key:?} in {line:?}");
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break eq + 2 + i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape in {line:?}"),
                },
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            out.insert(key.to_owned(), value).is_none(),
            "label {key} twice in {line:?}"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

/// The value of the sample `name` with exactly `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// Every sample named `name`.
pub fn all<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == name).collect()
}

/// The metrics text of `service`, parsed.
pub fn scrape(service: &str) -> Vec<Sample> {
    parse(&tracer_runtime::metrics::text(service).expect("the service is installed"))
}

/// Waits (servers end their spans just after answering) until the `_count` of `name` with
/// `labels` in `service` is `n`; panics with the exposition otherwise.
pub async fn wait_count(service: &str, name: &str, labels: &[(&str, &str)], n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = scrape(service);
        if value(&samples, name, labels) == Some(n) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{name}{labels:?} is {:?}, want {n}; exposition:\n{}",
                value(&samples, name, labels),
                tracer_runtime::metrics::text(service).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
