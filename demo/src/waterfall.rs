//! A trace drawn in the terminal: one line per span, indented by depth, with its service, name,
//! kind, duration and a bar on the trace's time axis; errors highlighted, exception messages,
//! log records (a few per span) and links shown under their span.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::IsTerminal as _;

use opentelemetry_semantic_conventions::attribute as semconv;

use crate::receiver::SpanRecord;

/// Width of the time axis, in characters.
const BAR: usize = 40;
/// Widest span column (indentation and name), in characters.
const NAME_MAX: usize = 64;
/// Log records drawn under a span; the rest are counted.
const LOGS_SHOWN: usize = 3;

/// ANSI colours, or none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Colours when standard output is a terminal and `NO_COLOR` is not set.
    pub(crate) fn detect() -> Style {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        Style { color }
    }

    #[cfg(test)]
    pub(crate) fn plain() -> Style {
        Style { color: false }
    }

    pub(crate) fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn red(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    fn service(self, service: &str) -> &'static str {
        match service {
            "server1" => "36",
            "server2" => "35",
            "server3" => "33",
            _ => "34",
        }
    }
}

/// `0.42 ms`, `12.3 ms`, `1.25 s`.
pub(crate) fn duration(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// The name shown for a span: a database span says which database, an HTTP call where it goes.
fn label(s: &SpanRecord) -> String {
    if let Some(system) = s.attr(semconv::DB_SYSTEM_NAME)
        && !s.name.starts_with(system)
    {
        return format!("{system} {}", s.name);
    }
    if s.kind == "client"
        && let Some(url) = s.attr(semconv::URL_FULL)
    {
        let target = url.split_once("://").map_or(url, |(_, rest)| rest);
        let target = target.split_once('?').map_or(target, |(path, _)| path);
        return format!("{} {target}", s.name);
    }
    s.name.clone()
}

/// Why a span failed: its status's description, else (an HTTP error, whose status has none, the
/// code saying it) `HTTP {status code}`, else its `error.type`.
fn why(s: &SpanRecord) -> String {
    if !s.status_message.is_empty() {
        return s.status_message.clone();
    }
    if let Some(code) = s.attr("http.response.status_code") {
        return format!("HTTP {code}");
    }
    s.attr("error.type").unwrap_or_default().to_owned()
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The spans in drawing order, each with its depth: depth-first from the root, children by start
/// time; spans whose parent never arrived come last, at depth 0.
fn order(spans: &[SpanRecord]) -> Vec<(usize, &SpanRecord)> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&SpanRecord>> = HashMap::new();
    let mut tops = Vec::new();
    for s in spans {
        if s.parent_id.is_empty() || !ids.contains(s.parent_id.as_str()) {
            tops.push(s);
        } else {
            children.entry(s.parent_id.as_str()).or_default().push(s);
        }
    }
    // Roots first, then orphans; each group by start time.
    tops.sort_by(|a, b| {
        (!a.parent_id.is_empty(), a.start_ns).cmp(&(!b.parent_id.is_empty(), b.start_ns))
    });
    for list in children.values_mut() {
        list.sort_by(|a, b| (a.start_ns, &a.name).cmp(&(b.start_ns, &b.name)));
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, &SpanRecord)> = tops.into_iter().rev().map(|s| (0, s)).collect();
    while let Some((depth, s)) = stack.pop() {
        out.push((depth, s));
        if let Some(kids) = children.get(s.span_id.as_str()) {
            stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
        }
    }
    out
}

/// Draws `spans` (one trace). Every line starts with two spaces.
pub(crate) fn render(spans: &[SpanRecord], style: Style) -> String {
    let mut out = String::new();
    if spans.is_empty() {
        out.push_str("  (no spans received)\n");
        return out;
    }
    let t0 = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let t1 = spans.iter().map(|s| s.end_ns).max().unwrap_or(t0);
    let total = (t1 - t0).max(1);
    let rows = order(spans);
    let labels: Vec<String> = rows
        .iter()
        .map(|(d, s)| clip(&format!("{}{}", "  ".repeat(*d), label(s)), NAME_MAX))
        .collect();
    let name_w = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let service_w = rows
        .iter()
        .map(|(_, s)| s.service.len())
        .max()
        .unwrap_or(7)
        .max(7);

    let axis_end = duration(total);
    let axis = format!("0{}{axis_end}", " ".repeat(BAR + 1 - axis_end.len()));
    let _ = writeln!(
        out,
        "  {}",
        style.dim(&format!(
            "{:<service_w$}  {:<name_w$}  {:<6}  {:>9}  {axis}",
            "service", "span", "kind", "duration"
        ))
    );
    for ((_, s), name) in rows.iter().zip(&labels) {
        let from = ((s.start_ns - t0) as u128 * BAR as u128 / total as u128) as usize;
        let to = ((s.end_ns - t0) as u128 * BAR as u128).div_ceil(total as u128) as usize;
        let from = from.min(BAR - 1);
        let to = to.clamp(from + 1, BAR);
        let bar = format!(
            "{}{}{}",
            " ".repeat(from),
            "█".repeat(to - from),
            " ".repeat(BAR - to)
        );
        let service = style.paint(
            style.service(&s.service),
            &format!("{:<service_w$}", s.service),
        );
        let name = format!("{name:<name_w$}");
        let dur = format!("{:>9}", duration(s.end_ns - s.start_ns));
        if s.error {
            let _ = writeln!(
                out,
                "  {service}  {}  {:<6}  {dur}  {}  {}",
                style.red(&name),
                s.kind,
                style.red(&format!("│{bar}│")),
                style.red(&format!("✗ {}", clip(&why(s), 100))),
            );
        } else {
            let _ = writeln!(out, "  {service}  {name}  {:<6}  {dur}  │{bar}│", s.kind);
        }
        for e in s.events.iter().filter(|e| e.name == "exception") {
            let kind = e.attr(semconv::EXCEPTION_TYPE).unwrap_or("exception");
            let message = e.attr(semconv::EXCEPTION_MESSAGE).unwrap_or("");
            let pad = " ".repeat(
                service_w + 2 + name.chars().count() - name.trim_start().chars().count() + 2,
            );
            let _ = writeln!(
                out,
                "  {pad}{}",
                style.red(&format!("↳ exception ({kind}): {}", clip(message, 160)))
            );
        }
        let pad = " "
            .repeat(service_w + 2 + name.chars().count() - name.trim_start().chars().count() + 2);
        let logs: Vec<_> = s.events.iter().filter(|e| e.name == "log").collect();
        for e in logs.iter().take(LOGS_SHOWN) {
            let level = e.attr("level").unwrap_or("LOG");
            let line = format!(
                "↳ log {level}: {}",
                clip(e.attr("message").unwrap_or(""), 120)
            );
            let line = match level {
                "ERROR" => style.red(&line),
                _ => style.dim(&line),
            };
            let _ = writeln!(out, "  {pad}{line}");
        }
        if logs.len() > LOGS_SHOWN {
            let more = format!("↳ … {} more log records", logs.len() - LOGS_SHOWN);
            let _ = writeln!(out, "  {pad}{}", style.dim(&more));
        }
        for link in &s.links {
            let to = match spans.iter().find(|o| &o.span_id == link) {
                Some(o) => format!("{} {}", o.service, label(o)),
                None => format!("span {link}"),
            };
            let _ = writeln!(out, "  {pad}{}", style.dim(&format!("↳ link → {to}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::{EventRecord, record};

    #[test]
    fn draws_a_tree_with_errors_and_exceptions() {
        let root = record(
            "a",
            "",
            "server1",
            "GET /scenario/http-panic",
            "server",
            (0, 10_000_000),
        );
        let mut call = record("b", "a", "server1", "GET", "client", (1_000_000, 9_000_000));
        call.attributes
            .push(("url.full".into(), "http://127.0.0.1:1324/http-panic".into()));
        call.error = true;
        // An HTTP error's status has no description: the status code says it.
        call.attributes
            .push(("http.response.status_code".into(), "500".into()));
        let mut panic = record(
            "c",
            "b",
            "server2",
            "GET /http-panic",
            "server",
            (2_000_000, 8_000_000),
        );
        panic.error = true;
        panic.status_message = "boom".into();
        panic.events.push(EventRecord {
            name: "exception".into(),
            attributes: vec![
                ("exception.type".into(), "panic".into()),
                ("exception.message".into(), "boom".into()),
            ],
        });
        let orphan = record("d", "zz", "server3", "lost", "internal", (0, 1));
        let text = render(&[panic, orphan, call, root], Style::plain());
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("service") && lines[0].contains("10.0 ms"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("  server1  GET /scenario/http-panic"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("  server1    GET 127.0.0.1:1324/http-panic"),
            "{text}"
        );
        assert!(lines[2].ends_with("✗ HTTP 500"), "{text}");
        assert!(
            lines[3].starts_with("  server2      GET /http-panic"),
            "{text}"
        );
        assert!(
            lines[4]
                .trim_start()
                .starts_with("↳ exception (panic): boom"),
            "{text}"
        );
        assert!(lines[5].starts_with("  server3  lost"), "{text}");
        // The root's bar spans the whole axis; the call's starts later.
        assert!(
            lines[1].contains(&format!("│{}│", "█".repeat(BAR))),
            "{text}"
        );
        assert!(
            lines[2].contains(&format!("│    {}", "█".repeat(32))),
            "{text}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(420_000), "0.42 ms");
        assert_eq!(duration(12_340_000), "12.3 ms");
        assert_eq!(duration(1_250_000_000), "1.25 s");
    }

    #[test]
    fn draws_log_records_capped_and_links() {
        let root = record("a", "", "server3", "demo.Server3/Work", "server", (0, 10));
        let mut waiter = record(
            "b",
            "a",
            "server3",
            "lock connection-slot",
            "internal",
            (1, 9),
        );
        waiter.links.push("a".into());
        waiter.links.push("zz".into());
        let log = |level: &str, message: &str| EventRecord {
            name: "log".into(),
            attributes: vec![
                ("level".into(), level.into()),
                ("message".into(), message.into()),
            ],
        };
        waiter.events = vec![
            log("INFO", "one"),
            log("WARN", "two"),
            log("ERROR", "three"),
            log("INFO", "four"),
            log("INFO", "five"),
        ];
        let drawn = render(&[root, waiter], Style::plain());
        let under: Vec<&str> = drawn.lines().skip(3).map(str::trim).collect();
        assert_eq!(
            under,
            [
                "↳ log INFO: one",
                "↳ log WARN: two",
                "↳ log ERROR: three",
                "↳ … 2 more log records",
                "↳ link → server3 demo.Server3/Work",
                "↳ link → span zz",
            ],
            "{drawn}"
        );
    }
}
