//! Token acquisition: one HTTP exchange per source, cached until near expiry.
use std::time::SystemTime;

use super::{
    APP_SERVICE_API_VERSION, AZURE_FEDERATED_TOKEN_FILE, AZURE_POD_IDENTITY_AUTHORITY_HOST,
    AccessToken, CredentialError, ENV_TOKEN, IDENTITY_ENDPOINT, IMDS_API_VERSION, IMDS_PATH,
    JWT_BEARER, Mode, REFRESH_MARGIN, RESOURCE, SCOPE, Secret, Source, resolve, token,
};
use crate::agents::http::Http;

/// Hands out a valid token, fetching or renewing it as needed.
pub struct TokenProvider {
    source: Source,
    skipped: Vec<String>,
    cached: Option<AccessToken>,
}

impl TokenProvider {
    pub fn new(source: Source, skipped: Vec<String>) -> Self {
        Self {
            source,
            skipped,
            cached: None,
        }
    }

    pub fn from_env(mode: Mode) -> Result<Self, CredentialError> {
        let (source, skipped) = resolve(&|k| std::env::var(k).ok(), mode)?;
        Ok(Self::new(source, skipped))
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Forget the cached token (after the API rejected it).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    pub fn token(&mut self, http: &Http, now: SystemTime) -> Result<Secret, CredentialError> {
        if let Some(t) = &self.cached
            && t.expires_at.is_some_and(|e| e > now + REFRESH_MARGIN)
        {
            return Ok(t.secret.clone());
        }
        let fresh = self.fetch(http, now)?;
        let secret = fresh.secret.clone();
        self.cached = Some(fresh);
        Ok(secret)
    }

    /// One arm per credential source, each a short exchange: kept together
    /// so the sources' requests can be compared side by side.
    fn fetch(&self, http: &Http, now: SystemTime) -> Result<AccessToken, CredentialError> {
        let credential = self.source.describe();
        match &self.source {
            Source::Explicit { token } => {
                let expires_at = token::jwt_expiry(token.expose());
                if let Some(at) = expires_at.filter(|at| *at <= now) {
                    return Err(CredentialError::ExplicitExpired {
                        var: ENV_TOKEN,
                        at: token::utc(at),
                    });
                }
                Ok(AccessToken {
                    secret: token.clone(),
                    expires_at,
                })
            }
            Source::WorkloadIdentity {
                client_id,
                tenant_id,
                token_file,
                authority,
            } => {
                // Re-read every time: the kubelet rotates the projected token.
                let assertion = std::fs::read_to_string(token_file).map_err(|source| {
                    CredentialError::TokenFile {
                        credential: credential.clone(),
                        source,
                    }
                })?;
                let endpoint = format!("{authority}/{tenant_id}/oauth2/v2.0/token");
                let reply = http
                    .post_form(
                        &endpoint,
                        &[
                            ("client_id", client_id),
                            ("scope", SCOPE),
                            ("grant_type", "client_credentials"),
                            ("client_assertion_type", JWT_BEARER),
                            ("client_assertion", assertion.trim()),
                        ],
                    )
                    .map_err(|e| CredentialError::Unreachable {
                        credential: credential.clone(),
                        detail: e.0,
                    })?;
                let fix = format!(
                    "Check that app {client_id} in tenant {tenant_id} has a federated credential for this service account and that {AZURE_FEDERATED_TOKEN_FILE} is current"
                );
                answer(reply, &credential, &endpoint, fix, now)
            }
            Source::AppService {
                endpoint,
                header,
                client_id,
            } => {
                let url = with_query(endpoint, APP_SERVICE_API_VERSION, client_id.as_deref())
                    .map_err(|reason| CredentialError::BadSetting {
                        var: IDENTITY_ENDPOINT,
                        value: endpoint.clone(),
                        reason,
                    })?;
                let reply = http
                    .get(&url, &[("X-IDENTITY-HEADER", header.expose())])
                    .map_err(|e| CredentialError::Unreachable {
                        credential: credential.clone(),
                        detail: e.0,
                    })?;
                answer(reply, &credential, endpoint, self.source.fix(), now)
            }
            Source::Imds {
                endpoint,
                client_id,
            } => {
                let base = format!("{endpoint}{IMDS_PATH}");
                let url = with_query(&base, IMDS_API_VERSION, client_id.as_deref()).map_err(
                    |reason| CredentialError::BadSetting {
                        var: AZURE_POD_IDENTITY_AUTHORITY_HOST,
                        value: endpoint.clone(),
                        reason,
                    },
                )?;
                match http.get(&url, &[("Metadata", "true")]) {
                    Ok(reply) => answer(reply, &credential, &base, self.source.fix(), now),
                    // No IMDS here: report everything tried, not just the last.
                    Err(e) => {
                        let mut tried = self.skipped.clone();
                        tried.push(format!(
                            "managed identity from IMDS at {endpoint} (no answer: {})",
                            e.0
                        ));
                        Err(CredentialError::NoCredential { tried })
                    }
                }
            }
        }
    }
}

fn with_query(
    base: &str,
    api_version: &str,
    client_id: Option<&str>,
) -> Result<String, &'static str> {
    let mut url = url::Url::parse(base).map_err(|_| "not a URL")?;
    url.query_pairs_mut()
        .append_pair("api-version", api_version)
        .append_pair("resource", RESOURCE);
    if let Some(c) = client_id {
        url.query_pairs_mut().append_pair("client_id", c);
    }
    Ok(url.into())
}

fn answer(
    reply: crate::agents::http::Reply,
    credential: &str,
    endpoint: &str,
    fix: String,
    now: SystemTime,
) -> Result<AccessToken, CredentialError> {
    if reply.status != 200 {
        return Err(CredentialError::Rejected {
            credential: credential.to_owned(),
            endpoint: endpoint.to_owned(),
            status: reply.status,
            detail: token::parse_oauth_error(&reply.body),
            fix,
        });
    }
    token::parse_token_answer(&reply.body, now).map_err(|detail| CredentialError::BadAnswer {
        credential: credential.to_owned(),
        endpoint: endpoint.to_owned(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_identity_query_carries_resource_and_client_id() {
        let u = with_query(
            "http://169.254.169.254/metadata/identity/oauth2/token",
            IMDS_API_VERSION,
            Some("c"),
        )
        .unwrap();
        assert_eq!(
            u,
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fai.azure.com&client_id=c"
        );
    }
}
