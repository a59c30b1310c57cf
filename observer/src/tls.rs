//! TLS ClientHello → SNI, ALPN, ECH. (Being written: see helper task.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub ech: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("not a TLS handshake record")]
    NotHandshake,
    #[error("ClientHello incomplete: have {have} of {need} bytes")]
    Incomplete { have: usize, need: usize },
    #[error("malformed ClientHello: {0}")]
    Malformed(String),
}

/// True when `bytes` start like a TLS handshake record.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x16 && bytes[1] == 0x03
}

pub fn parse_client_hello(_bytes: &[u8]) -> Result<ClientHello, TlsError> {
    Err(TlsError::NotHandshake)
}
