//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{BodyError, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod test;
mod util;

/// Most header fields a request may have (431 past it).
pub const MAX_HEADERS: usize = 64;

/// What one client may send or hold (instagift patch; see PATCHES.md).
/// Past a size limit the client gets 414 or 431 and the connection is
/// closed; past a deadline it gets 408 (head) or its request is handed on
/// with `BodyError::TooSlow` (body), or, while idle or not reading, the
/// connection is closed.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line (414 past it) and header line (431).
    pub max_line: usize,
    /// Longest request head, request line and headers together (431).
    pub max_head: usize,
    /// Longest body; a longer one is handed on with `BodyError::TooLarge`
    /// and not read.
    pub max_body: usize,
    /// How long a connection may wait for its next request.
    pub idle: Duration,
    /// How long a request head may take from its first byte.
    pub head_deadline: Duration,
    /// How long a body may take after its head.
    pub body_deadline: Duration,
    /// How long writing one answer may take.
    pub write_deadline: Duration,
    /// Most connections open at once; past it a new one gets 503 and is
    /// closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        let timeout = Duration::from_secs(10);
        Limits {
            max_line: 8 * 1024,
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            idle: timeout,
            head_deadline: timeout,
            body_deadline: timeout,
            write_deadline: timeout,
            max_connections: 1000,
        }
    }
}

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // set when the server is dropped: the accept loop ends
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// Must be `None`: TLS support was removed from this copy (PATCHES.md).
    pub ssl: Option<SslConfig>,
}

/// Kept for the signature of `from_listener`; TLS is not supported.
#[derive(Debug, Clone)]
pub struct SslConfig {
    pub certificate: Vec<u8>,
    pub private_key: Vec<u8>,
}

/// Back-off of the accept loop while the process is out of file
/// descriptors or memory: from the first to the last, doubling.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(500));

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified listener, with the default
    /// `Limits`.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if ssl_config.is_some() {
            return Err("TLS support was removed from this copy of tiny_http".into());
        }
        Self::with_limits(listener, Limits::default())
    }

    /// Builds a new server using the specified listener and limits.
    pub fn with_limits<L: Into<Listener>>(
        listener: L,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let close_trigger = Arc::new(AtomicBool::new(false));
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);

        let messages = MessagesQueue::with_capacity(8);
        let watch = Watch {
            close: close_trigger.clone(),
            messages: messages.clone(),
        };
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(listener, limits, watch))?;

        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, SeqCst);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Reports the end of the accept loop, unless the server is closing: then
/// nothing will be accepted any more, and `recv` says so with an error (the
/// application should exit and be restarted).
struct Watch {
    close: Arc<AtomicBool>,
    messages: Arc<MessagesQueue<Message>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.close.load(SeqCst) {
            let why = if thread::panicking() {
                "the accept thread panicked"
            } else {
                "the listener failed"
            };
            self.messages
                .push(IoError::new(IoErrorKind::Other, why).into());
        }
    }
}

/// Counts an open connection while alive.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Accepts connections until the server closes, each on a thread of the
/// pool. instagift patch: upstream ended at the first accept error and
/// panicked when the process ran out of file descriptors (see PATCHES.md).
fn accept_loop(listener: Listener, limits: Limits, watch: Watch) {
    let limits = Arc::new(limits);
    let open = Arc::new(AtomicUsize::new(0));
    let pool = util::TaskPool::new();
    let mut backoff = ACCEPT_BACKOFF.0;
    while !watch.close.load(SeqCst) {
        let (conn, addr) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => match accept_error(&e) {
                AcceptError::Retry => continue,
                AcceptError::Wait => {
                    log::error!("Error accepting new client: {}; waiting {:?}", e, backoff);
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
                AcceptError::Fatal => {
                    log::error!("Error accepting new client: {}", e);
                    return;
                }
            },
        };
        backoff = ACCEPT_BACKOFF.0;
        if open.fetch_add(1, SeqCst) >= limits.max_connections {
            open.fetch_sub(1, SeqCst);
            refuse(conn);
            continue;
        }
        // Dropped with the task, run or not (a thread that cannot be
        // started drops it): the count and the socket go with it.
        let counted = Open(open.clone());
        let (limits, messages) = (limits.clone(), watch.messages.clone());
        let mut task = Some((conn, counted));
        pool.spawn(Box::new(move || {
            if let Some((conn, _counted)) = task.take() {
                // A bug in one connection must not take the thread's pool
                // down with it.
                let served = catch_unwind(AssertUnwindSafe(|| {
                    client::serve(conn, addr, &limits, &messages)
                }));
                if served.is_err() {
                    log::error!("a connection thread panicked");
                }
            }
        }));
    }
}

enum AcceptError {
    /// Nothing wrong with the listener: accept again at once.
    Retry,
    /// Out of file descriptors or memory: accept again after a pause.
    Wait,
    /// The listener is broken.
    Fatal,
}

fn accept_error(e: &IoError) -> AcceptError {
    match e.kind() {
        // The listener's own timeout (inherited socket options), a signal,
        // or a client that gave up before it was accepted.
        IoErrorKind::WouldBlock
        | IoErrorKind::TimedOut
        | IoErrorKind::Interrupted
        | IoErrorKind::ConnectionAborted
        | IoErrorKind::ConnectionReset => return AcceptError::Retry,
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::Wait,
        // accept(2): network errors of the new connection, to be treated
        // like EAGAIN.
        Some(
            libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH,
        ) => AcceptError::Retry,
        _ => AcceptError::Fatal,
    }
}

/// Answers 503 to a connection over the cap and closes it, without ever
/// blocking the accept loop (if the answer does not fit, it is lost).
fn refuse(mut conn: Connection) {
    let _ = conn.set_nonblocking(true);
    let _ = conn.write_all(&client::error_answer(
        503,
        "Service Unavailable",
        "Too many connections; try again shortly",
    ));
    let _ = conn.shutdown(Shutdown::Write);
}
