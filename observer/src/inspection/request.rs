//! One request read from a connection's plaintext, and what its response
//! said: the record both HTTP versions produce.
use super::{
    body_scan::{BodyScan, Usage},
    operation::{self, Operation},
};

/// One request and what its response said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub operation: Operation,
    /// Method and path without ids or query.
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    /// 0 when the connection ended before the response's head.
    pub status: u16,
    pub usage: Usage,
    pub streamed: bool,
    /// From the request's first byte to the response's last (kernel clock).
    pub duration_ns: u64,
}

impl Request {
    /// `2xx`, `4xx`, ...; `none` when no response came.
    pub fn status_class(&self) -> &'static str {
        match self.status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            5 => "5xx",
            _ => "none",
        }
    }
}

/// A request whose response has not ended: its body's scanner until the
/// body ends.
pub struct Open {
    pub request: Request,
    started_ns: u64,
    body: Option<BodyScan>,
}

impl Open {
    /// A request head: `path` as sent (its query and ids are dropped here).
    pub fn new(method: String, path: &str, ts_ns: u64) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        Open {
            request: Request {
                operation: Operation::of(&method, path),
                model: operation::path_model(path),
                path: operation::template(path),
                method,
                status: 0,
                usage: Usage::default(),
                streamed: false,
                duration_ns: 0,
            },
            started_ns: ts_ns,
            body: Some(BodyScan::new()),
        }
    }

    /// A piece of the request's body.
    pub fn body(&mut self, bytes: &[u8]) {
        if let Some(scan) = &mut self.body {
            scan.push(bytes);
        }
    }

    /// Bytes of the body were not seen: its scanner lost its place.
    pub fn lost_body(&mut self) {
        self.body = None;
    }

    /// The request's body ended: its `model`, if it named one.
    pub fn body_ended(&mut self) {
        if let Some(scan) = self.body.take()
            && let Some(model) = scan.model
        {
            self.request.model = Some(model);
        }
    }

    /// The response ended (or never will): the finished record.
    pub fn end(mut self, ts_ns: u64) -> Request {
        self.body_ended();
        self.request.duration_ns = ts_ns.saturating_sub(self.started_ns);
        self.request
    }
}
