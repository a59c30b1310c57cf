//! HTTP/1.x request head → method, Host, path. (Being written: see helper task.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Host header without its port, lower-case.
    pub host: Option<String>,
    pub path: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("not an HTTP/1.x request")]
    NotHttp,
    #[error("request head incomplete")]
    Incomplete,
    #[error("malformed request: {0}")]
    Malformed(String),
}

pub fn parse_request(_bytes: &[u8]) -> Result<Request, HttpError> {
    Err(HttpError::NotHttp)
}
