//! The little HTTP/1.1 client the tests and the load tools need to post
//! AdmissionReviews to policy-server: one kept-alive connection, as the
//! API server holds one to a webhook, so a timed request costs no connect.
//!
//! Written on `std` rather than with an HTTP crate: the subset is small (a
//! request with a `Content-Length` body, an answer with a `Content-Length`
//! or chunked body, plain HTTP on loopback), and the workspace stays
//! buildable from the crates it already locks.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Headers and bodies past this are refused: the peer is policy-server on
/// loopback, and a runaway answer should fail, not fill the memory.
const MAX_HEADER_LINES: usize = 100;
const MAX_BODY: usize = 64 << 20;

/// A kept-alive client connection.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// Serves `answers` in turn on one accepted connection, each after
    /// reading a whole request (head and `Content-Length` body).
    fn serve(answers: Vec<&'static [u8]>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            for answer in answers {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let headers = read_headers(&mut reader).unwrap();
                read_body(&mut reader, &headers).unwrap();
                reader.get_mut().write_all(answer).unwrap();
            }
            let _ = reader.read_to_end(&mut Vec::new());
        });
        addr
    }

    #[test]
    fn whole_and_chunked_answers_are_read_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ]);
        let mut connection = Connection::open(&addr, Duration::from_secs(5)).unwrap();
        let first = connection.request("POST", "/validate/a", b"{}").unwrap();
        assert_eq!((first.status, first.body.as_slice()), (200, &b"hello"[..]));
        let second = connection.request("GET", "/", b"").unwrap();
        assert_eq!(
            (second.status, second.body.as_slice()),
            (404, &b"abcde"[..])
        );
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
