//! Which credential the environment configures (pure: `env` is a lookup).
use std::path::PathBuf;

use super::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE,
    AZURE_POD_IDENTITY_AUTHORITY_HOST, AZURE_TENANT_ID, CredentialError, DEFAULT_AUTHORITY,
    DEFAULT_IMDS, ENV_TOKEN, IDENTITY_ENDPOINT, IDENTITY_HEADER, Mode, Secret, Source,
};

/// Picks the credential from the environment (`env` is `std::env::var` in
/// production, a map in tests). Auto mode follows the order Azure SDKs use
/// and takes the first source that is configured, so an explicit setting is
/// never silently replaced by another identity; IMDS is the fallback.
///
/// One function on purpose: the order of the chain is the contract, and it
/// reads top to bottom here.
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    mode: Mode,
) -> Result<(Source, Vec<String>), CredentialError> {
    let get = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut skipped = Vec::new();
    if matches!(mode, Mode::Auto | Mode::Token) {
        match get(ENV_TOKEN) {
            Some(t) => {
                return Ok((
                    Source::Explicit {
                        token: Secret::new(t),
                    },
                    skipped,
                ));
            }
            None if mode == Mode::Token => {
                return Err(CredentialError::Incomplete {
                    what: "--credential token",
                    missing: vec![ENV_TOKEN],
                    hint: "",
                });
            }
            None => skipped.push(format!("{ENV_TOKEN} (unset)")),
        }
    }
    if matches!(mode, Mode::Auto | Mode::WorkloadIdentity) {
        match get(AZURE_FEDERATED_TOKEN_FILE) {
            Some(file) => {
                let (client, tenant) = (get(AZURE_CLIENT_ID), get(AZURE_TENANT_ID));
                let missing: Vec<_> = [(AZURE_CLIENT_ID, &client), (AZURE_TENANT_ID, &tenant)]
                    .into_iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| k)
                    .collect();
                if !missing.is_empty() {
                    return Err(CredentialError::Incomplete {
                        what: "workload identity",
                        missing,
                        hint: " (the AKS workload identity webhook sets all three when the pod has label azure.workload.identity/use=true)",
                    });
                }
                let authority = authority(get(AZURE_AUTHORITY_HOST))?;
                return Ok((
                    Source::WorkloadIdentity {
                        client_id: client.unwrap_or_default(),
                        tenant_id: tenant.unwrap_or_default(),
                        token_file: PathBuf::from(file),
                        authority,
                    },
                    skipped,
                ));
            }
            None if mode == Mode::WorkloadIdentity => {
                return Err(CredentialError::Incomplete {
                    what: "--credential workload-identity",
                    missing: vec![AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID],
                    hint: "",
                });
            }
            None => skipped.push(format!(
                "workload identity ({AZURE_FEDERATED_TOKEN_FILE} unset)"
            )),
        }
    }
    let client_id = get(AZURE_CLIENT_ID);
    match (get(IDENTITY_ENDPOINT), get(IDENTITY_HEADER)) {
        (Some(endpoint), Some(header)) => {
            return Ok((
                Source::AppService {
                    endpoint,
                    header: Secret::new(header),
                    client_id,
                },
                skipped,
            ));
        }
        (Some(_), None) => {
            return Err(CredentialError::Incomplete {
                what: "App Service managed identity",
                missing: vec![IDENTITY_HEADER],
                hint: "",
            });
        }
        _ => skipped.push(format!(
            "App Service managed identity ({IDENTITY_ENDPOINT} unset)"
        )),
    }
    let endpoint =
        get(AZURE_POD_IDENTITY_AUTHORITY_HOST).unwrap_or_else(|| DEFAULT_IMDS.to_owned());
    Ok((
        Source::Imds {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client_id,
        },
        skipped,
    ))
}

/// As azure-identity: no scheme means https; plaintext is refused.
fn authority(value: Option<String>) -> Result<String, CredentialError> {
    let Some(v) = value else {
        return Ok(DEFAULT_AUTHORITY.to_owned());
    };
    let v = v.trim_end_matches('/');
    if v.starts_with("https://") {
        Ok(v.to_owned())
    } else if v.contains("://") {
        Err(CredentialError::BadSetting {
            var: AZURE_AUTHORITY_HOST,
            value: v.to_owned(),
            reason: "must be an https URL",
        })
    } else {
        Ok(format!("https://{v}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn explicit_token_wins_in_auto_mode() {
        let (s, _) = resolve(
            &env(&[(ENV_TOKEN, "t"), (AZURE_FEDERATED_TOKEN_FILE, "/f")]),
            Mode::Auto,
        )
        .unwrap();
        assert_eq!(
            s,
            Source::Explicit {
                token: Secret::new("t")
            }
        );
    }

    #[test]
    fn aks_workload_identity_env_is_used_with_the_default_authority() {
        let e = env(&[
            (
                AZURE_FEDERATED_TOKEN_FILE,
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_TENANT_ID, "t"),
        ]);
        let (s, skipped) = resolve(&e, Mode::Auto).unwrap();
        assert!(
            matches!(&s, Source::WorkloadIdentity { authority, .. } if authority == DEFAULT_AUTHORITY)
        );
        assert_eq!(skipped, vec![format!("{ENV_TOKEN} (unset)")]);
    }

    #[test]
    fn authority_host_as_aks_sets_it_loses_its_trailing_slash() {
        let e = env(&[
            (AZURE_FEDERATED_TOKEN_FILE, "/f"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_TENANT_ID, "t"),
            (AZURE_AUTHORITY_HOST, "https://login.microsoftonline.com/"),
        ]);
        let (s, _) = resolve(&e, Mode::Auto).unwrap();
        assert!(
            matches!(s, Source::WorkloadIdentity { authority, .. } if authority == "https://login.microsoftonline.com")
        );
        let bad = env(&[
            (AZURE_FEDERATED_TOKEN_FILE, "/f"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_TENANT_ID, "t"),
            (AZURE_AUTHORITY_HOST, "http://x"),
        ]);
        assert!(matches!(
            resolve(&bad, Mode::Auto),
            Err(CredentialError::BadSetting { .. })
        ));
    }

    #[test]
    fn half_configured_workload_identity_names_what_is_missing() {
        let err = resolve(&env(&[(AZURE_FEDERATED_TOKEN_FILE, "/f")]), Mode::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AZURE_CLIENT_ID, AZURE_TENANT_ID unset"),
            "{err}"
        );
        assert!(err.contains("azure.workload.identity/use=true"), "{err}");
    }

    #[test]
    fn app_service_identity_needs_its_header() {
        let (s, _) = resolve(
            &env(&[
                (IDENTITY_ENDPOINT, "http://127.0.0.1:41/msi/token"),
                (IDENTITY_HEADER, "h"),
            ]),
            Mode::Auto,
        )
        .unwrap();
        assert!(matches!(s, Source::AppService { .. }));
        let err = resolve(&env(&[(IDENTITY_ENDPOINT, "http://x")]), Mode::Auto)
            .unwrap_err()
            .to_string();
        assert!(err.contains("IDENTITY_HEADER"), "{err}");
    }

    #[test]
    fn nothing_configured_falls_back_to_imds_and_remembers_what_was_skipped() {
        let (s, skipped) = resolve(&env(&[(AZURE_CLIENT_ID, "uami")]), Mode::Auto).unwrap();
        assert_eq!(
            s,
            Source::Imds {
                endpoint: DEFAULT_IMDS.into(),
                client_id: Some("uami".into())
            }
        );
        assert_eq!(skipped.len(), 3);
    }

    #[test]
    fn forced_modes_do_not_fall_through() {
        assert!(
            resolve(&env(&[]), Mode::Token)
                .unwrap_err()
                .to_string()
                .contains(ENV_TOKEN)
        );
        assert!(
            resolve(&env(&[(ENV_TOKEN, "t")]), Mode::WorkloadIdentity)
                .unwrap_err()
                .to_string()
                .contains(AZURE_FEDERATED_TOKEN_FILE)
        );
        assert!(matches!(
            resolve(&env(&[(ENV_TOKEN, "t")]), Mode::ManagedIdentity)
                .unwrap()
                .0,
            Source::Imds { .. }
        ));
    }
}
