//! DNS response → question, CNAME chain, addresses. (Being written: see helper task.)
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The name the client asked for, lower-case, no trailing dot.
    pub question: String,
    /// CNAME chain from the question, in order (evidence only, never used to classify).
    pub cnames: Vec<String>,
    /// A/AAAA answers for the question or its chain, with TTL seconds.
    pub addrs: Vec<(IpAddr, u32)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("not a DNS response")]
    NotResponse,
    #[error("malformed DNS message: {0}")]
    Malformed(String),
}

pub fn parse_response(_bytes: &[u8]) -> Result<DnsAnswer, DnsError> {
    Err(DnsError::NotResponse)
}
