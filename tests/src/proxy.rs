//! A fault-injecting HTTP proxy for tests: it stands between a tool and a real server (the S3
//! server, a registry) and, per request, forwards it, answers with an error, drops the
//! connection, holds it until the test lets it go, or rewrites the real answer. The server's own
//! behaviour is never imitated: every answer that is not an injected fault comes from it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The head of a request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Requests seen before this one (0 for the first).
    pub index: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for methods that change the server's state.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "DELETE" | "PATCH")
    }
}

/// A rewrite of the real response body.
pub type Rewrite = Box<dyn FnOnce(Vec<u8>) -> Vec<u8> + Send>;

/// What to do with one request.
pub enum Decision {
    Forward,
    /// Answer this status and body instead of the server.
    Reply {
        status: u16,
        body: String,
    },
    /// Close the connection without an answer (a dropped connection).
    Drop,
    /// Forward once the receiver fires (or its sender is dropped).
    Hold(tokio::sync::oneshot::Receiver<()>),
    /// Forward and pass the server's body through `Rewrite` (Content-Length is fixed up).
    Rewrite(Rewrite),
}

type Handler = dyn FnMut(&Request) -> Decision + Send;

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Start a proxy on 127.0.0.1 in front of `upstream` (`host:port`).
    pub async fn start(
        upstream: &str,
        handler: impl FnMut(&Request) -> Decision + Send + 'static,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let upstream = upstream.to_string();
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let handler: Arc<Mutex<Box<Handler>>> = Arc::new(Mutex::new(Box::new(handler)));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, seen, handler) = (upstream.clone(), seen2.clone(), handler.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &seen, &handler).await;
                });
            }
        });
        FaultProxy { addr, seen, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, as a registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serve requests on one client connection until it closes.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    seen: &Mutex<Vec<Request>>,
    handler: &Mutex<Box<Handler>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = read_message(&mut client, &mut buf, true).await? else {
            return Ok(());
        };
        let mut req = parse_request(&head)?;
        let decision = {
            let mut seen = seen.lock().unwrap();
            req.index = seen.len();
            seen.push(req.clone());
            (handler.lock().unwrap())(&req)
        };
        let rewrite = match decision {
            Decision::Forward => None,
            Decision::Rewrite(f) => Some(f),
            Decision::Hold(rx) => {
                let _ = rx.await;
                None
            }
            Decision::Drop => return Ok(()),
            Decision::Reply { status, body } => {
                let reply = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(reply.as_bytes()).await?;
                continue;
            }
        };
        let response = forward(upstream, &head, &body, &req).await?;
        let response = match rewrite {
            Some(f) => rewrite_body(response, f)?,
            None => response,
        };
        client.write_all(&response).await?;
    }
}

/// One request sent upstream on its own connection; the whole response, read to its end.
async fn forward(
    upstream: &str,
    head: &[u8],
    body: &[u8],
    req: &Request,
) -> std::io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).await?;
    let text = String::from_utf8_lossy(head);
    let head: String = text
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("expect:"))
        .collect();
    server.write_all(head.as_bytes()).await?;
    server.write_all(body).await?;
    let mut buf = Vec::new();
    let Some((rhead, rbody)) = read_message(&mut server, &mut buf, req.method != "HEAD").await?
    else {
        return Err(std::io::Error::other("upstream closed without answering"));
    };
    // Re-framed with a Content-Length: the body was read whole (chunks decoded).
    let text = String::from_utf8_lossy(&rhead).into_owned();
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if i > 0
            && (lower.starts_with("transfer-encoding:") || lower.starts_with("content-length:"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    let declared = header_value(&text, "content-length");
    let len = if req.method == "HEAD" {
        declared.unwrap_or_else(|| "0".into())
    } else {
        rbody.len().to_string()
    };
    out.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    let mut response = out.into_bytes();
    response.extend_from_slice(&rbody);
    Ok(response)
}

fn rewrite_body(response: Vec<u8>, f: Rewrite) -> std::io::Result<Vec<u8>> {
    let split = find(&response, b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("response without a head"))?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = f(response[split + 4..].to_vec());
    let mut out = String::new();
    for line in head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn parse_request(head: &[u8]) -> std::io::Result<Request> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(std::io::Error::other(format!("bad request line `{first}`")));
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        index: 0,
    })
}

/// Read one HTTP message (head and body) from `stream`, keeping what follows it in `buf`.
/// `None` when the stream closes before a message starts. A body is framed by Content-Length,
/// chunks (decoded), or, for responses without either, the end of the stream.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    has_body: bool,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut chunk = [0u8; 65536];
    let split = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::other(
                    "connection closed inside a message head",
                ))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head: Vec<u8> = buf.drain(..split + 4).collect();
    let text = String::from_utf8_lossy(&head).into_owned();
    let is_response = text.starts_with("HTTP/");
    let status_no_body = is_response
        && text
            .split(' ')
            .nth(1)
            .is_some_and(|s| s == "204" || s == "304" || s.starts_with('1'));
    if !has_body || status_no_body {
        return Ok(Some((head, Vec::new())));
    }
    // The proxy answers `Expect: 100-continue` itself; `forward` leaves the header out.
    if !is_response && header_value(&text, "expect").is_some_and(|v| v.contains("100")) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    if let Some(len) = header_value(&text, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other("bad Content-Length"))?;
        while buf.len() < len {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed inside a body"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf.drain(..len).collect();
        return Ok(Some((head, body)));
    }
    if header_value(&text, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::other("connection closed inside chunks"));
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let size_line: Vec<u8> = buf.drain(..line_end + 2).collect();
            let size_text = String::from_utf8_lossy(&size_line);
            let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            while buf.len() < size + 2 {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::other("connection closed inside a chunk"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                return Ok(Some((head, body)));
            }
        }
    }
    if !is_response {
        return Ok(Some((head, Vec::new())));
    }
    // A response framed by the end of the connection.
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, std::mem::take(buf))))
}
