//! OpenTelemetry traces for `veza n1 analyze`: reads the OTLP JSON that
//! OpenTelemetry's file exporters and the Collector's file exporter write, turns
//! the database spans into requests, and runs them through the same analysis as
//! the NDJSON traces of [`super::trace`] (same recorder, detector and report).
//! So the detector works on traces from any service, in any language.
//!
//! **Input.** Either one `ExportTraceServiceRequest` per line (JSON Lines, as the
//! file exporters write) or JSON documents spanning several lines (a
//! pretty-printed request); blank lines are skipped. The OTLP JSON mapping is
//! `resourceSpans[] → scopeSpans[] → spans[]`; a span's `traceId`, `spanId` and
//! `parentSpanId` are hex strings (32, 16 and 16 digits), and protobuf's generic
//! JSON mapping (base64 of the bytes) is accepted too; `startTimeUnixNano` and
//! `endTimeUnixNano` are decimal strings (JSON numbers are accepted); attributes
//! are `[{"key", "value": {"stringValue" | "intValue" | …}}]`. snake_case field
//! names (`resource_spans`, …) are accepted as protobuf JSON parsers do; unknown
//! fields are ignored, absent arrays are empty.
//!
//! **Requests.** A *database span* has the attribute `db.query.text` (current
//! semantic conventions) or `db.statement` (older ones); the first wins when both
//! are present. Database spans are grouped per (trace id, parent span id), across
//! the whole input: the spans of one trace may arrive in several export batches,
//! children usually before their parent. Each group is one request whose route is,
//! in order: the parent span's `http.route`, the parent span's name, the trace's
//! root span's `http.route`, the root span's name, else `unknown`; its method is
//! `http.request.method` (or `http.method`) of that span. Statements are ordered
//! by start time; `start_us` and `duration_us` come from the nanosecond
//! timestamps (absent timestamps mean untimed statements).
//!
//! **Parameters.** OpenTelemetry rarely records them. The statement's parameters
//! are the `db.query.parameter.<key>` attributes when there are some, else the
//! `db.statement.parameters` attribute (Python's DB-API instrumentations with
//! `capture_parameters`), else unknown (repeats count as N+1, never redundant).
//! They are compared through a hash; values are never printed, not even in error
//! messages.
//!
//! **Bounded memory.** Documents are read one at a time (at most
//! [`MAX_DOCUMENT_BYTES`] each). At most [`MAX_GROUP_SPANS`] database spans are
//! kept per group (further ones are counted in [`OtlpStats::dropped_spans`]). When,
//! after a document, more than [`MAX_OPEN_GROUPS`] groups or [`MAX_BUFFERED_SPANS`]
//! database spans are held, the oldest groups are analysed at once with the routes
//! known then ([`OtlpStats::early_groups`]); later spans of such a group form a new
//! one. At most
//! [`MAX_KNOWN_SPANS`] other spans are remembered to name routes, oldest forgotten
//! first. All other groups are analysed at the end, in order of first appearance.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io::{BufRead, Cursor, Read};
use std::str::FromStr;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::detector::DetectorConfig;
use super::trace::{self, Report, TraceError, json_error_message, type_name};

/// Database spans kept per (trace, parent span) group.
pub const MAX_GROUP_SPANS: usize = 10_000;
/// Groups held open at once before the oldest is analysed early.
pub const MAX_OPEN_GROUPS: usize = 50_000;
/// Database spans held across all open groups before the oldest group is analysed early.
pub const MAX_BUFFERED_SPANS: usize = 500_000;
/// Non-database spans remembered (name, `http.route`) to name the routes of groups.
pub const MAX_KNOWN_SPANS: usize = 500_000;
/// Largest JSON document (one line, or one multi-line document) read.
pub const MAX_DOCUMENT_BYTES: usize = 256 << 20;

/// Input format of `veza n1 analyze`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// OTLP when the first non-blank line holds an object with `resourceSpans`,
    /// or starts a JSON document spanning several lines (an NDJSON request always
    /// fits on one line); NDJSON otherwise.
    #[default]
    Auto,
    /// One request per line ([`super::trace`]).
    Ndjson,
    /// OTLP JSON traces (this module).
    Otlp,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "ndjson" => Ok(Format::Ndjson),
            "otlp" => Ok(Format::Otlp),
            _ => Err("expected one of auto, ndjson, otlp".to_owned()),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Auto => "auto",
            Format::Ndjson => "ndjson",
            Format::Otlp => "otlp",
        })
    }
}

/// What the OTLP reader saw, beside the [`Report`] (whose `requests` are the
/// groups analysed and `statements` the database spans analysed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpStats {
    /// `ExportTraceServiceRequest` documents read.
    pub documents: u64,
    /// Spans read.
    pub spans: u64,
    /// Database spans read (`db.query.text` or `db.statement`).
    pub db_spans: u64,
    /// Groups analysed before the end of the input because a cap was reached.
    pub early_groups: u64,
    /// Database spans beyond [`MAX_GROUP_SPANS`] in their group, not analysed.
    pub dropped_spans: u64,
    /// Groups whose route was `unknown` (neither the parent nor the root span seen).
    pub unknown_routes: u64,
}

impl fmt::Display for OtlpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "otlp: {} documents, {} spans, {} database spans",
            self.documents, self.spans, self.db_spans
        )?;
        if self.unknown_routes > 0 {
            write!(
                f,
                "; {} groups with route `unknown` (parent and root span not in the input)",
                self.unknown_routes
            )?;
        }
        if self.early_groups > 0 {
            write!(
                f,
                "; {} groups analysed early (more than {MAX_OPEN_GROUPS} groups or {MAX_BUFFERED_SPANS} spans open)",
                self.early_groups
            )?;
        }
        if self.dropped_spans > 0 {
            write!(
                f,
                "; {} database spans over {MAX_GROUP_SPANS} per group not analysed",
                self.dropped_spans
            )?;
        }
        Ok(())
    }
}

/// Result of [`analyze_input`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub report: Report,
    /// Present when the input was read as OTLP.
    pub otlp: Option<OtlpStats>,
}

/// Analyses `input` as `format` ([`Format::Auto`] looks at the first non-blank
/// line). Stops at the first bad line or document with a [`TraceError`] naming
/// its 1-based line.
pub fn analyze_input<R: BufRead>(
    mut input: R,
    format: Format,
    cfg: &DetectorConfig,
) -> Result<Analysis, TraceError> {
    match format {
        Format::Auto => {
            let (head, format) = sniff(&mut input)?;
            run(Cursor::new(head).chain(input), format, cfg)
        }
        format => run(input, format, cfg),
    }
}

fn run<R: BufRead>(input: R, format: Format, cfg: &DetectorConfig) -> Result<Analysis, TraceError> {
    if format == Format::Otlp {
        let (report, stats) = analyze_otlp(input, cfg, Limits::default())?;
        Ok(Analysis {
            report,
            otlp: Some(stats),
        })
    } else {
        Ok(Analysis {
            report: trace::analyze(input, cfg)?,
            otlp: None,
        })
    }
}

/// Reads up to the first non-blank line and decides the format; returns what was
/// read (blank lines kept as newlines, so line numbers stay right).
fn sniff<R: BufRead>(input: &mut R) -> Result<(String, Format), TraceError> {
    let mut head = String::new();
    let mut line = String::new();
    let mut lineno = 0usize;
    loop {
        lineno += 1;
        line.clear();
        let n = input
            .read_line(&mut line)
            .map_err(|source| TraceError::Io {
                line: lineno,
                source,
            })?;
        if n == 0 {
            return Ok((head, Format::Ndjson));
        }
        if line.trim().is_empty() {
            head.push('\n');
            continue;
        }
        let mut scan = Scan::default();
        scan.feed(line.as_bytes());
        let otlp = !scan.complete()
            || serde_json::from_str::<Value>(&line).is_ok_and(|v| {
                v.as_object().is_some_and(|o| {
                    o.contains_key("resourceSpans") || o.contains_key("resource_spans")
                })
            });
        head.push_str(&line);
        return Ok((head, if otlp { Format::Otlp } else { Format::Ndjson }));
    }
}

/// Caps, the constants above except in tests.
#[derive(Clone, Copy, Debug)]
struct Limits {
    group_spans: usize,
    open_groups: usize,
    buffered_spans: usize,
    known_spans: usize,
    document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            group_spans: MAX_GROUP_SPANS,
            open_groups: MAX_OPEN_GROUPS,
            buffered_spans: MAX_BUFFERED_SPANS,
            known_spans: MAX_KNOWN_SPANS,
            document_bytes: MAX_DOCUMENT_BYTES,
        }
    }
}

fn analyze_otlp<R: BufRead>(
    input: R,
    cfg: &DetectorConfig,
    limits: Limits,
) -> Result<(Report, OtlpStats), TraceError> {
    let mut docs = Documents {
        input,
        lineno: 0,
        line: String::new(),
        doc: String::new(),
        max_bytes: limits.document_bytes,
    };
    let mut state = Grouper {
        cfg,
        limits,
        report: Report::default(),
        stats: OtlpStats::default(),
        groups: HashMap::new(),
        order: VecDeque::new(),
        buffered: 0,
        known: HashMap::new(),
        known_order: VecDeque::new(),
        roots: HashMap::new(),
    };
    while let Some((line, doc)) = docs.next_document()? {
        state
            .document(&doc, line)
            .map_err(|message| TraceError::Invalid { line, message })?;
        state.evict()?;
    }
    while let Some(key) = state.order.pop_front() {
        state.finish_group(key)?;
    }
    Ok((state.report, state.stats))
}

/// Tracks bracket depth outside strings, to tell where a JSON document ends.
#[derive(Default)]
struct Scan {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    fn feed(&mut self, line: &[u8]) {
        for &b in line {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        // A JSON string never spans lines: an unterminated one is the parser's to report.
        self.in_string = false;
        self.escaped = false;
    }

    fn complete(&self) -> bool {
        self.depth == 0
    }
}

/// JSON documents, each on one line or spread over several.
struct Documents<R> {
    input: R,
    lineno: usize,
    line: String,
    doc: String,
    max_bytes: usize,
}

impl<R: BufRead> Documents<R> {
    /// The next document and its first line.
    fn next_document(&mut self) -> Result<Option<(usize, Value)>, TraceError> {
        self.doc.clear();
        let mut start = 0usize;
        let mut scan = Scan::default();
        loop {
            self.line.clear();
            // One byte over the budget tells an oversized document from one that fits.
            let budget = self
                .max_bytes
                .saturating_sub(self.doc.len())
                .saturating_add(1);
            let n = (&mut self.input)
                .take(u64::try_from(budget).unwrap_or(u64::MAX))
                .read_line(&mut self.line)
                .map_err(|source| TraceError::Io {
                    line: self.lineno + 1,
                    source,
                })?;
            if n == 0 {
                break;
            }
            self.lineno += 1;
            if self.doc.is_empty() {
                if self.line.trim().is_empty() {
                    continue;
                }
                start = self.lineno;
            }
            if self.doc.len() + self.line.len() > self.max_bytes {
                return Err(TraceError::Invalid {
                    line: start,
                    message: format!(
                        "the JSON document starting here is larger than {} bytes",
                        self.max_bytes
                    ),
                });
            }
            scan.feed(self.line.as_bytes());
            self.doc.push_str(&self.line);
            if scan.complete() {
                break;
            }
        }
        if self.doc.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&self.doc)
            .map(|v| Some((start, v)))
            .map_err(|e| TraceError::Malformed {
                line: start + e.line().saturating_sub(1),
                message: json_error_message(&e),
            })
    }
}

/// (trace id, parent span id).
type GroupKey = (u128, Option<u64>);

struct Statement {
    sql: String,
    params: Option<Value>,
    start_ns: u64,
    end_ns: u64,
}

struct Group {
    /// First line of the document holding the group's first span.
    line: usize,
    statements: Vec<Statement>,
}

/// A non-database span, as needed to name a route.
struct SpanInfo {
    name: String,
    route: Option<String>,
    method: Option<String>,
}

impl SpanInfo {
    /// (`http.route`, else the non-empty name; the method or "").
    fn label(&self) -> Option<(&str, &str)> {
        let route = self
            .route
            .as_deref()
            .or(Some(self.name.as_str()).filter(|n| !n.is_empty()))?;
        Some((route, self.method.as_deref().unwrap_or_default()))
    }
}

/// What one span carries that matters here.
#[derive(Default)]
struct Attrs<'a> {
    query_text: Option<&'a str>,
    statement: Option<&'a str>,
    route: Option<&'a str>,
    method: Option<&'a str>,
    params: BTreeMap<&'a str, Value>,
    statement_params: Option<&'a Value>,
}

struct Grouper<'c> {
    cfg: &'c DetectorConfig,
    limits: Limits,
    report: Report,
    stats: OtlpStats,
    groups: HashMap<GroupKey, Group>,
    /// Open groups in order of first appearance.
    order: VecDeque<GroupKey>,
    /// Database spans held in open groups.
    buffered: usize,
    known: HashMap<(u128, u64), SpanInfo>,
    known_order: VecDeque<(u128, u64)>,
    /// Trace id → its root span (no parent) id.
    roots: HashMap<u128, u64>,
}

/// `obj[camel]`, else `obj[snake]`; `null` counts as absent.
fn field<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

fn array<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a [Value], String> {
    match v {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!(
            "field `{path}` must be an array, got {}",
            type_name(other)
        )),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("`{path}` must be an object, got {}", type_name(v)))
}

/// Padded or not, as protobuf JSON parsers accept.
const B64_CONFIG: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const B64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, B64_CONFIG);
const B64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, B64_CONFIG);

/// A trace or span id of `N` bytes: hex (OTLP JSON) or base64 (protobuf's JSON
/// mapping of `bytes`). Absent, empty or all zeros: `None`.
fn decode_id<const N: usize>(v: Option<&Value>, path: &str) -> Result<Option<[u8; N]>, String> {
    let s = match v {
        None => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "field `{path}` must be a string, got {}",
                type_name(other)
            ));
        }
    };
    if s.is_empty() {
        return Ok(None);
    }
    let decoded = if s.len() == 2 * N {
        let mut id = [0u8; N];
        hex::decode_to_slice(s, &mut id).ok().map(|()| id)
    } else {
        B64.decode(s)
            .or_else(|_| B64_URL.decode(s))
            .ok()
            .and_then(|bytes| <[u8; N]>::try_from(bytes.as_slice()).ok())
    };
    let id = decoded.ok_or_else(|| {
        format!(
            "field `{path}` must be {} hex digits (or the base64 of {N} bytes), got a string of {} characters that is neither",
            2 * N,
            s.chars().count()
        )
    })?;
    Ok(Some(id).filter(|id| id.iter().any(|&b| b != 0)))
}

/// A `fixed64` timestamp: a decimal string, or a JSON number. Absent: 0.
fn nanos(v: Option<&Value>, path: &str) -> Result<u64, String> {
    match v {
        None => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| {
            format!("field `{path}` must be a decimal string of nanoseconds, got another string")
        }),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("field `{path}` must be a non-negative integer")),
        Some(other) => Err(format!(
            "field `{path}` must be a decimal string of nanoseconds, got {}",
            type_name(other)
        )),
    }
}

/// The `stringValue` of an attribute's `AnyValue`, or an error naming the kind
/// of value found (never the value).
fn string_value<'a>(v: Option<&'a Value>, key: &str, path: &str) -> Result<&'a str, String> {
    let obj = v.and_then(Value::as_object);
    if let Some(Value::String(s)) = obj.and_then(|o| field(o, "stringValue", "string_value")) {
        return Ok(s.as_str());
    }
    let got = match (v, obj) {
        (None, _) => "no value".to_owned(),
        (Some(_), Some(o)) => o
            .keys()
            .next()
            .map_or_else(|| "an empty value".to_owned(), String::clone),
        (Some(other), None) => type_name(other).to_owned(),
    };
    Err(format!(
        "attribute `{key}` of `{path}` must be a stringValue, got {got}"
    ))
}

/// An `AnyValue` as plain JSON, for hashing parameters: `{"intValue": "3"}` and
/// `{"int_value": 3}` are both `3`.
fn any_to_json(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return v.clone();
    };
    if let Some(i) = field(obj, "intValue", "int_value") {
        if let Some(n) = i.as_str().and_then(|s| s.parse::<i64>().ok()) {
            return Value::from(n);
        }
        return i.clone();
    }
    for (camel, snake) in [
        ("stringValue", "string_value"),
        ("boolValue", "bool_value"),
        ("doubleValue", "double_value"),
        ("bytesValue", "bytes_value"),
    ] {
        if let Some(x) = field(obj, camel, snake) {
            return x.clone();
        }
    }
    let values = |camel, snake| {
        field(obj, camel, snake)
            .and_then(Value::as_object)
            .and_then(|o| o.get("values"))
            .and_then(Value::as_array)
    };
    if let Some(items) = values("arrayValue", "array_value") {
        return Value::Array(items.iter().map(any_to_json).collect());
    }
    if let Some(items) = values("kvlistValue", "kvlist_value") {
        let mut map = Map::new();
        for kv in items {
            if let Some(key) = kv.get("key").and_then(Value::as_str) {
                map.insert(
                    key.to_owned(),
                    kv.get("value").map_or(Value::Null, any_to_json),
                );
            }
        }
        return Value::Object(map);
    }
    if obj.is_empty() {
        return Value::Null;
    }
    v.clone()
}

fn attributes<'a>(span: &'a Map<String, Value>, path: &str) -> Result<Attrs<'a>, String> {
    let mut attrs = Attrs::default();
    let list = array(span.get("attributes"), &format!("{path}.attributes"))?;
    for (i, a) in list.iter().enumerate() {
        let apath = format!("{path}.attributes[{i}]");
        let a = object(a, &apath)?;
        let key = match a.get("key") {
            Some(Value::String(k)) => k.as_str(),
            None => return Err(format!("missing field `{apath}.key`")),
            Some(other) => {
                return Err(format!(
                    "field `{apath}.key` must be a string, got {}",
                    type_name(other)
                ));
            }
        };
        let value = a.get("value");
        match key {
            "db.query.text" => attrs.query_text = Some(string_value(value, key, path)?),
            "db.statement" => attrs.statement = Some(string_value(value, key, path)?),
            "http.route" => attrs.route = Some(string_value(value, key, path)?),
            "http.request.method" => attrs.method = Some(string_value(value, key, path)?),
            "http.method" => {
                let m = string_value(value, key, path)?;
                attrs.method.get_or_insert(m);
            }
            "db.statement.parameters" => attrs.statement_params = value,
            _ => {
                if let Some(name) = key.strip_prefix("db.query.parameter.") {
                    attrs
                        .params
                        .insert(name, value.map_or(Value::Null, any_to_json));
                }
            }
        }
    }
    Ok(attrs)
}

impl Grouper<'_> {
    /// One `ExportTraceServiceRequest`; errors are messages for its first line.
    fn document(&mut self, v: &Value, line: usize) -> Result<(), String> {
        let obj = v.as_object().ok_or_else(|| {
            format!(
                "expected an OTLP JSON object (ExportTraceServiceRequest), got {}",
                type_name(v)
            )
        })?;
        let resource_spans = field(obj, "resourceSpans", "resource_spans");
        if resource_spans.is_none() && !obj.is_empty() {
            return Err(
                "missing field `resourceSpans` (not an OTLP trace; for NDJSON requests use --format ndjson)"
                    .to_owned(),
            );
        }
        self.stats.documents += 1;
        for (i, rs) in array(resource_spans, "resourceSpans")?.iter().enumerate() {
            let rpath = format!("resourceSpans[{i}]");
            let rs = object(rs, &rpath)?;
            let scope_spans = field(rs, "scopeSpans", "scope_spans").or_else(|| {
                field(
                    rs,
                    "instrumentationLibrarySpans",
                    "instrumentation_library_spans",
                )
            });
            for (j, ss) in array(scope_spans, &format!("{rpath}.scopeSpans"))?
                .iter()
                .enumerate()
            {
                let spath = format!("{rpath}.scopeSpans[{j}]");
                let ss = object(ss, &spath)?;
                for (k, span) in array(ss.get("spans"), &format!("{spath}.spans"))?
                    .iter()
                    .enumerate()
                {
                    self.span(span, &format!("{spath}.spans[{k}]"), line)?;
                }
            }
        }
        Ok(())
    }

    fn span(&mut self, span: &Value, path: &str, line: usize) -> Result<(), String> {
        let span = object(span, path)?;
        let trace_id = decode_id::<16>(
            field(span, "traceId", "trace_id"),
            &format!("{path}.traceId"),
        )?
        .map_or(0, u128::from_be_bytes);
        let span_id = decode_id::<8>(field(span, "spanId", "span_id"), &format!("{path}.spanId"))?
            .map(u64::from_be_bytes);
        let parent = decode_id::<8>(
            field(span, "parentSpanId", "parent_span_id"),
            &format!("{path}.parentSpanId"),
        )?
        .map(u64::from_be_bytes);
        let name = match span.get("name") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(format!(
                    "field `{path}.name` must be a string, got {}",
                    type_name(other)
                ));
            }
        };
        let start_ns = nanos(
            field(span, "startTimeUnixNano", "start_time_unix_nano"),
            &format!("{path}.startTimeUnixNano"),
        )?;
        let end_ns = nanos(
            field(span, "endTimeUnixNano", "end_time_unix_nano"),
            &format!("{path}.endTimeUnixNano"),
        )?;
        let attrs = attributes(span, path)?;
        self.stats.spans += 1;
        match attrs.query_text.or(attrs.statement) {
            Some(sql) => {
                self.stats.db_spans += 1;
                let params = if attrs.params.is_empty() {
                    attrs.statement_params.map(any_to_json)
                } else {
                    Some(Value::Object(
                        attrs
                            .params
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    ))
                };
                self.add_statement(
                    (trace_id, parent),
                    line,
                    Statement {
                        sql: sql.to_owned(),
                        params,
                        start_ns,
                        end_ns,
                    },
                );
            }
            None => {
                if let Some(span_id) = span_id {
                    let info = SpanInfo {
                        name: name.to_owned(),
                        route: attrs.route.map(str::to_owned),
                        method: attrs.method.map(str::to_owned),
                    };
                    self.remember(trace_id, span_id, parent.is_none(), info);
                }
            }
        }
        Ok(())
    }

    fn add_statement(&mut self, key: GroupKey, line: usize, st: Statement) {
        let group = match self.groups.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.order.push_back(key);
                e.insert(Group {
                    line,
                    statements: Vec::new(),
                })
            }
        };
        if group.statements.len() >= self.limits.group_spans {
            self.stats.dropped_spans += 1;
            return;
        }
        group.statements.push(st);
        self.buffered += 1;
    }

    fn remember(&mut self, trace_id: u128, span_id: u64, root: bool, info: SpanInfo) {
        let key = (trace_id, span_id);
        if self.known.insert(key, info).is_none() {
            self.known_order.push_back(key);
        }
        if root {
            self.roots.entry(trace_id).or_insert(span_id);
        }
        while self.known_order.len() > self.limits.known_spans {
            let Some(old) = self.known_order.pop_front() else {
                break;
            };
            self.known.remove(&old);
            if self.roots.get(&old.0) == Some(&old.1) {
                self.roots.remove(&old.0);
            }
        }
    }

    /// Analyses the oldest groups while more than the caps are held.
    fn evict(&mut self) -> Result<(), TraceError> {
        while self.groups.len() > self.limits.open_groups
            || self.buffered > self.limits.buffered_spans
        {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            self.stats.early_groups += 1;
            self.finish_group(key)?;
        }
        Ok(())
    }

    /// Route and method of a group: the parent span's `http.route` or name, else
    /// the root span's.
    fn route_of(&self, (trace_id, parent): GroupKey) -> Option<(&str, &str)> {
        let parent_info = parent.and_then(|p| self.known.get(&(trace_id, p)));
        let root_info = self
            .roots
            .get(&trace_id)
            .and_then(|r| self.known.get(&(trace_id, *r)));
        parent_info
            .and_then(SpanInfo::label)
            .or_else(|| root_info.and_then(SpanInfo::label))
    }

    fn finish_group(&mut self, key: GroupKey) -> Result<(), TraceError> {
        let Some(group) = self.groups.remove(&key) else {
            return Ok(());
        };
        self.buffered = self.buffered.saturating_sub(group.statements.len());
        let (route, method) = match self.route_of(key) {
            Some((r, m)) => (r.to_owned(), m.to_owned()),
            None => {
                self.stats.unknown_routes += 1;
                ("unknown".to_owned(), String::new())
            }
        };
        let mut statements = group.statements;
        statements.sort_by_key(|s| s.start_ns);
        let statements: Vec<Value> = statements
            .into_iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("sql".to_owned(), Value::String(s.sql));
                if let Some(p) = s.params {
                    m.insert("params".to_owned(), p);
                }
                if s.start_ns > 0 {
                    // Floors keep adjacent spans adjacent:
                    // start/1000 + (end-start)/1000 <= end/1000.
                    m.insert("start_us".to_owned(), Value::from(s.start_ns / 1000));
                    m.insert(
                        "duration_us".to_owned(),
                        Value::from(s.end_ns.saturating_sub(s.start_ns) / 1000),
                    );
                }
                Value::Object(m)
            })
            .collect();
        let request = serde_json::json!({
            "route": route,
            "method": method,
            "statements": statements,
        });
        trace::analyze_value(&request, group.line, self.cfg, &mut self.report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::n1::detector::Kind;
    use crate::n1::fingerprint::FingerprintId;

    const SPLIT: &str = include_str!("../../tests/data/otlp/split.jsonl");

    fn otlp(s: &str) -> Result<(Report, OtlpStats), TraceError> {
        analyze_otlp(s.as_bytes(), &DetectorConfig::default(), Limits::default())
    }

    fn auto(s: &str) -> Result<Analysis, TraceError> {
        analyze_input(s.as_bytes(), Format::Auto, &DetectorConfig::default())
    }

    type Row = (String, Kind, u32, bool);

    fn rows(r: &Report) -> Vec<Row> {
        r.findings
            .iter()
            .map(|f| (f.route.clone(), f.kind, f.count, f.concurrent))
            .collect()
    }

    fn expected_split() -> Vec<Row> {
        vec![
            // Parent span (next line) has http.route; ids 1..5: distinct params.
            ("/api/v1/playlists/{id}".into(), Kind::Repeat, 5, false),
            // Parent is an INTERNAL span without http.route: its name; identical
            // `db.statement.parameters`: redundant.
            ("load_artist".into(), Kind::Redundant, 5, false),
            // Parent not in the input: the root's http.route; overlapping spans.
            ("/api/v1/search".into(), Kind::Repeat, 5, true),
        ]
    }

    #[test]
    fn fixture_spans_split_over_two_lines() {
        let (r, stats) = otlp(SPLIT).unwrap();
        assert_eq!(rows(&r), expected_split());
        // Groups: playlists (6 statements), artists (5), search (5), unknown (2).
        assert_eq!((r.requests, r.statements), (4, 18));
        assert_eq!(
            stats,
            OtlpStats {
                documents: 2,
                spans: 22,
                db_spans: 18,
                unknown_routes: 1,
                ..OtlpStats::default()
            }
        );
        let tracks = &r.findings[0];
        assert_eq!(
            tracks.fingerprint,
            Some(FingerprintId::of_sql(
                r#"SELECT * FROM "tracks" WHERE "id" = $1"#
            ))
        );
        assert_eq!(tracks.db_time, Duration::from_micros(450));
        assert_eq!(r.findings[2].db_time, Duration::from_micros(1000));
        // Auto-detection picks OTLP; the same report.
        let a = auto(SPLIT).unwrap();
        assert_eq!(a.report, r);
        assert_eq!(a.otlp, Some(stats));
    }

    #[test]
    fn pretty_printed_document_and_base64_ids() {
        // Both lines merged into one pretty-printed request, ids in base64 as
        // protobuf's generic JSON mapping writes them.
        let mut merged: Value = serde_json::from_str(SPLIT.lines().next().unwrap()).unwrap();
        let second: Value = serde_json::from_str(SPLIT.lines().nth(1).unwrap()).unwrap();
        let rs = merged["resourceSpans"].as_array_mut().unwrap();
        rs.extend(second["resourceSpans"].as_array().unwrap().iter().cloned());
        for rs in rs.iter_mut() {
            for ss in rs["scopeSpans"].as_array_mut().unwrap() {
                for span in ss["spans"].as_array_mut().unwrap() {
                    for f in ["traceId", "spanId", "parentSpanId"] {
                        if let Some(Value::String(id)) = span.get_mut(f) {
                            *id = B64.encode(hex::decode(&*id).unwrap());
                        }
                    }
                }
            }
        }
        let pretty = format!("\n\n{}\n", serde_json::to_string_pretty(&merged).unwrap());
        assert!(pretty.contains("\"traceId\": \"CvdlGRbNQ92ESOshHIAxnA==\""));
        let a = auto(&pretty).unwrap();
        assert_eq!(rows(&a.report), expected_split());
        assert_eq!(a.otlp.unwrap().documents, 1);
    }

    #[test]
    fn ndjson_is_still_detected() {
        let line = r#"{"route":"/r","statements":[{"sql":"SELECT 1"},{"sql":"SELECT 1"},{"sql":"SELECT 1"},{"sql":"SELECT 1"},{"sql":"SELECT 1"}]}"#;
        let a = auto(&format!("\n{line}\n{line}\n")).unwrap();
        assert_eq!(a.otlp, None);
        assert_eq!((a.report.requests, a.report.findings.len()), (2, 2));
        // NDJSON errors keep their line numbers after the sniffed head.
        let e = auto("\n\n[1]\n").unwrap_err();
        assert_eq!(e.to_string(), "line 3: expected a JSON object, got array");
        let e = auto(&format!("{line}\n{{oops\n")).unwrap_err();
        assert!(e.to_string().starts_with("line 2: malformed JSON"), "{e}");
        // Empty input: an empty NDJSON report.
        assert_eq!(auto("\n \n").unwrap(), Analysis::default());
        // Forced formats.
        let a = analyze_input(SPLIT.as_bytes(), Format::Otlp, &DetectorConfig::default());
        assert_eq!(rows(&a.unwrap().report), expected_split());
        let e = analyze_input(SPLIT.as_bytes(), Format::Ndjson, &DetectorConfig::default());
        assert!(e.unwrap_err().to_string().contains("missing field `route`"));
        let e = analyze_input(
            format!("{line}\n").as_bytes(),
            Format::Otlp,
            &DetectorConfig::default(),
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("missing field `resourceSpans`")
        );
    }

    fn one_span(span: &str) -> String {
        format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#)
    }

    #[test]
    fn errors_name_line_and_problem_without_values() {
        let ok = one_span(
            r#"{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}"#,
        );
        let cases = [
            (format!("{ok}\n\n{{oops\n"), 3, "malformed JSON".to_owned()),
            (format!("{ok}\n[1]\n"), 2, "expected an OTLP JSON object".to_owned()),
            (
                r#"{"resourceSpans":{}}"#.to_owned(),
                1,
                "field `resourceSpans` must be an array, got object".to_owned(),
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[1]}]}]}"#.to_owned(),
                1,
                "`resourceSpans[0].scopeSpans[0].spans[0]` must be an object, got number".to_owned(),
            ),
            (
                one_span(r#"{"traceId":"s3cret-s3cret-s3cret"}"#),
                1,
                "field `resourceSpans[0].scopeSpans[0].spans[0].traceId` must be 32 hex digits (or the base64 of 16 bytes)".to_owned(),
            ),
            (
                one_span(r#"{"spanId":7}"#),
                1,
                "field `resourceSpans[0].scopeSpans[0].spans[0].spanId` must be a string, got number".to_owned(),
            ),
            (
                one_span(r#"{"startTimeUnixNano":"s3cret"}"#),
                1,
                "field `resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano` must be a decimal string of nanoseconds".to_owned(),
            ),
            (
                one_span(r#"{"attributes":[{"key":"db.statement","value":{"intValue":"424242"}}]}"#),
                1,
                "attribute `db.statement` of `resourceSpans[0].scopeSpans[0].spans[0]` must be a stringValue, got intValue".to_owned(),
            ),
            (
                one_span(r#"{"attributes":[{"value":{"stringValue":"s3cret"}}]}"#),
                1,
                "missing field `resourceSpans[0].scopeSpans[0].spans[0].attributes[0].key`".to_owned(),
            ),
            (
                one_span(r#"{"attributes":{}}"#),
                1,
                "field `resourceSpans[0].scopeSpans[0].spans[0].attributes` must be an array".to_owned(),
            ),
            (
                // A pretty-printed document: the line inside it.
                "{\n  \"resourceSpans\": [\n    {\"scopeSpans\": [}\n  ]\n}\n".to_owned(),
                3,
                "malformed JSON".to_owned(),
            ),
        ];
        for (input, line, needle) in cases {
            let e = otlp(&input).unwrap_err();
            let msg = e.to_string();
            assert_eq!(e.line(), line, "{msg}");
            assert!(msg.starts_with(&format!("line {line}: ")), "{msg}");
            assert!(msg.contains(&needle), "{msg} !~ {needle}");
            assert!(!msg.contains("s3cret") && !msg.contains("424242"), "{msg}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_io_error_with_line() {
        let input = format!("{}\n", one_span("{}"));
        let mut bytes = input.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let e =
            analyze_otlp(&bytes[..], &DetectorConfig::default(), Limits::default()).unwrap_err();
        assert!(matches!(e, TraceError::Io { line: 2, .. }), "{e}");
    }

    #[test]
    fn tolerant_of_protobuf_json_variants() {
        // snake_case names, numbers for fixed64, empty ids, unknown fields, `{}`.
        let span = r#"{"trace_id":"","span_id":"","parent_span_id":"","start_time_unix_nano":1000,
            "end_time_unix_nano":"3000","kind":"SPAN_KIND_CLIENT","extra":{"x":1},
            "attributes":[{"key":"db.query.text","value":{"string_value":"SELECT 1"}},
                          {"key":"other","value":{"kvlistValue":{"values":[]}}}]}"#
            .replace('\n', "");
        let doc = format!(
            r#"{{"resource_spans":[{{"scope_spans":[{{"spans":[{span},{span},{span},{span},{span}]}}]}}]}}"#
        );
        let (r, stats) = otlp(&format!("{{}}\n{doc}\n")).unwrap();
        assert_eq!(stats.documents, 2);
        assert_eq!(rows(&r), vec![("unknown".into(), Kind::Repeat, 5, true)]);
        assert_eq!(r.findings[0].db_time, Duration::from_micros(10));
    }

    #[test]
    fn parameters_from_query_parameter_attributes() {
        let span = |p: &str| {
            format!(
                r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","parentSpanId":"b7ad6b7169203331",
                "attributes":[{{"key":"db.query.text","value":{{"stringValue":"SELECT * FROM t WHERE a = $1 AND b = $2"}}}},
                {{"key":"db.query.parameter.1","value":{{"intValue":"9"}}}},
                {{"key":"db.query.parameter.0","value":{p}}}]}}"#
            )
            .replace('\n', "")
        };
        // Same values, written as string and as number: one parameter set.
        let same: Vec<String> = (0..5)
            .map(|i| {
                span(if i % 2 == 0 {
                    r#"{"intValue":"4"}"#
                } else {
                    r#"{"intValue":4}"#
                })
            })
            .collect();
        let (r, _) = otlp(&one_span(&same.join(","))).unwrap();
        assert_eq!(
            rows(&r),
            vec![("unknown".into(), Kind::Redundant, 5, false)]
        );
        let distinct: Vec<String> = (0..5)
            .map(|i| span(&format!(r#"{{"stringValue":"v{i}"}}"#)))
            .collect();
        let (r, _) = otlp(&one_span(&distinct.join(","))).unwrap();
        assert_eq!(rows(&r), vec![("unknown".into(), Kind::Repeat, 5, false)]);
    }

    #[test]
    fn caps_bound_memory() {
        let cfg = DetectorConfig::default();
        let routes =
            |r: &Report| -> Vec<String> { r.findings.iter().map(|f| f.route.clone()).collect() };
        // One group open after each document: the playlists and artists groups
        // are analysed after line 1, before their parent spans (line 2) are
        // seen; the search group after line 2, when the last group opens.
        let one_group = Limits {
            open_groups: 1,
            ..Limits::default()
        };
        let (r, stats) = analyze_otlp(SPLIT.as_bytes(), &cfg, one_group).unwrap();
        assert_eq!((stats.early_groups, stats.unknown_routes), (3, 3));
        assert_eq!(r.requests, 4);
        assert_eq!(routes(&r), ["unknown", "unknown", "/api/v1/search"]);
        // The same through the span cap (held database spans > 5).
        let few_spans = Limits {
            buffered_spans: 5,
            ..Limits::default()
        };
        let (r, stats) = analyze_otlp(SPLIT.as_bytes(), &cfg, few_spans).unwrap();
        assert_eq!(stats.early_groups, 3);
        assert_eq!(routes(&r), ["unknown", "unknown", "/api/v1/search"]);
        // One non-database span remembered: only the last one (load_artist).
        let one_known = Limits {
            known_spans: 1,
            ..Limits::default()
        };
        let (r, stats) = analyze_otlp(SPLIT.as_bytes(), &cfg, one_known).unwrap();
        assert_eq!(stats.early_groups, 0);
        assert_eq!(routes(&r), ["unknown", "load_artist", "unknown"]);

        let group_cap = Limits {
            group_spans: 3,
            ..Limits::default()
        };
        let (r, stats) = analyze_otlp(SPLIT.as_bytes(), &cfg, group_cap).unwrap();
        assert_eq!(stats.dropped_spans, 3 + 2 + 2);
        assert_eq!(r.statements, 3 + 3 + 3 + 2);

        let small_doc = Limits {
            document_bytes: 1000,
            ..Limits::default()
        };
        let e = analyze_otlp(format!("\n{SPLIT}").as_bytes(), &cfg, small_doc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: the JSON document starting here is larger than 1000 bytes"
        );
    }

    #[test]
    fn format_parses_and_prints() {
        for f in [Format::Auto, Format::Ndjson, Format::Otlp] {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        assert!("json".parse::<Format>().is_err());
        let stats = OtlpStats {
            documents: 2,
            spans: 22,
            db_spans: 18,
            unknown_routes: 1,
            ..OtlpStats::default()
        };
        assert_eq!(
            stats.to_string(),
            "otlp: 2 documents, 22 spans, 18 database spans; 1 groups with route `unknown` (parent and root span not in the input)"
        );
    }
}
