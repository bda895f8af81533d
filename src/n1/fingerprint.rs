//! SQL normalisation ("query shape"), stable fingerprint ids and a cheap
//! statement classifier for metric labels.
//!
//! [`normalize`] turns one SQL statement into its *shape*: comments removed,
//! whitespace collapsed, keywords folded to lower case, every literal and
//! placeholder replaced by `?`, and `IN (...)` / multi-row `VALUES` lists
//! collapsed. Two executions of the same call site (sea-orm placeholders or
//! raw SQL with interpolated literals) therefore share one shape, and
//! [`FingerprintId`] is a stable 64-bit hash of that shape that can be put in
//! logs, metrics and allowlists.

use std::fmt;
use std::str::FromStr;

/// FNV-1a 64-bit hash. Stable across runs, processes and platforms (unlike
/// `std`'s `RandomState`), so ids computed today match ids in yesterday's logs.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// Stable id of a query shape: FNV-1a 64 of the [`normalize`]d SQL text.
///
/// Displays (and parses) as exactly 16 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FingerprintId(pub u64);

impl FingerprintId {
    /// Id of an already normalised SQL text.
    pub fn of_normalized(normalized: &str) -> Self {
        Self(fnv1a64(normalized.as_bytes()))
    }

    /// Id of a raw SQL statement (normalises it first).
    pub fn of_sql(sql: &str) -> Self {
        Self::of_normalized(&normalize(sql))
    }
}

impl fmt::Display for FingerprintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for FingerprintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FingerprintId({:016x})", self.0)
    }
}

/// Error returned when a string is not a 16-hex-digit fingerprint id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fingerprint id {0:?}: expected 16 hex digits")]
pub struct ParseFingerprintError(pub String);

impl FromStr for FingerprintId {
    type Err = ParseFingerprintError;

    /// Accepts exactly 16 hex digits (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseFingerprintError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(FingerprintId)
            .map_err(|_| ParseFingerprintError(s.to_owned()))
    }
}

impl serde::Serialize for FingerprintId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FingerprintId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TokKind {
    /// Unquoted identifier or keyword.
    Word,
    /// `"quoted"` or `` `quoted` `` identifier, text includes the quotes.
    Quoted,
    /// A literal (number, string, boolean) or a placeholder (`$1`, `?`).
    Param,
    /// Punctuation or operator.
    Punct,
}

#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    kind: TokKind,
    text: &'a str,
    /// Whitespace or a comment preceded this token in the source.
    space_before: bool,
}

impl Tok<'_> {
    fn is_punct(&self, p: &str) -> bool {
        self.kind == TokKind::Punct && self.text == p
    }

    fn is_word(&self, w: &str) -> bool {
        self.kind == TokKind::Word && self.text.eq_ignore_ascii_case(w)
    }
}

/// Keywords after which a `-` directly followed by a digit is a sign, not a
/// binary minus.
const SIGN_CONTEXT_KEYWORDS: &[&str] = &[
    "select", "where", "and", "or", "not", "then", "else", "when", "by", "values", "return",
    "limit", "offset", "in", "is", "between", "like", "set", "having", "on", "case",
];

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    prev: Option<(TokKind, &'a str)>,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_op_char(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
    )
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s,
            b: s.as_bytes(),
            i: 0,
            prev: None,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn slice(&self, a: usize, b: usize) -> &'a str {
        self.s.get(a..b).unwrap_or("")
    }

    /// Skips a quoted run starting at `self.i` (the opening quote); a doubled
    /// quote is an escaped quote; with `backslash`, `\x` escapes too.
    fn skip_quoted(&mut self, q: u8, backslash: bool) {
        self.i += 1;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if backslash && c == b'\\' {
                self.i += 2;
            } else if c == q {
                if self.at(self.i + 1) == q {
                    self.i += 2;
                } else {
                    self.i += 1;
                    return;
                }
            } else {
                self.i += 1;
            }
        }
        self.i = self.b.len();
    }

    fn skip_number(&mut self) {
        let b = self.b;
        if self.at(self.i) == b'0'
            && matches!(self.at(self.i + 1), b'x' | b'X')
            && self.at(self.i + 2).is_ascii_hexdigit()
        {
            self.i += 2;
            while self.at(self.i).is_ascii_hexdigit() {
                self.i += 1;
            }
            return;
        }
        while self.i < b.len() && b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.at(self.i) == b'.' {
            self.i += 1;
            while self.at(self.i).is_ascii_digit() {
                self.i += 1;
            }
        }
        if matches!(self.at(self.i), b'e' | b'E') {
            let mut j = self.i + 1;
            if matches!(self.at(j), b'+' | b'-') {
                j += 1;
            }
            if self.at(j).is_ascii_digit() {
                self.i = j;
                while self.at(self.i).is_ascii_digit() {
                    self.i += 1;
                }
            }
        }
    }

    /// `$tag$ ... $tag$` dollar-quoted string starting at `self.i`; returns
    /// false (consuming nothing) if this `$` does not open one.
    fn try_dollar_quote(&mut self) -> bool {
        let start = self.i;
        let mut j = start + 1;
        while j < self.b.len() && (self.b[j].is_ascii_alphanumeric() || self.b[j] == b'_') {
            j += 1;
        }
        if self.at(j) != b'$' {
            return false;
        }
        let tag = &self.b[start..=j];
        let body = j + 1;
        let end = self.b[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map_or(self.b.len(), |p| body + p + tag.len());
        self.i = end;
        true
    }

    fn sign_context(&self) -> bool {
        match self.prev {
            None => true,
            Some((TokKind::Punct, p)) => p != ")" && p != "]",
            Some((TokKind::Word, w)) => SIGN_CONTEXT_KEYWORDS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(w)),
            Some(_) => false,
        }
    }

    // One state machine over the bytes, on every statement's path: split into
    // functions, its states would be scattered and each call would re-check the cursor.
    #[allow(clippy::too_many_lines)]
    fn lex(&mut self) -> Option<Tok<'a>> {
        let b = self.b;
        let mut space = false;
        loop {
            let c = self.at(self.i);
            if self.i >= b.len() {
                return None;
            }
            if c.is_ascii_whitespace() {
                space = true;
                self.i += 1;
            } else if c == b'-' && self.at(self.i + 1) == b'-' {
                space = true;
                while self.i < b.len() && b[self.i] != b'\n' {
                    self.i += 1;
                }
            } else if c == b'/' && self.at(self.i + 1) == b'*' {
                space = true;
                // Postgres block comments nest.
                let mut depth = 0usize;
                while self.i < b.len() {
                    if b[self.i] == b'/' && self.at(self.i + 1) == b'*' {
                        depth += 1;
                        self.i += 2;
                    } else if b[self.i] == b'*' && self.at(self.i + 1) == b'/' {
                        depth -= 1;
                        self.i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.i += 1;
                    }
                }
            } else {
                break;
            }
        }
        let start = self.i;
        let c = b[start];
        let kind = match c {
            b'\'' => {
                self.skip_quoted(b'\'', false);
                TokKind::Param
            }
            b'"' | b'`' => {
                self.skip_quoted(c, false);
                TokKind::Quoted
            }
            b'0'..=b'9' => {
                self.skip_number();
                TokKind::Param
            }
            b'.' if self.at(start + 1).is_ascii_digit()
                && !matches!(self.prev, Some((TokKind::Word | TokKind::Quoted, _))) =>
            {
                self.skip_number();
                TokKind::Param
            }
            b'$' if self.at(start + 1).is_ascii_digit() => {
                self.i += 1;
                while self.at(self.i).is_ascii_digit() {
                    self.i += 1;
                }
                TokKind::Param
            }
            b'$' if self.try_dollar_quote() => TokKind::Param,
            b'?' if matches!(self.at(start + 1), b'|' | b'&') => {
                self.i += 2;
                TokKind::Punct
            }
            b'?' => {
                self.i += 1;
                TokKind::Param
            }
            _ if is_ident_start(c) => {
                self.i += 1;
                while self.i < b.len() && is_ident_char(b[self.i]) {
                    self.i += 1;
                }
                let word = self.slice(start, self.i);
                if self.i == start + 1
                    && self.at(self.i) == b'\''
                    && matches!(c, b'e' | b'E' | b'b' | b'B' | b'x' | b'X' | b'n' | b'N')
                {
                    // E'..' (backslash escapes), B'..', X'..', N'..' literals.
                    self.skip_quoted(b'\'', matches!(c, b'e' | b'E'));
                    TokKind::Param
                } else if word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false") {
                    TokKind::Param
                } else {
                    TokKind::Word
                }
            }
            b':' => {
                self.i += if self.at(start + 1) == b':' { 2 } else { 1 };
                TokKind::Punct
            }
            b'-' if self.at(start + 1).is_ascii_digit() && self.sign_context() => {
                self.i += 1;
                self.skip_number();
                TokKind::Param
            }
            _ if is_op_char(c) => {
                self.i += 1;
                while self.i < b.len() && is_op_char(b[self.i]) {
                    let n = self.at(self.i + 1);
                    if (b[self.i] == b'-' && n == b'-') || (b[self.i] == b'/' && n == b'*') {
                        break;
                    }
                    self.i += 1;
                }
                TokKind::Punct
            }
            _ => {
                // Any other ASCII byte: a one-character punctuation token.
                self.i += 1;
                TokKind::Punct
            }
        };
        let text = self.slice(start, self.i);
        self.prev = Some((kind, text));
        Some(Tok {
            kind,
            text,
            space_before: space,
        })
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        self.lex()
    }
}

// ---------------------------------------------------------------------------
// normalize
// ---------------------------------------------------------------------------

/// Index of the `)` matching the `(` at `open`, if any.
fn matching_paren(toks: &[Tok<'_>], open: usize) -> Option<usize> {
    if !toks.get(open)?.is_punct("(") {
        return None;
    }
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

/// If `toks[open..]` is `( ? [, ?]* )`, the index of the `)`.
fn param_list_end(toks: &[Tok<'_>], open: usize) -> Option<usize> {
    if !toks.get(open)?.is_punct("(") {
        return None;
    }
    let mut k = open + 1;
    loop {
        if toks.get(k)?.kind != TokKind::Param {
            return None;
        }
        let sep = toks.get(k + 1)?;
        if sep.is_punct(")") {
            return Some(k + 1);
        }
        if !sep.is_punct(",") {
            return None;
        }
        k += 2;
    }
}

fn needs_space(prev: Option<&Tok<'_>>, cur: &Tok<'_>) -> bool {
    let Some(p) = prev else {
        return false;
    };
    if p.kind == TokKind::Punct && matches!(p.text, "(" | "[" | "." | "::") {
        return false;
    }
    // `: ::` must not become `:::`, which lexes as `:: :` (found by fuzzing).
    if cur.kind == TokKind::Punct
        && matches!(cur.text, ")" | "]" | "," | "." | "::" | ";")
        && !(cur.text == "::" && p.is_punct(":"))
    {
        return false;
    }
    p.is_punct(",") || cur.space_before
}

/// Normalises one SQL statement into its shape.
///
/// * `--` and `/* */` (nested) comments are removed;
/// * whitespace runs collapse to one space; there is never a space after
///   `(`, `[`, `.`, `::` or before `)`, `]`, `,`, `.`, `::`, and always one
///   after `,`; elsewhere a space is kept iff the source had whitespace there;
/// * keyword case is folded by lower-casing (ASCII) **everything outside
///   quoted identifiers**; `"Quoted"` and `` `quoted` `` identifiers are kept
///   verbatim, so `"Users"` and `users` stay distinct, as they are in SQL;
/// * numbers (including `-1` in sign position, `1.5e3`, `0xff`), `'strings'`
///   (with `''` escapes, `E'..'`, `B'..'`, `X'..'`, `N'..'`, `$$..$$`),
///   `true`/`false`, and the placeholders `$1` and `?` all become `?`
///   (`NULL` is kept: `IS NULL` is a different shape);
/// * `IN (?, ?, ...)` becomes `in (?)` and `VALUES (..), (..), ...` keeps only
///   its first row, so batch sizes do not create new shapes;
/// * trailing `;` are dropped.
pub fn normalize(sql: &str) -> String {
    let toks: Vec<Tok<'_>> = Lexer::new(sql).collect();
    let mut end = toks.len();
    while end > 0 && toks[end - 1].is_punct(";") {
        end -= 1;
    }
    let toks = &toks[..end];

    let mut out = String::with_capacity(sql.len());
    let mut prev: Option<Tok<'_>> = None;
    // Pending skips of extra VALUES rows: (from, to). A stack, innermost last: a VALUES
    // nested in the first row of another is collapsed too, else the next pass would
    // collapse it (normalize must be idempotent; found by fuzzing).
    let mut skip: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Some(&(from, to)) = skip.last()
            && i == from
        {
            skip.pop();
            i = to;
            continue;
        }
        let t = toks[i];
        if t.is_word("in")
            && let Some(close) = param_list_end(toks, i + 1)
        {
            if needs_space(prev.as_ref(), &t) {
                out.push(' ');
            }
            out.push_str("in (?)");
            prev = Some(Tok {
                kind: TokKind::Punct,
                text: ")",
                space_before: false,
            });
            i = close + 1;
            continue;
        }
        if t.is_word("values")
            && let Some(first_end) = matching_paren(toks, i + 1)
        {
            let mut k = first_end + 1;
            while toks.get(k).is_some_and(|t| t.is_punct(",")) {
                match matching_paren(toks, k + 1) {
                    Some(e) => k = e + 1,
                    None => break,
                }
            }
            if k > first_end + 1 {
                skip.push((first_end + 1, k));
            }
        }
        if needs_space(prev.as_ref(), &t) {
            out.push(' ');
        }
        match t.kind {
            TokKind::Param => out.push('?'),
            TokKind::Quoted => out.push_str(t.text),
            TokKind::Word | TokKind::Punct => {
                out.extend(t.text.chars().map(|c| c.to_ascii_lowercase()));
            }
        }
        prev = Some(t);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// classify
// ---------------------------------------------------------------------------

/// Kind of statement, for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Select,
    Insert,
    Update,
    Delete,
    Other,
}

impl Op {
    /// Lower-case label: `select`, `insert`, `update`, `delete`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Select => "select",
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Other => "other",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn op_of(t: &Tok<'_>) -> Option<Op> {
    if t.kind != TokKind::Word {
        return None;
    }
    [
        ("select", Op::Select),
        ("insert", Op::Insert),
        ("update", Op::Update),
        ("delete", Op::Delete),
    ]
    .into_iter()
    .find(|(k, _)| t.text.eq_ignore_ascii_case(k))
    .map(|(_, op)| op)
}

/// Reads a (possibly schema-qualified) table name; returns its last part,
/// without quotes.
fn table_name<'a>(lx: &mut std::iter::Peekable<Lexer<'a>>) -> Option<&'a str> {
    let mut t = lx.next()?;
    if t.is_word("only") {
        t = lx.next()?;
    }
    let mut name = ident_text(&t)?;
    while lx.peek().is_some_and(|t| t.is_punct(".")) {
        lx.next();
        name = ident_text(&lx.next()?)?;
    }
    Some(name)
}

fn ident_text<'a>(t: &Tok<'a>) -> Option<&'a str> {
    match t.kind {
        TokKind::Word => Some(t.text),
        TokKind::Quoted => t
            .text
            .get(1..t.text.len().saturating_sub(1))
            .filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// Classifies a statement: its [`Op`] and the first table it touches (the
/// table after `FROM` for `SELECT`/`DELETE`, `INTO` for `INSERT`, `UPDATE`
/// for `UPDATE`), with quotes and any schema prefix removed.
///
/// `WITH ... AS (...)` prefixes are skipped to the main statement. The table
/// is a slice of the input, in its original case; callers that use it as a
/// metric label must bound it to a set of known tables (cardinality).
pub fn classify(sql: &str) -> (Op, Option<&str>) {
    let mut lx = Lexer::new(sql).peekable();
    let mut depth = 0usize;
    let mut base: Option<usize> = None; // depth of a leading WITH
    let op = loop {
        let Some(t) = lx.next() else {
            return (Op::Other, None);
        };
        if t.is_punct("(") {
            depth += 1;
            continue;
        }
        if t.is_punct(")") {
            depth = depth.saturating_sub(1);
            continue;
        }
        match base {
            None => {
                if let Some(op) = op_of(&t) {
                    break op;
                }
                if t.is_word("with") {
                    base = Some(depth);
                    continue;
                }
                if t.kind == TokKind::Word || t.kind == TokKind::Quoted {
                    return (Op::Other, None);
                }
            }
            Some(d) if d == depth => {
                if let Some(op) = op_of(&t) {
                    break op;
                }
            }
            Some(_) => {}
        }
    };
    let op_depth = depth;
    let table = match op {
        Op::Update => table_name(&mut lx),
        Op::Select | Op::Delete | Op::Insert => {
            let kw = if op == Op::Insert { "into" } else { "from" };
            let mut found = None;
            while let Some(t) = lx.next() {
                if t.is_punct("(") {
                    depth += 1;
                } else if t.is_punct(")") {
                    if depth == op_depth {
                        break;
                    }
                    depth -= 1;
                } else if depth == op_depth && t.is_word(kw) {
                    found = table_name(&mut lx);
                    break;
                }
            }
            found
        }
        Op::Other => None,
    };
    (op, table)
}

/// Words that make a statement other than a plain read, wherever they appear: a
/// data-modifying `WITH` (`WITH d AS (DELETE …) SELECT …` classifies as a select),
/// `SELECT … INTO` (creates a table), and functions with side effects outside the
/// transaction (sequences, notifications, advisory locks).
const NOT_READ_ONLY: &[&str] = &[
    "insert",
    "update",
    "delete",
    "merge",
    "into",
    "call",
    "copy",
    "nextval",
    "setval",
    "pg_notify",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_try_advisory_lock",
    "set_config",
];

/// Whether `sql` is a plain read: a `SELECT` ([`classify`]) naming none of the words of a
/// statement with effects (see `NOT_READ_ONLY`). Conservative: a read that names one
/// of them (a column called `update`) is not one here. Used to decide that a statement
/// may run a second time (`db::conn`'s retry of a read whose connection was lost).
pub fn is_read_only(sql: &str) -> bool {
    classify(sql).0 == Op::Select
        && !Lexer::new(sql).any(|t| {
            (t.kind == TokKind::Word || t.kind == TokKind::Quoted)
                && ident_text(&t)
                    .is_some_and(|w| NOT_READ_ONLY.iter().any(|k| w.eq_ignore_ascii_case(k)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s)
    }

    #[test]
    fn placeholders_and_literals() {
        assert_eq!(
            n(r#"SELECT "tracks"."id" FROM "tracks" WHERE "tracks"."id" = $1 LIMIT $2"#),
            r#"select "tracks"."id" from "tracks" where "tracks"."id" = ? limit ?"#
        );
        assert_eq!(
            n("select * from t where a = ? and b = ?"),
            "select * from t where a = ? and b = ?"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE id = 42"),
            "select * from t where id = ?"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE x = 1.5e3 OR y = .5 OR z = 0xFF"),
            "select * from t where x = ? or y = ? or z = ?"
        );
        assert_eq!(
            n("select * from t where name = 'O''Brien' and b = TRUE and c = false"),
            "select * from t where name = ? and b = ? and c = ?"
        );
        assert_eq!(
            n("select E'a\\'b', $$x'y$$, $tag$ q $tag$ from t"),
            "select ?, ?, ? from t"
        );
        assert_eq!(
            n("select * from t where id = -5"),
            "select * from t where id = ?"
        );
        assert_eq!(n("select a - 5 from t"), "select a - ? from t");
        assert_eq!(n("select a-5 from t"), "select a-? from t");
        assert_eq!(
            n("select * from t where x is null"),
            "select * from t where x is null"
        );
    }

    #[test]
    fn literals_with_different_values_share_a_shape() {
        let a = n("SELECT * FROM users WHERE id = 17 AND name = 'bob'");
        let b = n("SELECT * FROM users WHERE id = 123456 AND name = 'alice o''hara'");
        assert_eq!(a, b);
        assert_eq!(
            FingerprintId::of_normalized(&a),
            FingerprintId::of_normalized(&b)
        );
    }

    #[test]
    fn comments_and_whitespace() {
        assert_eq!(
            n(
                "  SELECT  *\n\tFROM t -- trailing comment\n WHERE /* c1 /* nested */ still */ id = $1 ; "
            ),
            "select * from t where id = ?"
        );
        assert_eq!(n("select/*x*/a from t"), "select a from t");
        assert_eq!(n("select a from t -- unterminated"), "select a from t");
        assert_eq!(n("select a from t /* unterminated"), "select a from t");
    }

    #[test]
    fn punctuation_spacing_is_canonical() {
        assert_eq!(
            n("SELECT count( * ) FROM t WHERE a IN ( SELECT b FROM u )"),
            "select count(*) from t where a in (select b from u)"
        );
        assert_eq!(n("select a ,b,c from t"), "select a, b, c from t");
        assert_eq!(
            n("select x :: int, y::text from s . t"),
            "select x::int, y::text from s.t"
        );
    }

    #[test]
    fn quoted_identifiers_kept() {
        assert_eq!(
            n(r#"SELECT "MixedCase"."Id" FROM "MixedCase""#),
            r#"select "MixedCase"."Id" from "MixedCase""#
        );
        assert_eq!(n("SELECT `a``b` FROM `T`"), "select `a``b` from `T`");
        assert_eq!(n(r#"select "a""b" from t"#), r#"select "a""b" from t"#);
    }

    #[test]
    fn in_lists_collapse() {
        let expected = "select * from t where id in (?)";
        assert_eq!(n("SELECT * FROM t WHERE id IN ($1, $2, $3)"), expected);
        assert_eq!(n("SELECT * FROM t WHERE id IN ($1,$2)"), expected);
        assert_eq!(n("SELECT * FROM t WHERE id IN (1, 2, 3, 4)"), expected);
        assert_eq!(n("SELECT * FROM t WHERE id IN ('a','b')"), expected);
        assert_eq!(n("SELECT * FROM t WHERE id IN (?)"), expected);
        assert_eq!(n("SELECT * FROM t WHERE id in(?,?,?)"), expected);
        assert_eq!(
            n("SELECT * FROM t WHERE id NOT IN (1,2)"),
            "select * from t where id not in (?)"
        );
        // Not a plain list: kept as is (literals still replaced).
        assert_eq!(
            n("SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))"),
            "select * from t where (a, b) in ((?, ?), (?, ?))"
        );
    }

    #[test]
    fn values_rows_collapse() {
        let expected = r#"insert into "t" ("a", "b") values (?, ?) returning "id""#;
        assert_eq!(
            n(r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2) RETURNING "id""#),
            expected
        );
        assert_eq!(
            n(r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4), ($5, $6) RETURNING "id""#),
            expected
        );
        assert_eq!(
            n(r#"INSERT INTO "t" ("a", "b") VALUES (1, 'x'),(2, 'y')  RETURNING "id""#),
            expected
        );
        assert_eq!(
            n("insert into t values (1, now()), (2, now())"),
            "insert into t values (?, now())"
        );
    }

    #[test]
    fn casts_any_limit_and_upsert() {
        assert_eq!(
            n("SELECT * FROM t WHERE id = $1::uuid AND tags && ARRAY[1,2]"),
            "select * from t where id = ?::uuid and tags && array[?, ?]"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE id = ANY($1) LIMIT 10 OFFSET 20"),
            "select * from t where id = any(?) limit ? offset ?"
        );
        assert_eq!(
            n("SELECT * FROM t WHERE x > -1 AND y BETWEEN -2 AND -3.5"),
            "select * from t where x > ? and y between ? and ?"
        );
        assert_eq!(
            n(
                r#"INSERT INTO "t" ("id", "n") VALUES ($1, $2), ($3, $4) ON CONFLICT ("id") DO UPDATE SET "n" = "excluded"."n""#
            ),
            r#"insert into "t" ("id", "n") values (?, ?) on conflict ("id") do update set "n" = "excluded"."n""#
        );
    }

    #[test]
    fn jsonb_question_operators_are_not_placeholders() {
        assert_eq!(
            n("select * from t where tags ?| $1"),
            "select * from t where tags ?| ?"
        );
    }

    #[test]
    fn unicode_and_garbage_do_not_panic() {
        assert_eq!(
            n("SELECT café FROM tëst WHERE x = 'ünï'"),
            "select café from tëst where x = ?"
        );
        for s in [
            "'", "\"", "$", "$a", "$$", "/*", "--", "e'", "0x", "-", ".", "::", "in (", "values (",
            "\u{0}", "é'", "1e", "1e+",
        ] {
            let _ = n(s);
            let _ = classify(s);
        }
        assert_eq!(n(""), "");
    }

    #[test]
    fn fingerprint_display_parse_roundtrip() {
        let id = FingerprintId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<FingerprintId>(), Ok(id));
        assert_eq!("00ABCDEF01234567".parse::<FingerprintId>(), Ok(id));
        assert!("abc".parse::<FingerprintId>().is_err());
        assert!("00abcdef0123456g".parse::<FingerprintId>().is_err());
        assert!("+0abcdef01234567".parse::<FingerprintId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00abcdef01234567\"");
        assert_eq!(serde_json::from_str::<FingerprintId>(&json).unwrap(), id);
    }

    #[test]
    fn fingerprint_is_stable_fnv1a() {
        // Known FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            FingerprintId::of_sql("SELECT 1"),
            FingerprintId::of_normalized("select ?")
        );
        assert_eq!(
            FingerprintId::of_normalized("select ?").to_string(),
            format!("{:016x}", fnv1a64(b"select ?"))
        );
    }

    #[test]
    fn only_plain_selects_are_read_only() {
        assert!(is_read_only(
            r#"SELECT "tracks"."id" FROM "tracks" WHERE "tracks"."id" = $1 LIMIT $2"#
        ));
        assert!(is_read_only(
            "SELECT COUNT(*) AS num_items FROM (SELECT 1) sub"
        ));
        assert!(is_read_only("WITH x AS (SELECT * FROM a) SELECT * FROM x"));
        assert!(is_read_only("SELECT 'insert into t' AS text"));
        for sql in [
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT 1",
            "SELECT * INTO new_t FROM t",
            "SELECT nextval('s')",
            r#"SELECT "pg_notify"('c', 'x')"#,
            "SELECT pg_advisory_lock(1)",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "BEGIN",
            "SET search_path = x",
            "",
        ] {
            assert!(!is_read_only(sql), "{sql}");
        }
    }

    #[test]
    fn classify_ops_and_tables() {
        assert_eq!(
            classify(r#"SELECT "tracks"."id" FROM "public"."tracks" WHERE id = $1"#),
            (Op::Select, Some("tracks"))
        );
        assert_eq!(
            classify("select * from users u join t on t.a = u.b"),
            (Op::Select, Some("users"))
        );
        assert_eq!(
            classify(r#"INSERT INTO "playlists" ("a") VALUES ($1)"#),
            (Op::Insert, Some("playlists"))
        );
        assert_eq!(
            classify("UPDATE tracks SET a = 1"),
            (Op::Update, Some("tracks"))
        );
        assert_eq!(
            classify("update only s.tracks set a = 1"),
            (Op::Update, Some("tracks"))
        );
        assert_eq!(
            classify("DELETE FROM `likes` WHERE id = ?"),
            (Op::Delete, Some("likes"))
        );
        assert_eq!(classify("/* c */ (SELECT 1)"), (Op::Select, None));
        assert_eq!(
            classify("SELECT (SELECT max(x) FROM inner_t) FROM outer_t"),
            (Op::Select, Some("outer_t"))
        );
        assert_eq!(
            classify("select * from (select * from t) sub"),
            (Op::Select, None)
        );
        assert_eq!(
            classify(
                "WITH x AS (SELECT * FROM a), y AS (DELETE FROM b RETURNING *) SELECT * FROM x"
            ),
            (Op::Select, Some("x"))
        );
        assert_eq!(
            classify("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"),
            (Op::Insert, Some("t"))
        );
        assert_eq!(classify("BEGIN"), (Op::Other, None));
        assert_eq!(classify("SET search_path = x"), (Op::Other, None));
        assert_eq!(classify(""), (Op::Other, None));
        assert_eq!(Op::Delete.as_str(), "delete");
        assert_eq!(Op::Other.to_string(), "other");
    }
}
