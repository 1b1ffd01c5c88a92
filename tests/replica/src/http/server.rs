//! A small HTTP/1.1 server on std's `TcpListener`: a thread per connection, keep-alive,
//! `Content-Length` bodies (what reqwest and Node's fetch send), `Expect: 100-continue`.
//! Requests are parsed with httparse; their answers come from the replica's thread.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use super::api::Reply;

/// The largest body taken: the IC's 2 MiB ingress limit and its envelope, with room to spare
/// (the canister's own limit then answers in the IC's words).
const MAX_BODY_BYTES: usize = 8 << 20;
const MAX_HEADERS: usize = 64;

/// One parsed request, handed to the replica's thread with a way back for its answer.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub answer: mpsc::Sender<Reply>,
}

/// Accepts connections until `stop` is set (and a connection wakes the loop).
pub fn accept_loop(listener: TcpListener, requests: mpsc::Sender<Request>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let requests = requests.clone();
        std::thread::spawn(move || {
            // A broken connection ends its thread; the client sees it closed.
            let _ = serve_connection(stream, requests);
        });
    }
}

fn serve_connection(mut stream: TcpStream, requests: mpsc::Sender<Request>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Vec::new();
    loop {
        // Read until the head is complete.
        let (head_len, method, path, content_length, expect_continue, close) = loop {
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
                    let expect = header("expect").as_deref() == Some("100-continue");
                    break (
                        len,
                        request.method.unwrap_or("").to_string(),
                        request.path.unwrap_or("").to_string(),
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
        if requests.send(Request { method, path, body, answer }).is_err() {
            return respond(&mut stream, &Reply::text(503, "the replica has stopped"), true);
        }
        let reply = answered.recv().unwrap_or_else(|_| Reply::text(500, "the replica failed on this request"));
        respond(&mut stream, &reply, close)?;
        if close {
            return Ok(());
        }
    }
}

/// Reads more bytes into `buffer`; false when the peer has closed.
fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 64 << 10];
    let n = stream.read(&mut chunk)?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn respond(stream: &mut TcpStream, reply: &Reply, close: bool) -> io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        202 => "Accepted",
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
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()
}
