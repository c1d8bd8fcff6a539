//! A webhook receiver on 127.0.0.1 that misbehaves on purpose: each request gets the answer
//! the test's script chooses — a status with headers, or the socket closed without an answer
//! (a receiver that is down). It records every request: when it came and ended, its
//! `webhook-id`, which attempt of that id it was, how many requests were in flight.
//!
//! Plain TCP and HTTP/1.1 with `Connection: close`, so that "closed without an answer" is
//! exactly that.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver does with one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Status(u16, Vec<(String, String)>),
    /// Read the request, then close the socket without a byte of answer.
    Close,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::Status(200, Vec::new())
    }

    pub fn status(code: u16) -> Answer {
        Answer::Status(code, Vec::new())
    }

    pub fn retry_after(code: u16, seconds: u64) -> Answer {
        Answer::Status(code, vec![("Retry-After".into(), seconds.to_string())])
    }
}

/// One request as the script sees it.
pub struct Request<'a> {
    pub webhook_id: &'a str,
    pub body: &'a [u8],
    /// 1 for the first request with this webhook-id, 2 for the second, …
    pub nth: usize,
    pub at: Instant,
}

/// One request as the test reads it afterwards.
#[derive(Clone, Debug)]
pub struct Record {
    pub webhook_id: String,
    pub body: Vec<u8>,
    pub nth: usize,
    pub arrived: Instant,
    pub ended: Instant,
    /// The status sent; `None` when the socket was closed without an answer.
    pub status: Option<u16>,
    /// Requests in flight when this one arrived, this one included.
    pub in_flight: usize,
}

impl Record {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("each webhook body is JSON")
    }
}

type Script = dyn Fn(&Request) -> Answer + Send + Sync;

struct Inner {
    script: Mutex<Arc<Script>>,
    records: Mutex<Vec<Record>>,
    per_id: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    /// Each request is held this long before its answer, so overlapping requests overlap.
    hold: Duration,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    pub fn start(
        hold: Duration,
        script: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let inner = Arc::new(Inner {
            script: Mutex::new(Arc::new(script)),
            records: Mutex::new(Vec::new()),
            per_id: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            hold,
        });
        let shared = inner.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let inner = shared.clone();
                std::thread::spawn(move || serve(stream, &inner));
            }
        });
        Receiver { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers from now on with `script`.
    pub fn script(&self, script: impl Fn(&Request) -> Answer + Send + Sync + 'static) {
        *self.inner.script.lock().expect("lock") = Arc::new(script);
    }

    pub fn records(&self) -> Vec<Record> {
        self.inner.records.lock().expect("lock").clone()
    }

    /// Distinct webhook-ids that were accepted (answered 2xx).
    pub fn delivered_ids(&self) -> std::collections::BTreeSet<String> {
        self.records()
            .into_iter()
            .filter(Record::delivered)
            .map(|r| r.webhook_id)
            .collect()
    }
}

fn serve(stream: TcpStream, inner: &Inner) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut content_length = 0usize;
    let mut webhook_id = String::new();
    let mut line = String::new();
    // The request line, then headers up to the blank line.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().unwrap_or(0),
                "webhook-id" => webhook_id = value.to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let arrived = Instant::now();
    let in_flight = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let nth = {
        let mut per = inner.per_id.lock().expect("lock");
        let n = per.entry(webhook_id.clone()).or_default();
        *n += 1;
        *n
    };
    let script = inner.script.lock().expect("lock").clone();
    let answer = script(&Request {
        webhook_id: &webhook_id,
        body: &body,
        nth,
        at: arrived,
    });
    std::thread::sleep(inner.hold);
    // Recorded before the answer goes out, so that a test reading the records after the
    // daemon saw its answer finds the request there.
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    inner.records.lock().expect("lock").push(Record {
        webhook_id,
        body,
        nth,
        arrived,
        ended: Instant::now(),
        status: match &answer {
            Answer::Close => None,
            Answer::Status(code, _) => Some(*code),
        },
        in_flight,
    });
    match answer {
        Answer::Close => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Answer::Status(code, headers) => {
            let mut head =
                format!("HTTP/1.1 {code} Answer\r\nContent-Length: 0\r\nConnection: close\r\n");
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut s = &stream;
            let _ = s.write_all(head.as_bytes());
            let _ = s.flush();
        }
    }
}
