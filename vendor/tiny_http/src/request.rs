use std::io::{self, Cursor, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;

use crate::{HTTPVersion, Header, Method, Response};

/// An HTTP request whose head and body have been read in full by its
/// connection's thread (see `client.rs`).
///
/// instagift patch: the body is already in memory, bounded by
/// `Limits::max_body` and read under `Limits::body_deadline`, so whoever
/// handles the request never waits on the client; the answer is rendered to
/// memory and handed back to the connection's thread, which writes it, so
/// a client that does not read never holds the handler either. The
/// connection reads its next request only after this one is answered.
///
/// If a `Request` is dropped unanswered, an empty 500 is sent.
pub struct Request {
    body: Cursor<Vec<u8>>,

    // None once answered
    reply: Option<Reply>,

    remote_addr: Option<SocketAddr>,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    body_error: Option<BodyError>,
}

/// Why a request's body could not be read. The request is still handed to
/// the application, with an empty body, so that it answers in its own
/// format; the connection is closed after that answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than `Limits::max_body` (declared or, chunked, received).
    TooLarge,
    /// Not complete within `Limits::body_deadline`.
    TooSlow,
    /// A chunked body that does not follow the chunked syntax.
    Malformed,
}

/// The answer to one request: collected in memory and handed, when dropped,
/// to the connection's thread, which writes it and closes the connection
/// afterwards if `close` is set.
pub(crate) struct Reply {
    buf: Vec<u8>,
    close: bool,
    to: Sender<(Vec<u8>, bool)>,
}

impl Reply {
    pub(crate) fn new(close: bool, to: Sender<(Vec<u8>, bool)>) -> Reply {
        Reply {
            buf: Vec::new(),
            close,
            to,
        }
    }
}

impl Write for Reply {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        let _ = self
            .to
            .send((std::mem::take(&mut self.buf), self.close));
    }
}

/// Builds a request from its parsed parts (see `client.rs`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request(
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    body: Vec<u8>,
    body_length: Option<usize>,
    body_error: Option<BodyError>,
    reply: Reply,
) -> Request {
    Request {
        body: Cursor::new(body),
        reply: Some(reply),
        remote_addr,
        method,
        path,
        http_version: version,
        headers,
        body_length,
        body_error,
    }
}

impl Request {
    /// Always false: TLS support was removed from this copy (PATCHES.md).
    #[inline]
    pub fn secure(&self) -> bool {
        false
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Why the body could not be read, if it could not; the body is then
    /// empty and the connection closes after the answer.
    #[inline]
    pub fn body_error(&self) -> Option<BodyError> {
        self.body_error
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Allows to read the body of the request (already in memory).
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        &mut self.body
    }

    /// Turns the `Request` into a writer for a raw answer, sent when the
    /// writer is dropped.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        Box::new(self.reply.take().expect("a request is answered once"))
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), io::Error>
    where
        R: Read,
    {
        self.respond_impl(response)
    }

    fn respond_impl<R>(&mut self, mut response: Response<R>) -> Result<(), io::Error>
    where
        R: Read,
    {
        let mut reply = match self.reply.take() {
            Some(r) => r,
            None => return Ok(()),
        };
        // instagift patch: a `Connection: close` set by the application is
        // kept (upstream dropped it) and closes the connection after this
        // answer; one the connection already decided on is announced.
        reply.close |= response.closes();
        if reply.close {
            response.add_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
        }
        let do_not_send_body = self.method == Method::Head;
        let printed = response.raw_print(
            &mut reply,
            self.http_version.clone(),
            &self.headers,
            do_not_send_body,
            None,
        );
        if printed.is_err() {
            // A body that failed half-way must not be sent as if whole.
            reply.buf.clear();
            reply.close = true;
        }
        printed
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.reply.is_some() {
            let _ = self.respond_impl(Response::empty(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
