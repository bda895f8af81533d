//! Offline analyzer behind `veza n1 analyze [FILE]`: reads NDJSON request
//! traces, runs the same recorder and detector as production, and reports
//! findings as text or JSON lines.
//!
//! One request per line (blank lines are skipped):
//!
//! ```json
//! {"route": "/api/v1/playlists/{id}", "method": "GET",
//!  "statements": [{"sql": "SELECT ...", "params": [1], "start_us": 0, "duration_us": 120}]}
//! ```
//!
//! `method`, `params`, `start_us` and `duration_us` are optional. Absent (or
//! `null`) `params` means unknown parameters: repeats count as N+1, never as
//! redundant. Present `params` (any JSON value) are compared through a hash of
//! their canonical JSON text (object keys sorted). Statements of one shape
//! whose `[start_us, start_us + duration_us)` intervals overlap mark the
//! finding `concurrent`. Parameter values are never printed, not even in
//! error messages.
//!
//! Statements are recorded in order of completion, as the live recorder sees
//! them (it records a statement when it completes): by end
//! (`start_us + duration_us`), then start; a statement without `start_us`
//! comes right after the statement before it in the input, and ties keep the
//! input order (so untimed input keeps its order). That order is what the
//! `sequence` detection reads, so a trace and the live service give the same
//! findings.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use serde_json::Value;

use super::detector::{DetectorConfig, Finding, Kind, RequestSummary, detect};
use super::fingerprint::fnv1a64;
use super::recorder::Accumulator;

/// Error reading a trace, naming the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The input could not be read (including invalid UTF-8).
    #[error("line {line}: read error: {source}")]
    Io {
        line: usize,
        #[source]
        source: io::Error,
    },
    /// The line is not valid JSON.
    #[error("line {line}: malformed JSON: {message}")]
    Malformed { line: usize, message: String },
    /// Valid JSON, but not a valid request (missing field, wrong type).
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
}

impl TraceError {
    /// 1-based line number of the error.
    pub fn line(&self) -> usize {
        match self {
            TraceError::Io { line, .. }
            | TraceError::Malformed { line, .. }
            | TraceError::Invalid { line, .. } => *line,
        }
    }
}

/// Result of [`analyze`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Findings of every request, in input order.
    pub findings: Vec<Finding>,
    /// Requests (non-blank lines) analysed.
    pub requests: u64,
    /// Statements analysed.
    pub statements: u64,
}

struct Statement<'a> {
    sql: &'a str,
    params_hash: Option<u64>,
    start_us: Option<u64>,
    duration_us: Option<u64>,
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn opt_u64(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            format!(
                "field `{path}.{key}` must be a non-negative integer, got {}",
                type_name(v)
            )
        }),
    }
}

fn parse_statements(v: &Value) -> Result<Vec<Statement<'_>>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("field `statements` must be an array, got {}", type_name(v)))?;
    arr.iter()
        .enumerate()
        .map(|(i, s)| {
            let path = format!("statements[{i}]");
            let obj = s
                .as_object()
                .ok_or_else(|| format!("`{path}` must be an object, got {}", type_name(s)))?;
            let sql = match obj.get("sql") {
                None => return Err(format!("missing field `{path}.sql`")),
                Some(Value::String(s)) => s.as_str(),
                Some(v) => {
                    return Err(format!(
                        "field `{path}.sql` must be a string, got {}",
                        type_name(v)
                    ));
                }
            };
            let params_hash = match obj.get("params") {
                None | Some(Value::Null) => None,
                // Display of a Value is compact JSON; maps are sorted (no
                // `preserve_order`), so this text is canonical.
                Some(p) => Some(fnv1a64(p.to_string().as_bytes())),
            };
            Ok(Statement {
                sql,
                params_hash,
                start_us: opt_u64(obj, "start_us", &path)?,
                duration_us: opt_u64(obj, "duration_us", &path)?,
            })
        })
        .collect()
}

/// Strips serde_json's " at line L column C" suffix (always line 1 here)
/// and puts the column in its place.
pub(super) fn json_error_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let msg = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m);
    format!("{msg} (column {})", e.column())
}

fn analyze_line(
    line: &str,
    lineno: usize,
    cfg: &DetectorConfig,
    report: &mut Report,
) -> Result<(), TraceError> {
    let v: Value = serde_json::from_str(line).map_err(|e| TraceError::Malformed {
        line: lineno,
        message: json_error_message(&e),
    })?;
    analyze_value(&v, lineno, cfg, report)
}

/// Analyses one request already parsed from JSON (an NDJSON line, or a request
/// built from OTLP spans by [`super::otlp`]); errors name `lineno`.
pub(super) fn analyze_value(
    v: &Value,
    lineno: usize,
    cfg: &DetectorConfig,
    report: &mut Report,
) -> Result<(), TraceError> {
    let invalid = |message: String| TraceError::Invalid {
        line: lineno,
        message,
    };
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("expected a JSON object, got {}", type_name(v))))?;
    let route = match obj.get("route") {
        None => return Err(invalid("missing field `route`".into())),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(invalid(format!(
                "field `route` must be a string, got {}",
                type_name(v)
            )));
        }
    };
    let method = match obj.get("method") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(invalid(format!(
                "field `method` must be a string, got {}",
                type_name(v)
            )));
        }
    };
    let statements = parse_statements(
        obj.get("statements")
            .ok_or_else(|| invalid("missing field `statements`".into()))?,
    )
    .map_err(invalid)?;

    let summary = summarize(&statements, route, method);
    report.requests += 1;
    report.statements += statements.len() as u64;
    report.findings.extend(detect(&summary, cfg));
    Ok(())
}

/// The summary the live recorder would make of `statements`: shapes resolved
/// in input order (it resolves a statement's shape when the statement
/// starts), statements recorded in completion order (overlaps are found
/// there, by the same code).
fn summarize(statements: &[Statement<'_>], route: String, method: String) -> RequestSummary {
    let mut acc = Accumulator::default();
    let shapes: Vec<Option<usize>> = statements
        .iter()
        .map(|st| acc.shape_index(st.sql))
        .collect();
    for i in completion_order(statements) {
        let st = &statements[i];
        let dur = st.duration_us.unwrap_or(0);
        let span = st.start_us.map(|start| (start, start.saturating_add(dur)));
        acc.record_shape(shapes[i], st.params_hash, Duration::from_micros(dur), span);
    }
    let count = u32::try_from(statements.len()).unwrap_or(u32::MAX);
    acc.summary(route, method, count)
}

/// Indices of `statements` in completion order (see the module documentation).
fn completion_order(statements: &[Statement<'_>]) -> Vec<usize> {
    let mut key = (0u64, 0u64);
    let mut keyed: Vec<((u64, u64), usize)> = statements
        .iter()
        .enumerate()
        .map(|(i, st)| {
            if let Some(start) = st.start_us {
                key = (start.saturating_add(st.duration_us.unwrap_or(0)), start);
            }
            (key, i)
        })
        .collect();
    // Stable: ties keep the input order.
    keyed.sort_by_key(|&(k, _)| k);
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Analyses an NDJSON trace (one request per line, blank lines skipped).
///
/// Stops at the first bad line with a [`TraceError`] naming it.
pub fn analyze<R: BufRead>(mut input: R, cfg: &DetectorConfig) -> Result<Report, TraceError> {
    let mut report = Report::default();
    let mut buf = String::new();
    let mut lineno = 0usize;
    loop {
        lineno += 1;
        buf.clear();
        let n = input.read_line(&mut buf).map_err(|source| TraceError::Io {
            line: lineno,
            source,
        })?;
        if n == 0 {
            break;
        }
        let line = buf.trim();
        if line.is_empty() {
            continue;
        }
        analyze_line(line, lineno, cfg, &mut report)?;
    }
    Ok(report)
}

/// Replaces control characters so one finding stays on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[derive(serde::Serialize)]
struct FindingJson<'a> {
    route: &'a str,
    kind: &'static str,
    count: u32,
    fingerprint: Option<String>,
    sql: Option<&'a str>,
    db_time_us: u64,
    concurrent: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shapes: Vec<String>,
}

impl Report {
    /// Count of findings of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }

    /// Human-readable output: one line per finding
    /// (`ROUTE KIND count=N fingerprint=ID db_time=Tms [concurrent] [shapes=ID,ID…] sql: SQL`,
    /// `shapes` for a `sequence`, whose SQL is its shapes' joined with `; `)
    /// then a summary line.
    pub fn write_text<W: Write>(&self, mut w: W) -> io::Result<()> {
        for f in &self.findings {
            let fp = f
                .fingerprint
                .map_or_else(|| "-".to_owned(), |f| f.to_string());
            write!(
                w,
                "{} {} count={} fingerprint={} db_time={:.1}ms",
                one_line(&f.route),
                f.kind,
                f.count,
                fp,
                f.db_time.as_secs_f64() * 1000.0
            )?;
            if f.concurrent {
                write!(w, " concurrent")?;
            }
            if !f.shapes.is_empty() {
                let ids: Vec<String> = f.shapes.iter().map(ToString::to_string).collect();
                write!(w, " shapes={}", ids.join(","))?;
            }
            if let Some(sql) = &f.sql {
                write!(w, " sql: {}", one_line(sql))?;
            }
            writeln!(w)?;
        }
        writeln!(
            w,
            "analyzed {} requests, {} statements: {} findings (repeat {}, redundant {}, total {}, sequence {})",
            self.requests,
            self.statements,
            self.findings.len(),
            self.count(Kind::Repeat),
            self.count(Kind::Redundant),
            self.count(Kind::Total),
            self.count(Kind::Sequence)
        )
    }

    /// One JSON object per finding per line: `route`, `kind`, `count`,
    /// `fingerprint` (hex or null), `sql` (normalised or null), `db_time_us`,
    /// `concurrent`, and for a `sequence` `shapes` (its shapes' ids in order).
    pub fn write_json<W: Write>(&self, mut w: W) -> io::Result<()> {
        for f in &self.findings {
            let j = FindingJson {
                route: &f.route,
                kind: f.kind.as_str(),
                count: f.count,
                fingerprint: f.fingerprint.map(|f| f.to_string()),
                sql: f.sql.as_deref(),
                db_time_us: u64::try_from(f.db_time.as_micros()).unwrap_or(u64::MAX),
                concurrent: f.concurrent,
                shapes: f.shapes.iter().map(ToString::to_string).collect(),
            };
            serde_json::to_writer(&mut w, &j)?;
            writeln!(w)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::n1::fingerprint::FingerprintId;

    fn run(s: &str) -> Result<Report, TraceError> {
        analyze(s.as_bytes(), &DetectorConfig::default())
    }

    fn stmts(sql: &str, n: usize, params: impl Fn(usize) -> String) -> String {
        (0..n)
            .map(|i| {
                format!(
                    r#"{{"sql":{},{}}}"#,
                    serde_json::to_string(sql).unwrap(),
                    params(i)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn repeat_and_redundant() {
        let sql = "SELECT * FROM tracks WHERE id = $1";
        let a = stmts(sql, 5, |i| format!(r#""params":[{i}]"#));
        let b = stmts("SELECT * FROM users WHERE id = $1", 5, |_| {
            r#""params":{"b":1,"a":2}"#.into()
        });
        let input = format!("{{\"route\":\"/r\",\"statements\":[{a},{b}]}}\n");
        let r = run(&input).unwrap();
        assert_eq!((r.requests, r.statements), (1, 10));
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.kind, f.count, f.fingerprint))
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::Repeat, 5, Some(FingerprintId::of_sql(sql))),
                (
                    Kind::Redundant,
                    5,
                    Some(FingerprintId::of_sql("SELECT * FROM users WHERE id = $1"))
                ),
            ]
        );
    }

    #[test]
    fn canonical_params_hash_ignores_key_order() {
        let input = r#"{"route":"/r","statements":[
            {"sql":"SELECT 1","params":{"a":1,"b":2}},{"sql":"SELECT 1","params":{"b":2,"a":1}},
            {"sql":"SELECT 1","params":{"a":1,"b":2}},{"sql":"SELECT 1","params":{"b":2, "a":1}},
            {"sql":"SELECT 1","params":{"a":1,"b":2}}]}"#
            .replace('\n', "");
        let r = run(&input).unwrap();
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].kind, Kind::Redundant);
    }

    #[test]
    fn unknown_params_are_never_redundant() {
        let a = stmts("SELECT 1", 6, |_| r#""params":null"#.into());
        let r = run(&format!(r#"{{"route":"/r","statements":[{a}]}}"#)).unwrap();
        assert_eq!(r.findings.len(), 1);
        assert_eq!((r.findings[0].kind, r.findings[0].count), (Kind::Repeat, 6));
    }

    #[test]
    fn overlap_and_adjacency() {
        let overlapping = stmts("SELECT a FROM t", 5, |i| {
            format!(r#""params":[{i}],"start_us":{},"duration_us":100"#, i * 10)
        });
        let adjacent = stmts("SELECT b FROM t", 5, |i| {
            format!(
                r#""params":[{i}],"start_us":{},"duration_us":100"#,
                1000 + i * 100
            )
        });
        let r = run(&format!(
            r#"{{"route":"/r","statements":[{overlapping},{adjacent}]}}"#
        ))
        .unwrap();
        assert_eq!(r.findings.len(), 2);
        assert!(r.findings[0].concurrent);
        assert!(!r.findings[1].concurrent);
        assert_eq!(r.findings[0].db_time, Duration::from_micros(500));
    }

    fn st(sql: &str, start_us: Option<u64>, duration_us: Option<u64>) -> Statement<'_> {
        Statement {
            sql,
            params_hash: None,
            start_us,
            duration_us,
        }
    }

    /// The analyzer's former overlap check: per shape, in start order.
    fn overlaps_by_start(statements: &[Statement<'_>], shapes: usize) -> Vec<bool> {
        let mut acc = Accumulator::default();
        let mut spans: Vec<(usize, u64, u64)> = statements
            .iter()
            .filter_map(|st| {
                let idx = acc.shape_index(st.sql)?;
                let start = st.start_us?;
                Some((idx, start, start + st.duration_us.unwrap_or(0)))
            })
            .collect();
        spans.sort_unstable();
        let mut out = vec![false; shapes];
        let mut max_end: Option<(usize, u64)> = None;
        for (idx, start, end) in spans {
            match max_end {
                Some((i, e)) if i == idx => {
                    out[idx] |= start < e;
                    max_end = Some((idx, e.max(end)));
                }
                _ => max_end = Some((idx, end)),
            }
        }
        out
    }

    #[test]
    fn overlaps_found_in_completion_order_as_before() {
        const SQL: [&str; 3] = ["SELECT a FROM t", "SELECT b FROM t", "SELECT c FROM t"];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut flagged = 0;
        for _ in 0..2000 {
            let n = 1 + next(8);
            let statements: Vec<Statement<'_>> = (0..n)
                .map(|_| {
                    let sql = SQL[usize::try_from(next(3)).unwrap()];
                    let start = (next(5) > 0).then(|| next(40));
                    let duration = (next(5) > 0).then(|| next(12));
                    st(sql, start, duration)
                })
                .collect();
            let summary = summarize(&statements, "/r".into(), String::new());
            let got: Vec<bool> = summary.shapes.iter().map(|s| s.concurrent).collect();
            assert_eq!(
                got,
                overlaps_by_start(&statements, summary.shapes.len()),
                "{:?}",
                statements
                    .iter()
                    .map(|s| (s.sql, s.start_us, s.duration_us))
                    .collect::<Vec<_>>()
            );
            flagged += got.iter().filter(|c| **c).count();
        }
        assert!(flagged > 100, "{flagged}");
    }

    #[test]
    fn statements_are_taken_in_completion_order() {
        let order =
            |statements: &[Statement<'_>]| summarize(statements, "/r".into(), String::new()).order;
        // Untimed: input order.
        let untimed = [
            st("SELECT a", None, None),
            st("SELECT b", None, None),
            st("SELECT a", None, None),
        ];
        assert_eq!(order(&untimed), vec![0, 1, 0]);
        // Timed: by end, then start; shapes still numbered in input order.
        let timed = [
            st("SELECT a", Some(0), Some(200)),
            st("SELECT b", Some(10), Some(20)),
            st("SELECT c", Some(50), Some(50)),
            st("SELECT d", Some(60), Some(40)),
        ];
        assert_eq!(order(&timed), vec![1, 2, 3, 0]);
        // Untimed statements follow the one before them in the input.
        let mixed = [
            st("SELECT a", Some(0), Some(100)),
            st("SELECT b", None, None),
            st("SELECT c", Some(0), Some(10)),
        ];
        assert_eq!(order(&mixed), vec![2, 0, 1]);
    }

    #[test]
    fn pipelined_loop_is_a_concurrent_sequence() {
        // Item i: author [100i, 100i+120), then tags [100i+120, 100i+200):
        // listed by start the pattern is blurred, by completion it is exact.
        let mut v = Vec::new();
        for i in 0..5u64 {
            v.push((100 * i, 120, "SELECT * FROM authors WHERE id = $1", i));
            v.push((
                100 * i + 120,
                80,
                "SELECT * FROM tags WHERE post_id = $1",
                i,
            ));
        }
        v.sort_by_key(|s| s.0);
        let stmts: Vec<String> = v
            .iter()
            .map(|(start, dur, sql, i)| {
                format!(
                    r#"{{"sql":"{sql}","params":[{i}],"start_us":{start},"duration_us":{dur}}}"#
                )
            })
            .collect();
        let r = run(&format!(
            r#"{{"route":"/posts","statements":[{}]}}"#,
            stmts.join(",")
        ))
        .unwrap();
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        let f = &r.findings[0];
        assert_eq!((f.kind, f.count, f.concurrent), (Kind::Sequence, 5, true));
        assert_eq!(
            f.sql.as_deref(),
            Some("select * from authors where id = ?; select * from tags where post_id = ?")
        );
        let mut text = Vec::new();
        r.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let ids = f.shapes.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(
            text.starts_with(&format!(
                "/posts sequence count=5 fingerprint={} db_time=1.0ms concurrent shapes={} sql: select",
                f.fingerprint.unwrap(),
                ids.join(",")
            )),
            "{text}"
        );
        assert!(
            text.ends_with("(repeat 0, redundant 0, total 0, sequence 1)\n"),
            "{text}"
        );
        let mut json = Vec::new();
        r.write_json(&mut json).unwrap();
        let j: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(j["kind"], "sequence");
        assert_eq!(j["shapes"], serde_json::json!(ids));
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases = [
            (
                "{\"route\":\"/r\",\"statements\":[]}\n\n{oops\n",
                3,
                "malformed JSON",
            ),
            ("[1]\n", 1, "expected a JSON object, got array"),
            ("{\"statements\":[]}\n", 1, "missing field `route`"),
            (
                "{\"route\":1,\"statements\":[]}",
                1,
                "field `route` must be a string, got number",
            ),
            ("{\"route\":\"/r\"}", 1, "missing field `statements`"),
            (
                "{\"route\":\"/r\",\"statements\":{}}",
                1,
                "field `statements` must be an array",
            ),
            (
                "{\"route\":\"/r\",\"statements\":[{}]}",
                1,
                "missing field `statements[0].sql`",
            ),
            (
                "{\"route\":\"/r\",\"statements\":[{\"sql\":\"x\"},{\"sql\":3}]}",
                1,
                "field `statements[1].sql` must be a string",
            ),
            (
                "{\"route\":\"/r\",\"statements\":[{\"sql\":\"x\",\"start_us\":-1}]}",
                1,
                "`statements[0].start_us` must be a non-negative integer",
            ),
            (
                "{\"route\":\"/r\",\"method\":5,\"statements\":[]}",
                1,
                "field `method` must be a string",
            ),
            (
                "{\"route\":\"/r\",\"statements\":[\"x\"]}",
                1,
                "`statements[0]` must be an object, got string",
            ),
        ];
        for (input, line, needle) in cases {
            let e = run(input).unwrap_err();
            assert_eq!(e.line(), line, "{input}");
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("line {line}: ")), "{msg}");
            assert!(msg.contains(needle), "{msg} !~ {needle}");
        }
    }

    #[test]
    fn errors_do_not_echo_param_values() {
        let e = run(
            r#"{"route":"/r","statements":[{"sql":"x","params":["s3cret"],"start_us":"s3cret"}]}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_an_io_error_with_line() {
        let input: &[u8] = b"{\"route\":\"/r\",\"statements\":[]}\n\xff\xfe\n";
        let e = analyze(input, &DetectorConfig::default()).unwrap_err();
        assert!(matches!(e, TraceError::Io { line: 2, .. }), "{e}");
    }

    #[test]
    fn output_formats() {
        let a = stmts("SELECT * FROM t WHERE id = 'secret-value'", 5, |_| {
            r#""start_us":0,"duration_us":1000"#.into()
        });
        let r = run(&format!("{{\"route\":\"/r\",\"statements\":[{a}]}}\r\n")).unwrap();
        let mut text = Vec::new();
        r.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let fp = FingerprintId::of_sql("select * from t where id = ?");
        assert_eq!(
            text,
            format!(
                "/r repeat count=5 fingerprint={fp} db_time=5.0ms concurrent sql: select * from t where id = ?\n\
                 analyzed 1 requests, 5 statements: 1 findings (repeat 1, redundant 0, total 0, sequence 0)\n"
            )
        );
        let mut json = Vec::new();
        r.write_json(&mut json).unwrap();
        let json = String::from_utf8(json).unwrap();
        assert!(!json.contains("secret"));
        let lines: Vec<Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![serde_json::json!({
                "route": "/r", "kind": "repeat", "count": 5, "fingerprint": fp.to_string(),
                "sql": "select * from t where id = ?", "db_time_us": 5000, "concurrent": true
            })]
        );
        let empty = Report::default();
        let mut out = Vec::new();
        empty.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "analyzed 0 requests, 0 statements: 0 findings (repeat 0, redundant 0, total 0, sequence 0)\n"
        );
    }
}
