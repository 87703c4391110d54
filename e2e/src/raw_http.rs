//! HTTP/1.1 spoken byte for byte over a plain TCP socket, for requests no
//! well-behaved client would send: unnormalised paths (`..`, `%2f`),
//! conflicting `Content-Length` and `Transfer-Encoding`, pipelined
//! smuggling attempts. Every response the server wrote is parsed, so a
//! test can tell one answer from two.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a read waits for more bytes before the exchange is over.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// One response as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as framed by `Content-Length` or chunked encoding.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The OCI error code of the body, `errors[0].code`, if it is OCI JSON.
    pub fn oci_code(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        json["errors"][0]["code"].as_str().map(str::to_owned)
    }
}

/// What came back for one write of raw request bytes.
#[derive(Debug)]
pub struct Exchange {
    /// Every complete response, in order.
    pub responses: Vec<RawResponse>,
    /// Whether the server closed the connection (rather than the read
    /// timing out with the connection still open).
    pub closed: bool,
}

/// Sends `request` verbatim and reads until the server closes the
/// connection or is silent for [`READ_TIMEOUT`].
pub fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Exchange> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.write_all(request).context("sending the request")?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            // A reset after the server answered and closed counts as closed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) => return Err(e).context("reading the response"),
        }
    };
    Ok(Exchange {
        responses: parse_responses(&bytes)?,
        closed,
    })
}

/// A `GET` (or other method) of `target` with extra header lines, closing
/// the connection afterwards; the single response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra_headers: &[(&str, &str)],
) -> anyhow::Result<RawResponse> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in extra_headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut exchange = exchange(addr, raw.as_bytes())?;
    match exchange.responses.len() {
        1 => Ok(exchange.responses.remove(0)),
        n => bail!("{n} responses to one request {method} {target}"),
    }
}

/// Splits a byte stream into responses. A truncated last response is an
/// error: the server must never cut a response short.
pub fn parse_responses(mut bytes: &[u8]) -> anyhow::Result<Vec<RawResponse>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = find(bytes, b"\r\n\r\n").context("response head not terminated")?;
        let head = std::str::from_utf8(&bytes[..end]).context("response head is not UTF-8")?;
        bytes = &bytes[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let body = if get("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
            let (body, rest) = dechunk(bytes)?;
            bytes = rest;
            body
        } else {
            let length: usize = match get("content-length") {
                Some(v) => v.parse().context("bad Content-Length in response")?,
                None => bytes.len(),
            };
            if bytes.len() < length {
                bail!("response body cut short: {} of {length} bytes", bytes.len());
            }
            let body = bytes[..length].to_vec();
            bytes = &bytes[length..];
            body
        };
        out.push(RawResponse {
            status,
            headers,
            body,
        });
    }
    Ok(out)
}

fn dechunk(mut bytes: &[u8]) -> anyhow::Result<(Vec<u8>, &[u8])> {
    let mut body = Vec::new();
    loop {
        let line_end = find(bytes, b"\r\n").context("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&bytes[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            let trailer_end = find(bytes, b"\r\n").context("chunked trailer not terminated")?;
            return Ok((body, &bytes[trailer_end + 2..]));
        }
        if bytes.len() < size + 2 {
            bail!("chunk cut short");
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
