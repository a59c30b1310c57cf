//! The one blocking HTTP client (ureq 3 + rustls/ring) for the project API and
//! the token endpoints, with the trust roots the user chose.
use std::{path::PathBuf, sync::Arc, time::Duration};

use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};

/// Largest answer read: a page of 100 agents with long instructions is well
/// under this; anything bigger is not a list page.
pub const MAX_BODY_BYTES: u64 = 8 << 20;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where server certificates are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Roots {
    /// The system store through rustls-platform-verifier; on Linux that is
    /// rustls-native-certs, which honours SSL_CERT_FILE and SSL_CERT_DIR.
    #[default]
    Platform,
    /// Only the CA certificates in this PEM file (private CAs, tests).
    PemFile(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read CA file {path}: {source}")]
    CaRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA file {0} holds no PEM certificate")]
    CaEmpty(PathBuf),
}

/// An answer of any status: callers decide what a 401 means.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new(roots: &Roots) -> Result<Self, SetupError> {
        let root_certs = match roots {
            Roots::Platform => RootCerts::PlatformVerifier,
            Roots::PemFile(path) => {
                let pem = std::fs::read(path).map_err(|source| SetupError::CaRead {
                    path: path.clone(),
                    source,
                })?;
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(SetupError::CaEmpty(path.clone()));
                }
                RootCerts::Specific(Arc::new(certs))
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(root_certs)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            // 4xx bodies carry the error code we explain to the user.
            .http_status_as_error(false)
            // A redirect would carry the bearer token to wherever it points.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("gatewatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self { agent })
    }

    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Reply, TransportError> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(url, req.call())
    }

    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Reply, TransportError> {
        read(url, self.agent.post(url).send_form(form.iter().copied()))
    }
}

fn read(
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, TransportError> {
    let mut resp = result.map_err(|e| TransportError(explain(url, &e)))?;
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| TransportError(format!("reading the answer from {url}: {e}")))?;
    Ok(Reply {
        status,
        www_authenticate,
        body,
    })
}

fn explain(url: &str, e: &ureq::Error) -> String {
    let text = e.to_string();
    // rustls-platform-verifier fails this way when the image has no CA store.
    if text.contains("No CA certificates")
        || text.contains("UnknownIssuer")
        || text.contains("invalid peer certificate")
    {
        format!(
            "{url}: TLS certificate not trusted ({text}); point SSL_CERT_FILE or --azure-ca-file (GATEWATCH_AZURE_CA_FILE, file key azure_ca_file) at the CA bundle that signs it"
        )
    } else {
        format!("{url}: {text}")
    }
}
