//! A small HTTP/1.1 server on std's `TcpListener`: a thread per connection, keep-alive,
//! `Content-Length` bodies (what reqwest and Node's fetch send), `Expect: 100-continue`.
//! Requests are parsed with httparse; their answers come from the replica's thread.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::api::Reply;
use super::Work;

/// The largest body taken: the IC's 2 MiB ingress limit and its envelope, with room to spare
/// (the canister's own limit then answers in the IC's words).
const MAX_BODY_BYTES: usize = 8 << 20;
const MAX_HEADERS: usize = 64;
/// Connections served at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 256;
/// How long a connection may take to send a request (the IC's `MAX_REQUEST_RECEIVE_TIMEOUT`).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// One parsed request, handed to the replica's thread with a way back for its answer.
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub answer: mpsc::Sender<Reply>,
}

/// Accepts connections until `stop` is set (and a connection wakes the loop).
pub fn accept_loop(listener: TcpListener, requests: mpsc::Sender<Work>, stop: Arc<AtomicBool>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = respond(&mut stream, &Reply::text(503, "too many connections"), true);
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (requests, open) = (requests.clone(), open.clone());
        std::thread::spawn(move || {
            // A broken connection ends its thread; the client sees it closed.
            let _ = serve_connection(stream, requests);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn serve_connection(mut stream: TcpStream, requests: mpsc::Sender<Work>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(RECEIVE_TIMEOUT))?;
    let mut buffer = Vec::new();
    loop {
        // Read until the head is complete.
        let (head_len, method, path, content_type, content_length, expect_continue, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&buffer) {
                Ok(httparse::Status::Complete(len)) => {
                    let header = |name: &str| {
                        request
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                    };
                    if header("transfer-encoding").is_some() {
                        return respond(&mut stream, &Reply::text(411, "send a Content-Length body"), true);
                    }
                    let length = match header("content-length").map(|v| v.parse::<usize>()) {
                        None => 0,
                        Some(Ok(n)) => n,
                        Some(Err(_)) => return respond(&mut stream, &Reply::text(400, "bad Content-Length"), true),
                    };
                    let close = header("connection").as_deref() == Some("close");
                    let content_type = header("content-type");
                    let expect = header("expect").as_deref() == Some("100-continue");
                    break (
                        len,
                        request.method.unwrap_or("").to_string(),
                        request.path.unwrap_or("").to_string(),
                        content_type,
                        length,
                        expect,
                        close,
                    );
                }
                Ok(httparse::Status::Partial) => {
                    if buffer.len() > 64 << 10 {
                        return respond(&mut stream, &Reply::text(431, "request head too large"), true);
                    }
                    if !fill(&mut stream, &mut buffer)? {
                        return Ok(()); // the client closed the connection
                    }
                }
                Err(e) => return respond(&mut stream, &Reply::text(400, format!("bad request: {e}")), true),
            }
        };
        if content_length > MAX_BODY_BYTES {
            return respond(&mut stream, &Reply::text(413, "request body too large"), true);
        }
        if expect_continue && buffer.len() < head_len + content_length {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        while buffer.len() < head_len + content_length {
            if !fill(&mut stream, &mut buffer)? {
                return Ok(());
            }
        }
        let body = buffer[head_len..head_len + content_length].to_vec();
        buffer.drain(..head_len + content_length);
        let (answer, answered) = mpsc::channel();
        if requests.send(Work::Http(Request { method, path, content_type, body, answer })).is_err() {
            return respond(&mut stream, &Reply::text(503, "the replica has stopped"), true);
        }
        let reply = answered.recv().unwrap_or_else(|_| Reply::text(500, "the replica failed on this request"));
        respond(&mut stream, &reply, close)?;
        if close {
            return Ok(());
        }
    }
}

/// Reads more bytes into `buffer`; false when the peer has closed or stayed silent too long.
fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 64 << 10];
    let n = match stream.read(&mut chunk) {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            respond(stream, &Reply::text(408, "request timed out"), true)?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn respond(stream: &mut TcpStream, reply: &Reply, close: bool) -> io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        408 => "Request Timeout",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\
         Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, POST, OPTIONS\r\n\
         Access-Control-Allow-Headers: Content-Type\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()
}
