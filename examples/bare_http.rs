//! The HTTP limit for `bench/run.sh`: a bare tiny_http server that answers
//! every request with the same small JSON body, in the same shape as
//! `src/server.rs` (one listener, a fixed pool of worker threads each
//! calling `recv`, keep-alive on, Content-Type and Content-Length set).
//! Whatever the real server does per request on top of this is its cost.
//!
//! ```sh
//! cargo run --release --example bare_http -- --listen 127.0.0.1:0 --threads 8
//! ```
//!
//! The first stdout line is `bare_http listening on http://ADDR`, like the
//! real server's banner. It runs until killed.

use clap::Parser;
use std::io::Write;
use std::sync::Arc;

/// A bare tiny_http server answering a fixed JSON body.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Worker threads (0 = two per CPU core, at least 2, as the server).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Pad the body to this many bytes (for experiments; the limit the
    /// bench measures is the small default body).
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// Set TCP_NODELAY on the listening socket, which Linux copies to every
    /// accepted connection (for experiments: tiny_http sends a response
    /// over ~1 KiB as two segments, and without it the second one waits
    /// for the client's delayed ACK).
    #[arg(long)]
    nodelay: bool,
}

/// About the size of a small API answer (`GET /healthz` is smaller, a
/// certificate larger).
const BODY: &[u8] = br#"{"status":"ok","certificates":[{"id":"bare","face_value_cents":10000}]}"#;

fn listen(addr: &str, nodelay: bool) -> Result<tiny_http::Server, String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| e.to_string())?;
    if nodelay {
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .map_err(|e| e.to_string())?;
    }
    tiny_http::Server::from_listener(listener, None).map_err(|e| e.to_string())
}

/// The fixed body, padded with a JSON string field to `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    if len <= BODY.len() {
        return BODY.to_vec();
    }
    let fill = len.saturating_sub(BODY.len() + r#","pad":"""#.len());
    let mut body = BODY[..BODY.len() - 1].to_vec();
    body.extend_from_slice(br#","pad":""#);
    body.extend(std::iter::repeat_n(b'x', fill));
    body.extend_from_slice(br#""}"#);
    body
}

fn main() {
    let args = Args::parse();
    let threads = match args.threads {
        0 => instagift::server::default_workers(),
        n => n,
    };
    let server = match listen(&args.listen, args.nodelay) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("bare_http: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let body: Arc<Vec<u8>> = Arc::new(padded(args.body_bytes));
    let addr = server
        .server_addr()
        .to_ip()
        .expect("a TCP listener has an IP address");
    let content_type =
        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
            .expect("a valid header");
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (server, content_type, body) = (server.clone(), content_type.clone(), body.clone());
            std::thread::spawn(move || {
                while let Ok(rq) = server.recv() {
                    let response = tiny_http::Response::from_data(body.as_slice())
                        .with_header(content_type.clone())
                        .with_status_code(200);
                    let _ = rq.respond(response);
                }
            })
        })
        .collect();
    println!("bare_http listening on http://{addr} ({threads} workers)");
    let _ = std::io::stdout().flush();
    for w in workers {
        let _ = w.join();
    }
}
