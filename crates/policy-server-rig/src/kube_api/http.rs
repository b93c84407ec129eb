//! The little HTTP/1.1 both sides of the policy-server rig need: the API
//! stand-in reads kube-rs's requests and answers them (whole bodies, or a
//! chunked stream for watches), and the rig posts AdmissionReviews on a
//! kept-alive connection.
//!
//! Written on `std` rather than with an HTTP crate: the subset is small
//! (GET and POST, `Content-Length` or chunked bodies, no TLS, no HTTP/2,
//! which kube-rs only negotiates over TLS), and the workspace stays buildable
//! from the crates it already locks.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Headers and bodies past this are refused: the peers are our own tests.
const MAX_HEADER_LINES: usize = 100;
const MAX_BODY: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Percent-decoded query parameters.
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn wants_close(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one request; `Ok(None)` when the peer closed the connection
/// between requests.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("malformed request line {line:?}")));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: method.to_string(),
        path: percent_decode(path),
        query: parse_query(query),
        headers: read_headers(reader)?,
        body: Vec::new(),
    };
    let body = read_body(reader, &request.headers)?;
    Ok(Some(Request { body, ..request }))
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<BTreeMap<String, String>> {
    let mut headers = BTreeMap::new();
    for _ in 0..MAX_HEADER_LINES {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside the headers".into()));
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("malformed header line {line:?}")))?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Err(bad(format!("more than {MAX_HEADER_LINES} header lines")))
}

fn read_body(reader: &mut impl BufRead, headers: &BTreeMap<String, String>) -> io::Result<Vec<u8>> {
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        return read_chunked(reader);
    }
    let length = match headers.get("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| bad(format!("Content-Length {v:?} is not a number")))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(bad(format!("body of {length} bytes is over {MAX_BODY}")));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("malformed chunk size {size_line:?}")))?;
        if body.len() + size > MAX_BODY {
            return Err(bad(format!("chunked body over {MAX_BODY} bytes")));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
        if size == 0 {
            return Ok(body);
        }
    }
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` escapes and `+` for space, as in form-encoded query strings; an
/// escape that is not two hex digits is kept as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        _ => "Status",
    }
}

/// A whole response with a `Content-Length`; the connection stays open.
pub fn write_response(out: &mut impl Write, status: u16, body: &[u8]) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        reason_phrase(status),
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}

/// Starts a chunked response, the way the API server streams a watch.
pub fn start_chunked(out: &mut impl Write) -> io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    out.flush()
}

pub fn write_chunk(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    write!(out, "{:x}\r\n", data.len())?;
    out.write_all(data)?;
    out.write_all(b"\r\n")?;
    out.flush()
}

pub fn end_chunked(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

/// A kept-alive client connection: one TCP connection for every request,
/// as a webhook caller holds one, so a measured request costs no connect.
pub struct Connection {
    host: String,
    timeout: Duration,
    reader: BufReader<TcpStream>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    pub fn open(addr: &str, timeout: Duration) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            host: addr.to_string(),
            timeout,
            reader: BufReader::new(stream),
        })
    }

    /// One request and its answer. A socket timeout reads as `EAGAIN`
    /// ("Resource temporarily unavailable") on Linux; it is reported as
    /// what it is.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        self.exchange(method, path, body).map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{method} {path}: no answer from {} within {:?}",
                        self.host, self.timeout
                    ),
                )
            } else {
                e
            }
        })
    }

    fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        let stream = self.reader.get_mut();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("malformed status line {status_line:?}")))?;
        let headers = read_headers(&mut self.reader)?;
        let body = read_body(&mut self.reader, &headers)?;
        Ok(Response { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query(
            "labelSelector=app%3Dweb%2Cpod-template-hash%3Dabc&watch=true&x=a+b&bad=%zz",
        );
        assert_eq!(q["labelSelector"], "app=web,pod-template-hash=abc");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["bad"], "%zz");
    }

    #[test]
    fn requests_and_chunked_bodies_are_read() {
        let raw = b"POST /p?a=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let mut reader = &raw[..];
        let first = read_request(&mut reader).unwrap().unwrap();
        assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/p"));
        assert_eq!(first.body, b"abcde");
        let second = read_request(&mut reader).unwrap().unwrap();
        assert_eq!(second.path, "/");
        assert!(read_request(&mut reader).unwrap().is_none());
    }

    #[test]
    fn a_silent_server_is_reported_as_a_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut connection = Connection::open(&addr, Duration::from_millis(100)).unwrap();
        // Accepted and kept open, never answered.
        let _peer = listener.accept().unwrap();
        let error = connection.request("GET", "/readiness", b"").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            error.to_string(),
            format!("GET /readiness: no answer from {addr} within 100ms")
        );
    }
}
