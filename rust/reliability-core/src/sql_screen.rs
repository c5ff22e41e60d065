//! Screening a plain SQL script before `psql` runs it: find every psql meta-command.
//!
//! `psql` obeys a backslash command anywhere its own lexer is outside a string, a quoted
//! identifier, a comment or `COPY` data: at the start of a line or after a statement on the
//! same line. `\!` runs a shell command, `\o |cmd` and `\g |cmd` pipe into one, `\connect`
//! leaves the scratch database. So this module follows psql's lexical rules
//! (`src/fe_utils/psqlscan.l`) byte by byte and refuses any backslash outside:
//! - `'...'` strings (`''` doubled), and `E'...'` strings with backslash escapes;
//! - `$$...$$` and `$tag$...$tag$` dollar quotes (`$1` is a parameter, not a tag; inside an
//!   identifier `$` is an identifier character);
//! - `"..."` identifiers, `--` comments, nested `/* */` comments;
//! - the data of a `COPY ... FROM stdin;` statement, up to its `\.` line.
//!
//! pg_dump's own `\restrict KEY` / `\unrestrict KEY` lines (pg_dump 15.14+, 16.10+, 17.6+,
//! the fix for CVE-2025-8714) are let through, each at most once, only as whole lines
//! between statements: [`LineKind::PgDumpMeta`] tells the caller, which leaves them out of
//! what psql reads.
//!
//! Where psql's reading depends on something a script can change while it runs, the
//! screener refuses instead of guessing:
//! - with `standard_conforming_strings = off` psql reads `'...'` like `E'...'`, so a
//!   backslash before a quote inside a plain string (`'a\'`) is refused;
//! - in the client-only multi-byte encodings (SJIS, BIG5, GBK, UHC, GB18030, JOHAB) the
//!   second byte of a character can look like a backslash, so inside a string with escapes a
//!   backslash right after a non-ASCII byte whose reading would change where the string ends
//!   is refused;
//! - number syntax differs between psql versions (`1e'x'`, `1$$`, `$1a$`), so a quote or a
//!   dollar right after a number, and `--` right after an exponent sign, are refused;
//! - `COPY ... FROM stdin` is accepted only as pg_dump writes it: a statement that starts a
//!   line between statements and ends with `;` on that same line. Anywhere else (and a table
//!   named `stdin`) it is refused, because psql reading the following lines as data where
//!   this screener does not, or the other way round, is exactly the gap to close.
//!
//! It never panics and runs in time linear in the input: one pass, constant work per byte
//! (a dollar tag is compared incrementally), no recursion that grows with the input.
//! Memory is the longest dollar tag plus the current line's excerpt.

use std::fmt;

/// What was refused, where: 1-based line and column (in bytes), and a short excerpt from the
/// refused byte on, escaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenError {
    pub line: usize,
    pub column: usize,
    pub reason: Reason,
    pub excerpt: String,
}

impl fmt::Display for ScreenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}: '{}'",
            self.line, self.column, self.reason, self.excerpt
        )
    }
}

impl std::error::Error for ScreenError {}

/// Why a script is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A backslash where psql reads a meta-command.
    MetaCommand,
    /// A backslash whose meaning (escape or not) decides where a string ends, and psql's
    /// reading of it depends on `standard_conforming_strings` or the client encoding.
    AmbiguousString,
    /// A quote, a dollar or `--` right after a number: psql versions split these differently.
    AmbiguousNumber,
    /// `COPY ... FROM stdin` that is not a statement of its own line.
    CopyNotAlone,
    /// A second `\restrict` or `\unrestrict` line.
    RepeatedRestrict,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::MetaCommand => {
                "a psql meta-command (a backslash outside any string, quoted identifier, comment or COPY data)"
            }
            Reason::AmbiguousString => {
                "a backslash before a quote whose meaning depends on standard_conforming_strings or the client encoding"
            }
            Reason::AmbiguousNumber => {
                "a quote, dollar or '--' right after a number, which psql versions read differently"
            }
            Reason::CopyNotAlone => "COPY ... FROM stdin that is not a statement of its own line as pg_dump writes it",
            Reason::RepeatedRestrict => "a second \\restrict or \\unrestrict line (pg_dump writes one of each)",
        })
    }
}

/// What a line was, for a caller that passes the script on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// SQL (or part of a string, comment, ...): passed on as it is.
    Sql,
    /// A line of `COPY ... FROM stdin` data, or its closing `\.`.
    CopyData,
    /// pg_dump's own `\restrict KEY` or `\unrestrict KEY`: to be left out (replaced by an
    /// empty line) when the caller restricts psql with a key of its own.
    PgDumpMeta,
}

/// Screens a whole script (lines split on `\n`). The fuzzing entry point.
pub fn screen(dump: &str) -> Result<(), ScreenError> {
    let mut s = Screener::new();
    for line in dump.split('\n') {
        s.line(line.as_bytes())?;
    }
    Ok(())
}

/// Whether the psql that printed `version` (`psql --version`: "psql (PostgreSQL) 15.18
/// (Debian ...)") has `\restrict`: the minor releases that fixed CVE-2025-8714 (13.22,
/// 14.19, 15.14, 16.10, 17.6) and every release from 18 on.
pub fn psql_has_restrict(version: &str) -> bool {
    let Some(number) = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
    else {
        return false;
    };
    let mut parts = number.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    match major {
        13 => minor >= 22,
        14 => minor >= 19,
        15 => minor >= 14,
        16 => minor >= 10,
        17 => minor >= 6,
        m => m >= 18,
    }
}

/// Which kind of string: `'...'` (escapes only if standard_conforming_strings is off) or
/// `E'...'` (escapes always).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Str {
    Plain,
    Escape,
}

/// The possible escape states inside a string, as a set: `plain` (the next quote is a
/// quote) and `escaped` (the next byte is escaped). Both at once: ambiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Esc {
    plain: bool,
    escaped: bool,
    prev_high: bool,
}

impl Esc {
    const START: Esc = Esc {
        plain: true,
        escaped: false,
        prev_high: false,
    };

    fn step(self, b: u8) -> Esc {
        let (plain, escaped) = if b == b'\\' {
            // A real backslash flips the state; after a non-ASCII byte it may instead be
            // the second byte of a character in a client-only encoding: no escape.
            (self.escaped || self.prev_high, self.plain)
        } else {
            (true, false)
        };
        Esc {
            plain,
            escaped,
            prev_high: b >= 0x80,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Lex {
    Normal,
    /// Inside a string.
    Str(Str, Esc),
    /// A quote that closes the string unless another quote follows (`''`).
    StrQuote(Str),
    /// After an `E'...'` string: whitespace with a newline and a quote continue it (as
    /// psql's `xqs` state does); anything else ends it.
    AfterEscape {
        newline: bool,
        dash: bool,
        comment: bool,
    },
    /// Inside `"..."`.
    Ident,
    /// A `"` that closes the identifier unless another `"` follows.
    IdentQuote,
    LineComment,
    /// Inside `/* */`, nested `depth` deep; `prev` is the previous byte when it was `/` or `*`.
    Block {
        depth: usize,
        prev: u8,
    },
    /// After a `$` that may open a dollar quote: the tag so far.
    DollarTag(Vec<u8>),
    /// Inside a dollar quote: its tag and how much of `$tag` the last bytes matched.
    Dollar {
        tag: Vec<u8>,
        matched: Option<usize>,
    },
}

/// The token being read in the normal state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    None,
    Ident,
    Number,
    /// A number followed by `e+` or `e-`.
    NumberSign,
}

/// A byte that is pending in the normal state: `-` (a comment if `-` follows) or `/`
/// (a comment if `*` follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    Dash,
    Slash,
}

const WORD_MAX: usize = 16;

/// The screener over a script fed line by line: keeps psql's lexer state between lines.
#[derive(Clone, Debug)]
pub struct Screener {
    lex: Lex,
    word: Word,
    word_buf: [u8; WORD_MAX],
    word_len: usize,
    pending: Pending,
    /// The current line (1-based) and column of the byte being read.
    line_no: usize,
    col: usize,
    /// The current line, for an excerpt.
    line: Vec<u8>,
    copy_data: bool,
    restricts: (bool, bool),
    // Statement state, as psql keeps it to know where a statement ends.
    paren: usize,
    begin: usize,
    ids: [u8; 4],
    id_count: usize,
    stmt_tokens: bool,
    line_tokens: bool,
    stmt_first_is_ident: bool,
    stmt_is_copy: bool,
    stmt_line: usize,
    last_from: bool,
    copy_stmt: bool,
    copy_ends_line: bool,
}

impl Default for Screener {
    fn default() -> Self {
        Screener::new()
    }
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// `\restrict KEY` or `\unrestrict KEY` as pg_dump writes them: which one.
fn pg_dump_meta(line: &[u8]) -> Option<bool> {
    let (restrict, key) = if let Some(k) = line.strip_prefix(b"\\restrict ") {
        (true, k)
    } else {
        (false, line.strip_prefix(b"\\unrestrict ")?)
    };
    (!key.is_empty() && key.len() <= 64 && key.iter().all(u8::is_ascii_alphanumeric)).then_some(restrict)
}

impl Screener {
    pub fn new() -> Screener {
        Screener {
            lex: Lex::Normal,
            word: Word::None,
            word_buf: [0; WORD_MAX],
            word_len: 0,
            pending: Pending::None,
            line_no: 0,
            col: 0,
            line: Vec::new(),
            copy_data: false,
            restricts: (false, false),
            paren: 0,
            begin: 0,
            ids: [0; 4],
            id_count: 0,
            stmt_tokens: false,
            line_tokens: false,
            stmt_first_is_ident: false,
            stmt_is_copy: false,
            stmt_line: 0,
            last_from: false,
            copy_stmt: false,
            copy_ends_line: false,
        }
    }

    /// Screens the next line (without its `\n`).
    pub fn line(&mut self, line: &[u8]) -> Result<LineKind, ScreenError> {
        self.line_no += 1;
        self.col = 0;
        self.line.clear();
        if self.copy_data {
            // psql sends these lines to the server as they are; `\.` alone ends them.
            if line == b"\\." || line == b"\\.\r" {
                self.copy_data = false;
            }
            return Ok(LineKind::CopyData);
        }
        // Kept for an excerpt: the first bytes are enough for any refusal near them, and
        // a refusal further on quotes from the refused byte (see `refuse`).
        self.line.extend_from_slice(line);
        if self.between_statements() {
            if let Some(restrict) = pg_dump_meta(line) {
                let seen = if restrict {
                    &mut self.restricts.0
                } else {
                    &mut self.restricts.1
                };
                if *seen {
                    self.col = 1;
                    return Err(self.refuse(Reason::RepeatedRestrict));
                }
                *seen = true;
                return Ok(LineKind::PgDumpMeta);
            }
        }
        self.line_tokens = false;
        for (i, &b) in line.iter().enumerate() {
            self.col = i + 1;
            self.byte(b)?;
        }
        self.col = line.len() + 1;
        self.byte(b'\n')?;
        if self.copy_ends_line {
            self.copy_ends_line = false;
            self.copy_data = true;
        }
        Ok(LineKind::Sql)
    }

    /// psql's query buffer is empty and its lexer in its initial state.
    fn between_statements(&self) -> bool {
        self.lex == Lex::Normal
            && self.word == Word::None
            && self.pending == Pending::None
            && !self.stmt_tokens
            && self.paren == 0
            && self.begin == 0
    }

    fn refuse(&self, reason: Reason) -> ScreenError {
        let from = self.col.saturating_sub(1).min(self.line.len());
        let rest = self.line.get(from..).unwrap_or_default();
        let shown: String = String::from_utf8_lossy(rest).chars().take(40).collect();
        let mut excerpt: String = shown.escape_debug().collect();
        if rest.len() > shown.len() {
            excerpt.push_str("...");
        }
        ScreenError {
            line: self.line_no,
            column: self.col,
            reason,
            excerpt,
        }
    }

    fn byte(&mut self, b: u8) -> Result<(), ScreenError> {
        match std::mem::replace(&mut self.lex, Lex::Normal) {
            Lex::Normal => self.normal(b),
            Lex::Str(kind, esc) => {
                if b != b'\'' {
                    self.lex = Lex::Str(kind, esc.step(b));
                    return Ok(());
                }
                match (kind, esc.plain, esc.escaped) {
                    // With standard_conforming_strings off this quote would be escaped.
                    (Str::Plain, _, true) | (Str::Escape, true, true) => Err(self.refuse(Reason::AmbiguousString)),
                    (Str::Escape, false, true) => {
                        self.lex = Lex::Str(kind, Esc::START);
                        Ok(())
                    }
                    _ => {
                        self.lex = Lex::StrQuote(kind);
                        Ok(())
                    }
                }
            }
            Lex::StrQuote(kind) => {
                if b == b'\'' {
                    self.lex = Lex::Str(kind, Esc::START);
                    return Ok(());
                }
                match kind {
                    // A plain string continued on another line reads as a new plain string.
                    Str::Plain => self.normal(b),
                    Str::Escape => self.after_escape(false, false, false, b),
                }
            }
            Lex::AfterEscape { newline, dash, comment } => self.after_escape(newline, dash, comment, b),
            Lex::Ident => {
                self.lex = if b == b'"' { Lex::IdentQuote } else { Lex::Ident };
                Ok(())
            }
            Lex::IdentQuote => {
                if b == b'"' {
                    self.lex = Lex::Ident;
                    Ok(())
                } else {
                    self.normal(b)
                }
            }
            Lex::LineComment => {
                if b != b'\n' && b != b'\r' {
                    self.lex = Lex::LineComment;
                }
                Ok(())
            }
            Lex::Block { depth, prev } => {
                self.lex = match (prev, b) {
                    (b'/', b'*') => Lex::Block {
                        depth: depth.saturating_add(1),
                        prev: 0,
                    },
                    (b'*', b'/') if depth <= 1 => Lex::Normal,
                    (b'*', b'/') => Lex::Block {
                        depth: depth - 1,
                        prev: 0,
                    },
                    (_, b'/' | b'*') => Lex::Block { depth, prev: b },
                    _ => Lex::Block { depth, prev: 0 },
                };
                Ok(())
            }
            Lex::DollarTag(mut tag) => {
                if b == b'$' {
                    self.lex = Lex::Dollar { tag, matched: None };
                    Ok(())
                } else if tag.is_empty() && b.is_ascii_digit() {
                    // `$1`: a parameter, read like a number.
                    self.word = Word::Number;
                    Ok(())
                } else if (tag.is_empty() && ident_start(b)) || (!tag.is_empty() && ident_cont(b) && b != b'$') {
                    tag.push(b);
                    self.lex = Lex::DollarTag(tag);
                    Ok(())
                } else {
                    // Not a dollar quote: psql reads the `$` alone and then the rest again,
                    // an identifier. (Bytes of an identifier never come back here.)
                    for t in tag {
                        self.normal(t)?;
                    }
                    self.normal(b)
                }
            }
            Lex::Dollar { tag, matched } => {
                let matched = if b == b'$' {
                    if matched == Some(tag.len()) {
                        self.word = Word::None;
                        return Ok(());
                    }
                    Some(0)
                } else {
                    match matched {
                        Some(i) if tag.get(i) == Some(&b) => Some(i + 1),
                        _ => None,
                    }
                };
                self.lex = Lex::Dollar { tag, matched };
                Ok(())
            }
        }
    }

    /// psql's `xqs` state after an `E'...'` string.
    fn after_escape(&mut self, newline: bool, dash: bool, comment: bool, b: u8) -> Result<(), ScreenError> {
        let state = |newline, dash, comment| Lex::AfterEscape { newline, dash, comment };
        self.lex = if comment {
            if b == b'\n' || b == b'\r' {
                state(true, false, false)
            } else {
                state(newline, false, true)
            }
        } else if dash {
            if b == b'-' {
                state(newline, false, true)
            } else {
                self.lex = Lex::Normal;
                self.normal(b'-')?;
                return self.byte(b);
            }
        } else {
            match b {
                b' ' | b'\t' | b'\x0c' => state(newline, false, false),
                b'\n' | b'\r' => state(true, false, false),
                b'-' => state(newline, true, false),
                b'\'' if newline => Lex::Str(Str::Escape, Esc::START),
                // psql 16 counts a vertical tab as white space, psql 15 does not.
                b'\x0b' => return Err(self.refuse(Reason::AmbiguousString)),
                _ => {
                    self.lex = Lex::Normal;
                    return self.normal(b);
                }
            }
        };
        Ok(())
    }

    /// A new token starts (not white space, not a comment).
    fn token(&mut self) -> Result<(), ScreenError> {
        if self.copy_ends_line {
            return Err(self.refuse(Reason::CopyNotAlone));
        }
        if !self.stmt_tokens {
            self.stmt_tokens = true;
            self.stmt_line = self.line_no;
            self.stmt_first_is_ident = !self.line_tokens;
            self.stmt_is_copy = false;
        } else {
            self.stmt_first_is_ident = false;
        }
        self.line_tokens = true;
        Ok(())
    }

    /// A byte in psql's initial state.
    fn normal(&mut self, b: u8) -> Result<(), ScreenError> {
        self.lex = Lex::Normal;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Dash if b == b'-' => {
                self.lex = Lex::LineComment;
                return Ok(());
            }
            Pending::Slash if b == b'*' => {
                self.lex = Lex::Block { depth: 1, prev: 0 };
                return Ok(());
            }
            Pending::Dash | Pending::Slash => {
                self.token()?;
                self.last_from = false;
            }
            Pending::None => {}
        }
        match self.word {
            Word::Ident if ident_cont(b) => return self.push_word(b),
            // `E'...'`: the `E` was no identifier but the start of an escape string.
            Word::Ident if b == b'\'' && (self.word_is("e")) => {
                self.word = Word::None;
                self.word_len = 0;
                self.last_from = false;
                self.lex = Lex::Str(Str::Escape, Esc::START);
                return Ok(());
            }
            Word::Ident => self.end_ident()?,
            Word::Number if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b >= 0x80 => {
                return self.push_word(b)
            }
            Word::Number if (b == b'+' || b == b'-') && matches!(self.word_buf_last(), Some(b'e' | b'E')) => {
                self.word = Word::NumberSign;
                return Ok(());
            }
            Word::Number | Word::NumberSign if matches!(b, b'\'' | b'$') => {
                return Err(self.refuse(Reason::AmbiguousNumber))
            }
            Word::NumberSign if b.is_ascii_digit() => {
                self.word = Word::Number;
                return Ok(());
            }
            Word::NumberSign if b == b'-' => return Err(self.refuse(Reason::AmbiguousNumber)),
            Word::Number | Word::NumberSign | Word::None => {}
        }
        self.word = Word::None;
        self.word_len = 0;
        match b {
            b'\\' => return Err(self.refuse(Reason::MetaCommand)),
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {}
            b'-' => self.pending = Pending::Dash,
            b'/' => self.pending = Pending::Slash,
            b'\'' => {
                self.token()?;
                self.last_from = false;
                self.lex = Lex::Str(Str::Plain, Esc::START);
            }
            b'"' => {
                self.token()?;
                self.last_from = false;
                self.lex = Lex::Ident;
            }
            b'$' => {
                self.token()?;
                self.last_from = false;
                self.lex = Lex::DollarTag(Vec::new());
            }
            b'0'..=b'9' => {
                self.token()?;
                self.last_from = false;
                self.word = Word::Number;
                self.push_word(b)?;
            }
            _ if ident_start(b) => {
                self.token()?;
                self.word = Word::Ident;
                self.push_word(b)?;
            }
            _ => {
                self.token()?;
                self.last_from = false;
                match b {
                    b'(' => self.paren = self.paren.saturating_add(1),
                    b')' => self.paren = self.paren.saturating_sub(1),
                    b';' if self.paren == 0 && self.begin == 0 => self.end_statement()?,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn word_buf_last(&self) -> Option<u8> {
        self.word_len.checked_sub(1).and_then(|i| self.word_buf.get(i).copied())
    }

    fn push_word(&mut self, b: u8) -> Result<(), ScreenError> {
        if let Some(slot) = self.word_buf.get_mut(self.word_len) {
            *slot = b;
        }
        self.word_len = self.word_len.saturating_add(1);
        Ok(())
    }

    /// The identifier just read, lower-cased, if it is short enough to be a keyword.
    fn word_is(&self, keyword: &str) -> bool {
        self.word_len == keyword.len()
            && self
                .word_buf
                .get(..self.word_len)
                .is_some_and(|w| w.eq_ignore_ascii_case(keyword.as_bytes()))
    }

    /// An identifier ended: psql's `BEGIN ... END` heuristic for SQL-standard function
    /// bodies, and `COPY ... FROM stdin`.
    fn end_ident(&mut self) -> Result<(), ScreenError> {
        self.word = Word::None;
        if self.id_count == 0 {
            self.ids = [0; 4];
        }
        for (kw, letter) in [
            ("create", b'c'),
            ("function", b'f'),
            ("procedure", b'p'),
            ("or", b'o'),
            ("replace", b'r'),
        ] {
            if self.word_is(kw) {
                if let Some(slot) = self.ids.get_mut(self.id_count) {
                    *slot = letter;
                }
            }
        }
        self.id_count = self.id_count.saturating_add(1);
        let ids = self.ids;
        let in_routine = ids[0] == b'c'
            && (ids[1] == b'f'
                || ids[1] == b'p'
                || (ids[1] == b'o' && ids[2] == b'r' && (ids[3] == b'f' || ids[3] == b'p')));
        if in_routine && self.paren == 0 {
            if self.word_is("begin") {
                self.begin = self.begin.saturating_add(1);
            } else if self.word_is("case") {
                if self.begin >= 1 {
                    self.begin = self.begin.saturating_add(1);
                }
            } else if self.word_is("end") {
                self.begin = self.begin.saturating_sub(1);
            }
        }
        if self.stmt_first_is_ident && self.stmt_line == self.line_no && self.word_is("copy") {
            self.stmt_is_copy = true;
        }
        self.stmt_first_is_ident = false;
        if self.last_from && self.word_is("stdin") {
            if !(self.stmt_is_copy && self.stmt_line == self.line_no && self.paren == 0 && self.begin == 0) {
                return Err(self.refuse(Reason::CopyNotAlone));
            }
            self.copy_stmt = true;
        }
        self.last_from = self.word_is("from");
        self.word_len = 0;
        Ok(())
    }

    fn end_statement(&mut self) -> Result<(), ScreenError> {
        if self.copy_stmt {
            if self.stmt_line != self.line_no {
                return Err(self.refuse(Reason::CopyNotAlone));
            }
            self.copy_ends_line = true;
        }
        self.copy_stmt = false;
        self.stmt_tokens = false;
        self.stmt_is_copy = false;
        self.stmt_first_is_ident = false;
        self.last_from = false;
        self.id_count = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok`: the script passes; `Err((line, column, reason))`: refused there.
    fn check(input: &str, expected: Result<(), (usize, usize, Reason)>) {
        let got = screen(input).map_err(|e| (e.line, e.column, e.reason));
        assert_eq!(got, expected, "{input:?}");
    }

    fn refused(line: usize, column: usize, reason: Reason) -> Result<(), (usize, usize, Reason)> {
        Err((line, column, reason))
    }

    use Reason::*;

    #[test]
    fn meta_commands_anywhere_psql_reads_them_are_refused() {
        for (input, line, column) in [
            ("\\! touch /tmp/x\n", 1, 1),
            ("SELECT 1; \\! touch /tmp/x\n", 1, 11),
            ("SELECT 1 \\g |touch /tmp/x\n", 1, 10),
            ("\\o |touch /tmp/x\nSELECT 1;\n", 1, 1),
            ("SET a = 1;\n\\connect postgres\nDROP TABLE t;\n", 2, 1),
            ("SET a = 1;\n  \\c postgres\n", 2, 3),
            ("\\copy t from program 'id'\n", 1, 1),
            ("\\set x 1\n", 1, 1),
            ("\\i /etc/passwd\n", 1, 1),
            ("\\ir x.sql\n", 1, 1),
            ("SELECT 'x' \\gexec\n", 1, 12),
            ("SELECT 1 \\;\n", 1, 10),
            // After strings, dollar quotes, identifiers and comments that close on the line.
            ("SELECT $$a\\b$$; \\! id\n", 1, 17),
            ("SELECT $fn$ $$ \\ $fn$ \\! id\n", 1, 23),
            ("SELECT E'\\\\'; \\! id\n", 1, 15),
            ("SELECT E'\\''; \\! id\n", 1, 15),
            ("SELECT 'a''b'; \\! id\n", 1, 16),
            ("SELECT \"a\\\"\\! id\n", 1, 12),
            ("SELECT /* \\ /* \\ */ \\ */ \\! id\n", 1, 26),
            ("SELECT 1 -- \\! id\r\\! id\n", 1, 19),
            ("SELECT 1; /* a\n */ \\! id\n", 2, 5),
            (
                "CREATE FUNCTION f() RETURNS int AS $$\nSELECT 1\n$$ LANGUAGE sql; \\! id\n",
                3,
                18,
            ),
            // After COPY data: the lines after `\.` are SQL again.
            ("COPY t (a) FROM stdin;\n\\N\n\\.\n\\c other\n", 4, 1),
            ("COPY t (a) FROM stdin;\n\\.\nSELECT 1; \\! id\n", 3, 11),
            // E'' continued on another line stays an escape string: `\'` is escaped there.
            ("SELECT E'a'\n'\\'' \\! id '';\n", 2, 6),
            // A dollar sign that opens no quote, an identifier with `$`, a parameter.
            ("SELECT a$$ \\! id\n", 1, 12),
            ("SELECT $1 \\! id\n", 1, 11),
            ("SELECT $a \\! id\n", 1, 11),
            ("SELECT $e'\\'' \\! id\n", 1, 15),
        ] {
            check(input, refused(line, column, MetaCommand));
        }
    }

    #[test]
    fn what_psql_versions_or_settings_read_differently_is_refused() {
        for (input, line, column, reason) in [
            // standard_conforming_strings off: `'\'` does not end there.
            ("SELECT '\\'' \\! id '';\n", 1, 10, AmbiguousString),
            ("SELECT 'a\\' \\! id '\n", 1, 11, AmbiguousString),
            ("SELECT 'é\\' \\! id '\n", 1, 12, AmbiguousString),
            ("SELECT '\\\\\\'' \\! id '\n", 1, 12, AmbiguousString),
            // SJIS: 0x95 0x5c is one character, so E'..\x95\' may end at the quote.
            ("SELECT E'\u{95}\\'; \\! id '\n", 1, 13, AmbiguousString),
            ("SELECT E'a'\x0b\n'b'\n", 1, 12, AmbiguousString),
            ("SELECT 1e'x'\n", 1, 10, AmbiguousNumber),
            ("SELECT 1$$ \\! $$\n", 1, 9, AmbiguousNumber),
            ("SELECT $1a$$ \\! $$\n", 1, 11, AmbiguousNumber),
            ("SELECT 1e--\n", 1, 11, AmbiguousNumber),
            ("SELECT 1; COPY t FROM stdin;\nx\n\\.\n", 1, 28, CopyNotAlone),
            ("COPY t FROM stdin\n;\nx\n\\.\n", 2, 1, CopyNotAlone),
            ("COPY t FROM stdin; SELECT 1;\n", 1, 20, CopyNotAlone),
            (
                "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;\nCOPY t FROM stdin;\n",
                2,
                18,
                CopyNotAlone,
            ),
            ("SELECT * FROM stdin;\n", 1, 20, CopyNotAlone),
            ("\\restrict a\n\\restrict a\n", 2, 1, RepeatedRestrict),
        ] {
            check(input, refused(line, column, reason));
        }
    }

    #[test]
    fn backslashes_in_strings_comments_and_copy_data_pass() {
        for input in [
            "SELECT 'a\\b', 'it''s \\ here', 'C:\\\\x';\n",
            "SELECT E'a\\nb', E'\\'', e'\\\\', E'\\x41\\101';\n",
            "SELECT E'a'\n  -- continued\n  '\\'';\n",
            "SELECT $$ \\! id $$, $a$ $$ \\ $a$, $b1$ $b $b1$;\n",
            "SELECT \"a\\b\", \"x\"\"\\\";\n",
            "-- \\! in a comment\n/* \\! /* nested \\ */ still \\ */ SELECT 1;\n",
            "COPY public.t (a, \"b;c\") FROM stdin;\n\\N\t\\\\\\t\n\\connect x\n\\.\nSELECT 1;\n",
            "COPY t FROM stdin;\r\na\r\n\\.\r\nSELECT 1;\n",
            "SELECT 1e-5, 1.5e+3, 0x1F, 1_000, a$b, $1;\n",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nCOPY t FROM stdin;\n\\N\n\\.\n",
            "SELECT 'é\\ ', E'é\\n';\n",
            "\\restrict abc123\nSELECT 1;\n\\unrestrict abc123\n",
            "",
        ] {
            check(input, Ok(()));
        }
    }

    #[test]
    fn pg_dump_plain_output_passes_and_its_meta_lines_are_named() {
        // pg_dump 15.18's plain output (shape kept; a function, a comment, COPY data).
        let dump = "--\n-- PostgreSQL database dump\n--\n\n\\restrict FCARcxDqvXqfaO2Pr1lLa7iOOOWiFaV0klVi2KIYT7Q7QintQ4eWOlZuFXlsehW\n\n\
            SET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n\
            CREATE FUNCTION public.f() RETURNS text\n    LANGUAGE plpgsql\n    AS $$ BEGIN RETURN 'x\\y'; END $$;\n\n\
            CREATE TABLE public.t (\n    a text,\n    b integer\n);\n\nCOMMENT ON TABLE public.t IS 'it''s \\ here';\n\n\
            COPY public.t (a, b) FROM stdin;\nback\\\\slash\\ttab\t1\n\\N\t2\n\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n\
            \\unrestrict FCARcxDqvXqfaO2Pr1lLa7iOOOWiFaV0klVi2KIYT7Q7QintQ4eWOlZuFXlsehW\n\n";
        check(dump, Ok(()));
        let mut s = Screener::new();
        let kinds: Vec<(usize, LineKind)> = dump
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, s.line(l.as_bytes()).unwrap_or(LineKind::Sql)))
            .filter(|(_, k)| *k != LineKind::Sql)
            .collect();
        assert_eq!(
            kinds,
            vec![
                (5, LineKind::PgDumpMeta),
                (22, LineKind::CopyData),
                (23, LineKind::CopyData),
                (24, LineKind::CopyData),
                (31, LineKind::PgDumpMeta)
            ]
        );
        // Only as whole lines between statements.
        check("SELECT 1\n\\restrict abc\n;\n", refused(2, 1, MetaCommand));
        check("\\restrict abc; \\! id\n", refused(1, 1, MetaCommand));
        check("\\restrict a-b\n", refused(1, 1, MetaCommand));
    }

    #[test]
    fn psql_versions_with_restrict() {
        for (version, want) in [
            ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", true),
            ("psql (PostgreSQL) 15.13", false),
            ("psql (PostgreSQL) 13.22", true),
            ("psql (PostgreSQL) 16.9", false),
            ("psql (PostgreSQL) 17.6", true),
            ("psql (PostgreSQL) 18beta1", true),
            ("psql (PostgreSQL) 12.22", false),
            ("psql (PostgreSQL) 9.6.24", false),
            ("no version", false),
        ] {
            assert_eq!(psql_has_restrict(version), want, "{version}");
        }
    }

    #[test]
    fn errors_name_the_line_and_quote_a_short_escaped_excerpt() {
        let e = screen("SELECT 1;\nSELECT 2; \\! printf '\\033]0;x\\007' && touch /tmp/a-very-long-marker-file-name\n")
            .expect_err("refused");
        assert_eq!(e.line, 2);
        assert_eq!(
            e.to_string(),
            "line 2, column 11: a psql meta-command (a backslash outside any string, quoted identifier, comment or COPY data): '\\\\! printf \\'\\\\033]0;x\\\\007\\' && touch /tmp/a...'"
        );
    }

    #[test]
    fn hostile_shapes_end_in_linear_time() {
        // Deep comment nesting, a long dollar tag almost matched again and again, runs of
        // quotes and dollars: megabyte inputs, no recursion, no rescans.
        let n = 1 << 20;
        let tag = "a".repeat(4096);
        let near = format!(
            "SELECT ${tag}$ {} \\ ${tag}$;\n",
            format!("${}b", &tag[1..]).repeat(256)
        );
        let started = std::time::Instant::now();
        check(&"/*".repeat(n), Ok(()));
        check(&near, Ok(()));
        check(&"'".repeat(n), Ok(()));
        check(&format!("{}\\", "$a".repeat(n)), refused(1, 2 * n + 1, MetaCommand));
        check(&format!("${}", "a".repeat(n)), Ok(()));
        check(&format!("{}\\", "$".repeat(n)), refused(1, n + 1, MetaCommand));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
