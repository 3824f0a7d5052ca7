//! One client connection, on its own thread of the pool.
//!
//! instagift patch: this replaces upstream's `ClientConnection` (see
//! PATCHES.md). The thread reads each request head with `httparse` under
//! fixed size limits and a total deadline, checks its framing strictly,
//! reads the whole body (at most `Limits::max_body`) under a deadline of its
//! own, and only then queues the request for the application. It then waits
//! for the answer, writes it under a deadline, and only after that reads the
//! next request: one request in flight per connection. Whoever handles
//! requests therefore never waits on a client, whether it sends slowly,
//! reads slowly or pipelines without reading.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
use crate::connection::Connection;
use crate::request::{new_request, BodyError, Reply};
use crate::util::MessagesQueue;
use crate::{Limits, Message, MAX_HEADERS};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8192;
/// Longest line of a chunked body's framing (chunk size and extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// After the last answer, what the client still sends is read and thrown
/// away, up to this much for at most `LINGER`, so that closing with unread
/// data does not reset the connection before the client has read the answer.
const LINGER_BYTES: usize = 64 * 1024;
const LINGER: Duration = Duration::from_secs(1);
/// A socket timeout is changed only when off by more than this: it saves a
/// system call per read, and a deadline is then missed by at most this.
const SLACK: Duration = Duration::from_millis(100);

/// Why reading from the client stopped.
enum Stop {
    /// End of stream, or a broken connection.
    Gone,
    /// The deadline passed.
    TimedOut,
}

/// Why a connection ends.
enum End {
    /// Without a word: the client went away, stayed idle, or cannot be
    /// written to.
    Quietly,
    /// After this error answer (status, title, details).
    Answer(u16, &'static str, String),
}

/// A parsed request head.
struct Head {
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
}

/// How the body of a request is delimited (RFC 9112 section 6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    /// A declared length over the limit: the body is not read.
    TooLarge,
}

/// Serves one connection until it closes.
pub(crate) fn serve(
    stream: Connection,
    remote_addr: Option<SocketAddr>,
    limits: &Limits,
    queue: &MessagesQueue<Message>,
) {
    let mut conn = Conn {
        stream,
        limits,
        buf: Vec::new(),
        pos: 0,
        read_timeout: None,
        write_timeout: None,
    };
    loop {
        match conn.one_request(remote_addr, queue) {
            Ok(true) => continue,
            Ok(false) | Err(End::Quietly) => return,
            Err(End::Answer(status, title, details)) => {
                if conn.write_all(&error_answer(status, title, &details)).is_ok() {
                    conn.linger();
                }
                return;
            }
        }
    }
}

/// A complete answer with the API's error body, produced here for requests
/// the application never sees, and for connections refused over the cap.
pub(crate) fn error_answer(status: u16, title: &str, details: &str) -> Vec<u8> {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let reason = StatusCode(status).default_reason_phrase();
    let body = format!(
        "{{\"errors\":[{{\"code\":\"{status}\",\"status\":\"{reason}\",\"title\":\"{}\",\"details\":\"{}\"}}]}}",
        esc(title),
        esc(details)
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Conn<'a> {
    stream: Connection,
    limits: &'a Limits,
    /// Bytes received; those from `pos` on are not consumed yet (the rest
    /// of a pipelined request, say).
    buf: Vec<u8>,
    pos: usize,
    /// The socket's timeouts as last set.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Conn<'_> {
    /// Reads one request, hands it on, writes its answer. Ok(true) if the
    /// connection stays open for another.
    fn one_request(
        &mut self,
        remote_addr: Option<SocketAddr>,
        queue: &MessagesQueue<Message>,
    ) -> Result<bool, End> {
        let head = self.read_head()?;
        let framing = framing(&head, self.limits.max_body)?;
        let expects_continue = match header(&head.headers, "Expect") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            Some(_) => {
                return Err(End::Answer(
                    417,
                    "Expectation Failed",
                    "Only `Expect: 100-continue` is understood".into(),
                ))
            }
        };
        let mut close = wants_close(&head);
        let deadline = Instant::now() + self.limits.body_deadline;
        let mut body = Vec::new();
        let mut body_length = None;
        let body_error = match framing {
            Framing::Empty => None,
            Framing::TooLarge => Some(BodyError::TooLarge),
            Framing::Length(n) => {
                body_length = Some(n);
                self.send_continue(expects_continue && self.buffered() < n)?;
                body.reserve_exact(n);
                match self.take_bytes(n, &mut body, deadline) {
                    Ok(()) => None,
                    Err(Stop::TimedOut) => Some(BodyError::TooSlow),
                    Err(Stop::Gone) => return Err(End::Quietly),
                }
            }
            Framing::Chunked => {
                self.send_continue(expects_continue && self.buffered() == 0)?;
                match self.read_chunked(&mut body, deadline) {
                    Ok(()) => None,
                    Err(Some(e)) => Some(e),
                    Err(None) => return Err(End::Quietly),
                }
            }
        };
        if body_error.is_some() {
            // The rest of the body was not read: nothing after it can be
            // told apart from it.
            body.clear();
            close = true;
        }
        let (to, answer) = mpsc::channel();
        queue.push(Message::NewRequest(new_request(
            head.method,
            head.path,
            head.version,
            head.headers,
            remote_addr,
            body,
            body_length,
            body_error,
            Reply::new(close, to),
        )));
        // Every request is answered, if only by its drop (an empty 500);
        // the sender is gone only if the request was lost at shutdown.
        let (bytes, close) = answer.recv().map_err(|_| End::Quietly)?;
        self.write_all(&bytes).map_err(|_| End::Quietly)?;
        if close {
            self.linger();
            return Ok(false);
        }
        Ok(true)
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Waits up to `Limits::idle` for a request to start, then reads its
    /// head by `Limits::head_deadline`.
    fn read_head(&mut self) -> Result<Head, End> {
        if self.buffered() == 0 {
            let idle = Instant::now() + self.limits.idle;
            self.fill(idle).map_err(|_| End::Quietly)?;
        }
        let deadline = Instant::now() + self.limits.head_deadline;
        loop {
            if let Some(head) = self.parse_head()? {
                return Ok(head);
            }
            match self.fill(deadline) {
                Ok(()) => {}
                Err(Stop::Gone) => return Err(End::Quietly),
                Err(Stop::TimedOut) => {
                    return Err(End::Answer(
                        408,
                        "Request Timeout",
                        format!(
                            "The request head must arrive within {} s",
                            self.limits.head_deadline.as_secs_f32()
                        ),
                    ))
                }
            }
        }
    }

    /// The head, if the buffer holds all of it.
    fn parse_head(&mut self) -> Result<Option<Head>, End> {
        let max_line = self.limits.max_line;
        let data = &self.buf[self.pos..];
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        let too_long_line = || {
            End::Answer(
                414,
                "URI Too Long",
                format!("The request line is limited to {max_line} bytes"),
            )
        };
        let too_large = |what: String| End::Answer(431, "Request Header Fields Too Large", what);
        let n = match req.parse(data) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                // Refuse as soon as a limit is passed, not when the head ends.
                let line_start = data.iter().rposition(|&b| b == b'\n');
                match line_start {
                    None if data.len() > max_line => return Err(too_long_line()),
                    Some(i) if data.len() - i - 1 > max_line => {
                        return Err(too_large(format!(
                            "Each header line is limited to {max_line} bytes"
                        )))
                    }
                    _ => {}
                }
                if data.len() > self.limits.max_head {
                    return Err(too_large(format!(
                        "The request head is limited to {} bytes",
                        self.limits.max_head
                    )));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(too_large(format!(
                    "A request may have at most {MAX_HEADERS} header fields"
                )))
            }
            Err(e) => return Err(bad_request(format!("Malformed request head: {e}"))),
        };
        if n > self.limits.max_head {
            return Err(too_large(format!(
                "The request head is limited to {} bytes",
                self.limits.max_head
            )));
        }
        let first_line = data.iter().position(|&b| b == b'\n').unwrap_or(n);
        if first_line > max_line {
            return Err(too_long_line());
        }
        let path = req.path.unwrap_or("/");
        if !path.is_ascii() {
            return Err(bad_request("The request target must be ASCII".into()));
        }
        let method = Method::from_str(req.method.unwrap_or("GET"))
            .map_err(|_| bad_request("Malformed method".into()))?;
        let version = HTTPVersion(1, req.version.unwrap_or(1));
        let mut headers = Vec::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            if h.name.len() + h.value.len() + 2 > max_line {
                return Err(too_large(format!(
                    "Each header line is limited to {max_line} bytes"
                )));
            }
            let value = trim_ows(h.value);
            let field = HeaderField::from_bytes(h.name.as_bytes())
                .map_err(|_| bad_request("Malformed header name".into()))?;
            let value = AsciiString::from_ascii(value)
                .map_err(|_| bad_request("Header values must be ASCII".into()))?;
            headers.push(Header { field, value });
        }
        let head = Head {
            method,
            path: path.to_string(),
            version,
            headers,
        };
        self.pos += n;
        Ok(Some(head))
    }

    /// Reads a chunked body into `body`. Err(Some) for a body the
    /// application should refuse, Err(None) if the client went away.
    fn read_chunked(
        &mut self,
        body: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<(), Option<BodyError>> {
        let stop = |s: Stop| match s {
            Stop::Gone => None,
            Stop::TimedOut => Some(BodyError::TooSlow),
        };
        loop {
            let line = self.take_line(MAX_CHUNK_LINE, deadline)?;
            let size = chunk_size(&line).ok_or(Some(BodyError::Malformed))?;
            if size == 0 {
                break;
            }
            if size > self.limits.max_body.saturating_sub(body.len()) as u64 {
                return Err(Some(BodyError::TooLarge));
            }
            self.take_bytes(size as usize, body, deadline)
                .map_err(stop)?;
            if !self.take_line(MAX_CHUNK_LINE, deadline)?.is_empty() {
                return Err(Some(BodyError::Malformed));
            }
        }
        // Trailer fields: read (bounded like headers) and ignored.
        for _ in 0..=MAX_HEADERS {
            if self.take_line(self.limits.max_line, deadline)?.is_empty() {
                return Ok(());
            }
        }
        Err(Some(BodyError::Malformed))
    }

    /// One line (without its CRLF or LF) of at most `max` bytes.
    fn take_line(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, Option<BodyError>> {
        loop {
            let data = &self.buf[self.pos..];
            if let Some(i) = data.iter().position(|&b| b == b'\n') {
                let line = data[..i].strip_suffix(b"\r").unwrap_or(&data[..i]);
                if line.len() > max {
                    return Err(Some(BodyError::Malformed));
                }
                let line = line.to_vec();
                self.pos += i + 1;
                return Ok(line);
            }
            if data.len() > max {
                return Err(Some(BodyError::Malformed));
            }
            self.fill(deadline).map_err(|s| match s {
                Stop::Gone => None,
                Stop::TimedOut => Some(BodyError::TooSlow),
            })?;
        }
    }

    /// Appends the next `n` bytes of the stream to `into`.
    fn take_bytes(&mut self, n: usize, into: &mut Vec<u8>, deadline: Instant) -> Result<(), Stop> {
        let mut need = n;
        loop {
            let now = need.min(self.buffered());
            into.extend_from_slice(&self.buf[self.pos..self.pos + now]);
            self.pos += now;
            need -= now;
            if need == 0 {
                return Ok(());
            }
            self.fill(deadline)?;
        }
    }

    /// Reads what the socket has (at least a byte) by `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Stop> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Stop::TimedOut);
            }
            if let Some(t) = retime(self.read_timeout, left) {
                self.stream
                    .set_read_timeout(Some(t))
                    .map_err(|_| Stop::Gone)?;
                self.read_timeout = Some(t);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Stop::Gone),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_retry(&e) => {}
                Err(_) => return Err(Stop::Gone),
            }
        }
    }

    /// Writes `data` in full by `Limits::write_deadline`.
    fn write_all(&mut self, mut data: &[u8]) -> Result<(), Stop> {
        let deadline = Instant::now() + self.limits.write_deadline;
        while !data.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Stop::TimedOut);
            }
            if let Some(t) = retime(self.write_timeout, left) {
                self.stream
                    .set_write_timeout(Some(t))
                    .map_err(|_| Stop::Gone)?;
                self.write_timeout = Some(t);
            }
            match self.stream.write(data) {
                Ok(0) => return Err(Stop::Gone),
                Ok(n) => data = &data[n..],
                Err(e) if is_retry(&e) => {}
                Err(_) => return Err(Stop::Gone),
            }
        }
        Ok(())
    }

    fn send_continue(&mut self, needed: bool) -> Result<(), End> {
        if needed {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|_| End::Quietly)?;
        }
        Ok(())
    }

    /// Ends the connection after its last answer (see `LINGER`).
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut thrown = 0;
        while thrown < LINGER_BYTES && self.fill(until).is_ok() {
            thrown += self.buffered();
            self.pos = self.buf.len();
        }
    }
}

/// The new socket timeout for `left`, if the current one is not close enough.
fn retime(current: Option<Duration>, left: Duration) -> Option<Duration> {
    match current {
        Some(c) if c >= left && c - left <= SLACK => None,
        _ => Some(left),
    }
}

/// A timed-out or interrupted socket call (Linux reports a timeout as
/// `WouldBlock`): the caller looks at its deadline and tries again.
fn is_retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn bad_request(details: String) -> End {
    End::Answer(400, "Bad Request", details)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

/// The value of the only header `name`, if there is one.
fn header<'h>(headers: &'h [Header], name: &'static str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Whether the client asked for the connection to end after this request
/// (HTTP/1.0 does unless it asks to keep it alive).
fn wants_close(head: &Head) -> bool {
    let mut close = false;
    let mut keep = false;
    for h in head.headers.iter().filter(|h| h.field.equiv("Connection")) {
        for token in h.value.as_str().split(',').map(str::trim) {
            close |= token.eq_ignore_ascii_case("close");
            keep |= token.eq_ignore_ascii_case("keep-alive");
        }
    }
    close || (head.version == HTTPVersion(1, 0) && !keep)
}

/// How the body is delimited. Anything that two parsers could read two ways
/// (RFC 9112 sections 6.1 and 6.3) is refused with 400 and the connection
/// closed: a repeated or malformed `Content-Length`, `Content-Length` beside
/// `Transfer-Encoding`, a transfer coding other than a single `chunked`, or
/// `Transfer-Encoding` in HTTP/1.0.
fn framing(head: &Head, max_body: usize) -> Result<Framing, End> {
    let lengths: Vec<&str> = values(head, "Content-Length");
    let codings: Vec<&str> = values(head, "Transfer-Encoding");
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err(bad_request(
                "Content-Length and Transfer-Encoding together are ambiguous".into(),
            ));
        }
        if head.version == HTTPVersion(1, 0) {
            return Err(bad_request("HTTP/1.0 has no Transfer-Encoding".into()));
        }
        if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
            return Err(bad_request(
                "The only transfer coding accepted is a single `chunked`".into(),
            ));
        }
        return Ok(Framing::Chunked);
    }
    match lengths.as_slice() {
        [] => Ok(Framing::Empty),
        [one] if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => {
            // All digits: a failed parse is an overflow, a length over any limit.
            match one.parse::<u64>() {
                Ok(n) if n <= max_body as u64 => Ok(if n == 0 {
                    Framing::Empty
                } else {
                    Framing::Length(n as usize)
                }),
                _ => Ok(Framing::TooLarge),
            }
        }
        [_] => Err(bad_request("Content-Length must be a decimal number".into())),
        _ => Err(bad_request("Content-Length may be given only once".into())),
    }
}

/// The values of every header `name`.
fn values<'h>(head: &'h Head, name: &'static str) -> Vec<&'h str> {
    head.headers
        .iter()
        .filter(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
        .collect()
}

/// A chunk-size line's size (extensions ignored); None unless it is 1 to 16
/// hex digits.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|&b| b == b';').next().unwrap_or(line);
    let size = trim_ows(size);
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: u8, headers: &[(&str, &str)]) -> Head {
        Head {
            method: Method::Post,
            path: "/".into(),
            version: HTTPVersion(1, version),
            headers: headers
                .iter()
                .map(|(k, v)| Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap())
                .collect(),
        }
    }

    fn refused(r: Result<Framing, End>) -> bool {
        matches!(r, Err(End::Answer(400, ..)))
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let f = |h: &[(&str, &str)]| framing(&head(1, h), 65536);
        assert!(refused(f(&[("Content-Length", "0"), ("Content-Length", "5")])));
        assert!(refused(f(&[("Content-Length", "5"), ("content-length", "5")])));
        assert!(refused(f(&[("Content-Length", "5, 5")])));
        assert!(refused(f(&[("Content-Length", "-1")])));
        assert!(refused(f(&[("Content-Length", "+5")])));
        assert!(refused(f(&[("Content-Length", "")])));
        assert!(refused(f(&[("Content-Length", "0x10")])));
        assert!(refused(f(&[("Transfer-Encoding", "gzip"), ("Content-Length", "5")])));
        assert!(refused(f(&[("Transfer-Encoding", "chunked"), ("Content-Length", "5")])));
        assert!(refused(f(&[("Transfer-Encoding", "gzip")])));
        assert!(refused(f(&[("Transfer-Encoding", "chunked, chunked")])));
        assert!(refused(f(&[("Transfer-Encoding", "gzip, chunked")])));
        assert!(refused(f(&[("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")])));
        assert!(refused(framing(&head(0, &[("Transfer-Encoding", "chunked")]), 65536)));
    }

    #[test]
    fn plain_framing_is_read() {
        let f = |h: &[(&str, &str)]| framing(&head(1, h), 65536).ok();
        assert_eq!(f(&[]), Some(Framing::Empty));
        assert_eq!(f(&[("Content-Length", "0")]), Some(Framing::Empty));
        assert_eq!(f(&[("Content-Length", "65536")]), Some(Framing::Length(65536)));
        assert_eq!(f(&[("Content-Length", "65537")]), Some(Framing::TooLarge));
        assert_eq!(f(&[("Content-Length", "1099511627776")]), Some(Framing::TooLarge));
        assert_eq!(f(&[("Content-Length", "18446744073709551615")]), Some(Framing::TooLarge));
        assert_eq!(f(&[("Content-Length", "99999999999999999999999")]), Some(Framing::TooLarge));
        assert_eq!(f(&[("Transfer-Encoding", "Chunked")]), Some(Framing::Chunked));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"10;name=value"), Some(16));
        assert_eq!(chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(chunk_size(b"10000000000000000"), None);
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"-1"), None);
        assert_eq!(chunk_size(b"0x10"), None);
    }

    #[test]
    fn error_answers_are_complete() {
        let a = String::from_utf8(error_answer(431, "T \"q\"", "d")).unwrap();
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Connection: close"));
        assert!(body.contains(r#""code":"431""#) && body.contains(r#""title":"T \"q\"""#));
    }
}
