//! A tiny HTTP server on loopback that records every request (an SMS
//! gateway, ntfy or webhook stand-in).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request path.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// The body as text.
    pub body: String,
}

/// Every request received so far.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Request>>>);

impl Recorder {
    /// A copy of every request received so far.
    pub fn all(&self) -> Vec<Request> {
        self.0.lock().expect("lock").clone()
    }
}

/// Serves on `listener`, answering every request with `status` and `reply`.
pub fn serve(listener: TcpListener, status: u16, reply: &'static str) -> Recorder {
    let rec = Recorder::default();
    let out = rec.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let rec = rec.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.lines();
                let first = lines.next().unwrap_or("");
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                rec.0.lock().expect("lock").push(Request {
                    method,
                    path,
                    headers,
                    body,
                });
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    out
}

/// Starts a recorder on 127.0.0.1 in a thread of its own (for tests that
/// are not async); returns its port.
pub fn serve_in_thread(status: u16, reply: &'static str) -> (u16, Recorder) {
    serve_in_thread_on(0, status, reply)
}

/// Like [`serve_in_thread`] on a given port (0: any free one).
pub fn serve_in_thread_on(port: u16, status: u16, reply: &'static str) -> (u16, Recorder) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let rec = serve(listener, status, reply);
            tx.send((port, rec)).expect("send port");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("recorder started")
}
