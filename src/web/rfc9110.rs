//! RFC 9110 conditional and range requests on a stored object, as one pure decision
//! shared by every storage backend: [`Conditions::parse`] reads the request's
//! `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`, `If-Range`
//! and `Range` field lines, and [`Conditions::decide`] evaluates them against the
//! object's [`Validators`] in the order of RFC 9110 §13.2.2, giving a [`Decision`]:
//!
//! 1. `If-Match` (strong comparison; `*` matches any existing object) false → 412;
//!    without `If-Match`, an `If-Unmodified-Since` older than the object → 412.
//! 2. `If-None-Match` (weak comparison) matching → 304; without `If-None-Match`, an
//!    `If-Modified-Since` not older than the object → 304.
//! 3. `GET` only (§14.2: GET is the only method ranges are defined for): a `Range` whose
//!    `If-Range` does not hold (a weak or other ETag, a date that is not exactly the
//!    object's `Last-Modified`, anything unparsable) is ignored → the whole object. A
//!    malformed `Range`, one in another unit than `bytes`, and one asking for several
//!    ranges are ignored too (a server may ignore `Range`, §14.2; several ranges are
//!    answered with the whole object rather than `multipart/byteranges`). A single
//!    range is clipped to the object (a last position past the end, a suffix longer
//!    than the object) → 206, or, when it starts past the end (or is `-0`), 416.
//!
//! Dates compare at the one-second resolution of HTTP dates. Nothing here knows a
//! framework or a backend: the handler passes the raw field lines in, and serves what
//! the decision says from a local file or an S3 object.

use std::time::{SystemTime, UNIX_EPOCH};

/// The raw field lines of the request that matter here, every line of each field in
/// the order received (a field sent twice has two entries).
#[derive(Debug, Default, Clone)]
pub struct Fields<'a> {
    pub if_match: Vec<&'a [u8]>,
    pub if_none_match: Vec<&'a [u8]>,
    pub if_modified_since: Vec<&'a [u8]>,
    pub if_unmodified_since: Vec<&'a [u8]>,
    pub if_range: Vec<&'a [u8]>,
    pub range: Vec<&'a [u8]>,
}

/// The request method, as far as these rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// One byte range as requested, before the object's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (last ≥ first; a last past the end is clipped).
    FromTo(u64, u64),
    /// `first-`: from `first` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The `Range` field value asking for the same bytes, to pass on to a backend.
    /// Positions past `i64::MAX` (S3 lengths are signed 64-bit; no object is that large)
    /// are written as `i64::MAX` or left open, which selects the same bytes of any object.
    pub fn header_value(self) -> String {
        const MAX: u64 = i64::MAX.unsigned_abs();
        match self {
            RangeSpec::FromTo(a, b) if b < MAX => format!("bytes={a}-{b}"),
            RangeSpec::FromTo(a, _) | RangeSpec::From(a) => format!("bytes={}-", a.min(MAX)),
            RangeSpec::Suffix(n) => format!("bytes=-{}", n.min(MAX)),
        }
    }

    /// The bytes it selects of an object of `length` bytes; `None` when it selects none.
    pub fn resolve(self, length: u64) -> Option<ByteRange> {
        let last = length.checked_sub(1)?;
        match self {
            RangeSpec::FromTo(first, end) if first <= last => Some(ByteRange {
                first,
                last: end.min(last),
            }),
            RangeSpec::From(first) if first <= last => Some(ByteRange { first, last }),
            RangeSpec::Suffix(n) if n > 0 => Some(ByteRange {
                first: length.saturating_sub(n),
                last,
            }),
            _ => None,
        }
    }
}

/// The bytes `first..=last` of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// How many bytes (never 0).
    pub fn count(self) -> u64 {
        self.last - self.first + 1
    }

    /// The `Content-Range` of these bytes of a `total`-byte object.
    pub fn content_range(self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// The `Content-Range` of a 416 for a `total`-byte object.
pub fn unsatisfied_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// What the object is, for the conditions: its ETag as sent (`"…"` or `W/"…"`), its
/// modification time and its length.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<SystemTime>,
    pub length: u64,
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole object.
    Full,
    /// 206 with these bytes.
    Partial(ByteRange),
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 416 (`Content-Range: bytes */length`).
    Unsatisfiable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    /// With its quotes.
    opaque: String,
}

impl EntityTag {
    fn parse(s: &str) -> Option<EntityTag> {
        let (weak, rest) = match s.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let valid = rest.len() >= 2
            && rest.starts_with('"')
            && rest.ends_with('"')
            && !rest[1..rest.len() - 1].contains('"');
        valid.then(|| EntityTag {
            weak,
            opaque: rest.to_string(),
        })
    }

    fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    fn weak_eq(&self, other: &EntityTag) -> bool {
        self.opaque == other.opaque
    }
}

/// An `If-Match` / `If-None-Match` value: `*`, or the entity tags it lists (parsing
/// stops at the first element that is not one, so garbage matches nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagList {
    Any,
    Tags(Vec<EntityTag>),
}

impl TagList {
    fn parse(lines: &[&[u8]]) -> Option<TagList> {
        if lines.is_empty() {
            return None;
        }
        let joined = joined(lines);
        if joined.trim() == "*" {
            return Some(TagList::Any);
        }
        let mut tags = Vec::new();
        let mut rest = joined.as_str();
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            let body = rest.strip_prefix("W/").unwrap_or(rest);
            let Some(after_quote) = body.strip_prefix('"') else {
                break;
            };
            let Some(end) = after_quote.find('"') else {
                break;
            };
            let taken = rest.len() - body.len() + end + 2;
            if let Some(tag) = EntityTag::parse(&rest[..taken]) {
                tags.push(tag);
            }
            rest = &rest[taken..];
        }
        Some(TagList::Tags(tags))
    }

    fn matches(&self, etag: Option<&EntityTag>, eq: fn(&EntityTag, &EntityTag) -> bool) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => etag.is_some_and(|e| tags.iter().any(|t| eq(t, e))),
        }
    }

    /// The value to pass on to a backend that evaluates it itself.
    fn header_value(&self) -> String {
        match self {
            TagList::Any => "*".to_string(),
            TagList::Tags(tags) => tags
                .iter()
                .map(|t| format!("{}{}", if t.weak { "W/" } else { "" }, t.opaque))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum IfRange {
    Tag(EntityTag),
    Date(u64),
    /// Unparsable (or sent twice): never holds.
    Invalid,
}

/// The parsed conditions of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    if_match: Option<TagList>,
    if_none_match: Option<TagList>,
    /// Seconds since the epoch; `None` when absent or invalid (then ignored).
    if_modified_since: Option<u64>,
    if_unmodified_since: Option<u64>,
    if_range: Option<IfRange>,
    /// `None` when absent or ignored.
    range: Option<RangeSpec>,
}

impl Conditions {
    pub fn parse(f: &Fields<'_>) -> Conditions {
        let if_range = match f.if_range.as_slice() {
            [] => None,
            [one] => Some(parse_if_range(&String::from_utf8_lossy(one))),
            _ => Some(IfRange::Invalid),
        };
        Conditions {
            if_match: TagList::parse(&f.if_match),
            if_none_match: TagList::parse(&f.if_none_match),
            if_modified_since: single_date(&f.if_modified_since),
            if_unmodified_since: single_date(&f.if_unmodified_since),
            if_range,
            range: match f.range.as_slice() {
                [one] => std::str::from_utf8(one).ok().and_then(parse_range),
                _ => None,
            },
        }
    }

    /// The single byte range asked for, if any (malformed, foreign and multiple ranges
    /// are `None`: ignored).
    pub fn range(&self) -> Option<RangeSpec> {
        self.range
    }

    /// `If-None-Match`, normalised, to pass on to a backend that evaluates it itself.
    pub fn if_none_match(&self) -> Option<String> {
        self.if_none_match.as_ref().map(TagList::header_value)
    }

    /// Whether the answer depends on more than the object's ETag once it is fetched
    /// (a precondition, a date or `If-Range` must be checked before choosing the bytes):
    /// a remote backend then reads the validators first.
    pub fn needs_validators_first(&self) -> bool {
        self.if_match.is_some()
            || self.if_unmodified_since.is_some()
            || (self.if_modified_since.is_some() && self.if_none_match.is_none())
            || (self.if_range.is_some() && self.range.is_some())
    }

    /// The answer for an object with these validators (RFC 9110 §13.2.2).
    pub fn decide(&self, v: &Validators<'_>, method: Method) -> Decision {
        let etag = v.etag.and_then(EntityTag::parse);
        let modified = v.last_modified.map(unix_seconds);
        if let Some(list) = &self.if_match {
            if !list.matches(etag.as_ref(), EntityTag::strong_eq) {
                return Decision::PreconditionFailed;
            }
        } else if let (Some(since), Some(m)) = (self.if_unmodified_since, modified)
            && m > since
        {
            return Decision::PreconditionFailed;
        }
        if let Some(list) = &self.if_none_match {
            if list.matches(etag.as_ref(), EntityTag::weak_eq) {
                return Decision::NotModified;
            }
        } else if let (Some(since), Some(m)) = (self.if_modified_since, modified)
            && m <= since
        {
            return Decision::NotModified;
        }
        let Some(spec) = self.range.filter(|_| method == Method::Get) else {
            return Decision::Full;
        };
        let range_holds = match &self.if_range {
            None => true,
            Some(IfRange::Tag(t)) => etag.as_ref().is_some_and(|e| t.strong_eq(e)),
            Some(IfRange::Date(d)) => modified == Some(*d),
            Some(IfRange::Invalid) => false,
        };
        if !range_holds {
            return Decision::Full;
        }
        match spec.resolve(v.length) {
            Some(bytes) => Decision::Partial(bytes),
            // An empty object has no bytes to send, but a suffix of it is satisfiable
            // (§14.1.1): the whole (empty) object.
            None if v.length == 0 && matches!(spec, RangeSpec::Suffix(n) if n > 0) => {
                Decision::Full
            }
            None => Decision::Unsatisfiable,
        }
    }
}

fn joined(lines: &[&[u8]]) -> String {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An HTTP date (any of the three forms RFC 9110 §5.6.7 makes recipients accept); a
/// field sent twice, or that is not a date, is invalid.
fn single_date(lines: &[&[u8]]) -> Option<u64> {
    match lines {
        [one] => parse_date(&String::from_utf8_lossy(one)),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<u64> {
    httpdate::parse_http_date(s.trim()).ok().map(unix_seconds)
}

fn parse_if_range(s: &str) -> IfRange {
    let s = s.trim();
    if let Some(tag) = EntityTag::parse(s) {
        return IfRange::Tag(tag);
    }
    parse_date(s).map_or(IfRange::Invalid, IfRange::Date)
}

/// `bytes=<one range-spec>` (unit case-insensitive; empty list elements allowed);
/// anything else, several ranges included, is `None`.
fn parse_range(value: &str) -> Option<RangeSpec> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return None;
    };
    let (first, last) = spec.split_once('-')?;
    match (number(first), number(last)) {
        (Some(a), Some(b)) if a <= b => Some(RangeSpec::FromTo(a, b)),
        (Some(a), None) if last.is_empty() => Some(RangeSpec::From(a)),
        (None, Some(n)) if first.is_empty() => Some(RangeSpec::Suffix(n)),
        _ => None,
    }
}

/// `1*DIGIT`, saturating: a position past `u64::MAX` is past any end anyway.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ETAG: &str = "\"v1\"";
    const MODIFIED: u64 = 1_700_000_000;
    const MODIFIED_HTTP: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    fn validators(length: u64) -> Validators<'static> {
        Validators {
            etag: Some(ETAG),
            last_modified: Some(UNIX_EPOCH + Duration::from_millis(MODIFIED * 1000 + 500)),
            length,
        }
    }

    fn decide(fields: &[(&str, &str)]) -> Decision {
        decide_as(fields, Method::Get, 1000)
    }

    fn decide_as(fields: &[(&str, &str)], method: Method, length: u64) -> Decision {
        let mut f = Fields::default();
        for (name, value) in fields {
            let v = value.as_bytes();
            match *name {
                "if-match" => f.if_match.push(v),
                "if-none-match" => f.if_none_match.push(v),
                "if-modified-since" => f.if_modified_since.push(v),
                "if-unmodified-since" => f.if_unmodified_since.push(v),
                "if-range" => f.if_range.push(v),
                "range" => f.range.push(v),
                other => panic!("{other}"),
            }
        }
        Conditions::parse(&f).decide(&validators(length), method)
    }

    fn partial(first: u64, last: u64) -> Decision {
        Decision::Partial(ByteRange { first, last })
    }

    #[test]
    fn ranges_are_parsed_strictly_and_clipped() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-99"), Some(FromTo(0, 99)));
        assert_eq!(parse_range("BYTES=5-"), Some(From(5)));
        assert_eq!(parse_range("bytes=-7"), Some(Suffix(7)));
        assert_eq!(parse_range("bytes=0-99, "), Some(FromTo(0, 99)));
        assert_eq!(
            parse_range("bytes=3-99999999999999999999999"),
            Some(FromTo(3, u64::MAX))
        );
        for ignored in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=--5",
            "bytes=+1-2",
            "bytes= 1 - 2",
            "items=0-1",
            "0-1",
            "bytes=0-1,3-4",
            "bytes=0-1,-5",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored:?}");
        }
        assert_eq!(
            FromTo(10, 5000).resolve(100),
            Some(ByteRange {
                first: 10,
                last: 99
            })
        );
        assert_eq!(
            Suffix(500).resolve(100),
            Some(ByteRange { first: 0, last: 99 })
        );
        assert_eq!(From(100).resolve(100), None);
        assert_eq!(Suffix(0).resolve(100), None);
        assert_eq!(From(0).resolve(0), None);
        assert_eq!(FromTo(2, 4).header_value(), "bytes=2-4");
        assert_eq!(FromTo(2, u64::MAX).header_value(), "bytes=2-");
        assert_eq!(From(u64::MAX).header_value(), "bytes=9223372036854775807-");
        assert_eq!(
            Suffix(u64::MAX).header_value(),
            "bytes=-9223372036854775807"
        );
        assert_eq!(
            ByteRange { first: 2, last: 4 }.content_range(9),
            "bytes 2-4/9"
        );
    }

    #[test]
    fn preconditions_come_first_in_rfc_order() {
        let d = decide;
        assert_eq!(d(&[("if-match", "\"v2\"")]), Decision::PreconditionFailed);
        assert_eq!(d(&[("if-match", "W/\"v1\"")]), Decision::PreconditionFailed);
        assert_eq!(d(&[("if-match", "garbage")]), Decision::PreconditionFailed);
        assert_eq!(d(&[("if-match", "\"v2\", \"v1\"")]), Decision::Full);
        assert_eq!(
            d(&[("if-match", "\"v2\""), ("if-match", ETAG)]),
            Decision::Full
        );
        assert_eq!(d(&[("if-match", "*")]), Decision::Full);
        let old = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            d(&[("if-unmodified-since", old)]),
            Decision::PreconditionFailed
        );
        assert_eq!(d(&[("if-unmodified-since", MODIFIED_HTTP)]), Decision::Full);
        assert_eq!(d(&[("if-unmodified-since", "soon")]), Decision::Full);
        // If-Match decides alone; it also wins over If-None-Match.
        assert_eq!(
            d(&[("if-match", ETAG), ("if-unmodified-since", old)]),
            Decision::Full
        );
        assert_eq!(
            d(&[("if-match", "\"v2\""), ("if-none-match", ETAG)]),
            Decision::PreconditionFailed
        );
        assert_eq!(d(&[("if-none-match", "W/\"v1\"")]), Decision::NotModified);
        assert_eq!(d(&[("if-none-match", "*")]), Decision::NotModified);
        assert_eq!(
            d(&[("if-modified-since", MODIFIED_HTTP)]),
            Decision::NotModified
        );
        assert_eq!(d(&[("if-modified-since", old)]), Decision::Full);
        // If-None-Match present: If-Modified-Since is not evaluated.
        assert_eq!(
            d(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", MODIFIED_HTTP)
            ]),
            Decision::Full
        );
        assert_eq!(
            decide_as(&[("if-match", "\"v2\"")], Method::Head, 1000),
            Decision::PreconditionFailed
        );
    }

    #[test]
    fn if_range_keeps_the_range_only_for_the_current_strong_validator() {
        let d = decide;
        let r = ("range", "bytes=0-9");
        assert_eq!(d(&[r]), partial(0, 9));
        assert_eq!(d(&[r, ("if-range", ETAG)]), partial(0, 9));
        assert_eq!(d(&[r, ("if-range", MODIFIED_HTTP)]), partial(0, 9));
        for stale in [
            "\"v0\"",
            "W/\"v1\"",
            "Tue, 14 Nov 2023 22:13:19 GMT",
            "garbage",
        ] {
            assert_eq!(d(&[r, ("if-range", stale)]), Decision::Full, "{stale}");
        }
        assert_eq!(
            d(&[r, ("if-range", ETAG), ("if-range", ETAG)]),
            Decision::Full
        );
        // If-Range without Range: nothing to do.
        assert_eq!(d(&[("if-range", "\"v0\"")]), Decision::Full);
    }

    #[test]
    fn ranges_apply_to_get_only_and_unsatisfiable_ones_are_416() {
        let d = decide;
        assert_eq!(d(&[("range", "bytes=990-5000")]), partial(990, 999));
        assert_eq!(d(&[("range", "bytes=-5000")]), partial(0, 999));
        assert_eq!(d(&[("range", "bytes=1000-")]), Decision::Unsatisfiable);
        assert_eq!(d(&[("range", "bytes=-0")]), Decision::Unsatisfiable);
        assert_eq!(d(&[("range", "bytes=0-1,5-6")]), Decision::Full);
        assert_eq!(
            d(&[("range", "bytes=0-1"), ("range", "bytes=0-1")]),
            Decision::Full
        );
        assert_eq!(
            decide_as(&[("range", "bytes=0-9")], Method::Head, 1000),
            Decision::Full
        );
        // An empty object: no first position is satisfiable, a suffix is (and empty).
        assert_eq!(
            decide_as(&[("range", "bytes=0-")], Method::Get, 0),
            Decision::Unsatisfiable
        );
        assert_eq!(
            decide_as(&[("range", "bytes=-5")], Method::Get, 0),
            Decision::Full
        );
        // Preconditions before ranges.
        assert_eq!(
            d(&[("range", "bytes=5000-"), ("if-none-match", ETAG)]),
            Decision::NotModified
        );
    }

    #[test]
    fn tag_lists_stop_at_garbage_and_are_passed_on_normalised() {
        let c = Conditions::parse(&Fields {
            if_none_match: vec![b" \"a\",W/\"b\" ,, \"c\"", b"junk, \"d\""],
            ..Fields::default()
        });
        assert_eq!(c.if_none_match().as_deref(), Some("\"a\", W/\"b\", \"c\""));
        assert!(!c.needs_validators_first());
        let c = Conditions::parse(&Fields {
            if_modified_since: vec![MODIFIED_HTTP.as_bytes()],
            ..Fields::default()
        });
        assert!(c.needs_validators_first());
        let c = Conditions::parse(&Fields {
            if_range: vec![ETAG.as_bytes()],
            ..Fields::default()
        });
        assert!(
            !c.needs_validators_first(),
            "If-Range without Range is ignored"
        );
    }
}
