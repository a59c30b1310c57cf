//! A Foundry project endpoint, `https://<resource>.services.ai.azure.com/api/projects/<project>`
//! (the form the data-plane spec and every SDK document; `_project` names the
//! resource's default project).
use std::fmt;

use url::Url;

/// The project name Foundry documents for "the default project of this resource".
pub const DEFAULT_PROJECT: &str = "_project";

/// Path prefix in front of the project name.
const PROJECTS_PATH: &str = "/api/projects/";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("{0:?} is not a URL: {1}")]
    NotAUrl(String, String),
    // Bearer tokens never go over plaintext.
    #[error("{0:?} must use https (a bearer token is sent to it)")]
    NotHttps(String),
    #[error(
        "{0:?} is not a project endpoint: expected https://<resource>.services.ai.azure.com/api/projects/<project>"
    )]
    NotProjectPath(String),
}

/// A parsed project endpoint: the base every data-plane path hangs off.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectEndpoint {
    base: Url,
    project: String,
}

impl ProjectEndpoint {
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let url = Url::parse(text.trim())
            .map_err(|e| EndpointError::NotAUrl(text.to_owned(), e.to_string()))?;
        if url.scheme() != "https" {
            return Err(EndpointError::NotHttps(text.to_owned()));
        }
        if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(EndpointError::NotProjectPath(text.to_owned()));
        }
        let path = url.path().trim_end_matches('/');
        let project = path
            .strip_prefix(PROJECTS_PATH)
            .filter(|p| !p.is_empty() && !p.contains('/'))
            .ok_or_else(|| EndpointError::NotProjectPath(text.to_owned()))?
            .to_owned();
        let mut base = url;
        base.set_path(&format!("{PROJECTS_PATH}{project}"));
        Ok(Self { base, project })
    }

    /// The resource's default project on a host seen in traffic. A node sees
    /// only the host (the path is inside TLS), so `_project` is the one
    /// project it can name without configuration.
    pub fn default_for_host(host_and_port: &str) -> Result<Self, EndpointError> {
        Self::parse(&format!(
            "https://{host_and_port}{PROJECTS_PATH}{DEFAULT_PROJECT}"
        ))
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// Host, with the port when it is not 443.
    pub fn authority(&self) -> String {
        match self.base.port() {
            Some(port) => format!("{}:{port}", self.base.host_str().unwrap_or_default()),
            None => self.base.host_str().unwrap_or_default().to_owned(),
        }
    }

    /// `<host>/<project>`: unique per project, and the `project` metric label.
    pub fn label(&self) -> String {
        format!("{}/{}", self.authority(), self.project)
    }

    /// `base/<path>` with the given query pairs.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/{}",
            self.base.path(),
            path.trim_start_matches('/')
        ));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Whether `other` is on the same origin (scheme, host, port): a paging
    /// link elsewhere must not receive this project's bearer token.
    pub fn same_origin(&self, other: &Url) -> bool {
        self.base.origin() == other.origin()
    }

    pub fn as_url(&self) -> &Url {
        &self.base
    }
}

impl fmt::Display for ProjectEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_form_parses_to_project_and_base() {
        let e = ProjectEndpoint::parse("https://contoso.services.ai.azure.com/api/projects/sales/")
            .unwrap();
        assert_eq!(e.project(), "sales");
        assert_eq!(
            e.to_string(),
            "https://contoso.services.ai.azure.com/api/projects/sales"
        );
        assert_eq!(e.label(), "contoso.services.ai.azure.com/sales");
    }

    #[test]
    fn urls_hang_off_the_project_path() {
        let e = ProjectEndpoint::parse("https://h.example:8443/api/projects/p").unwrap();
        let u = e.url("agents", &[("api-version", "v1"), ("after", "a b")]);
        assert_eq!(
            u.as_str(),
            "https://h.example:8443/api/projects/p/agents?api-version=v1&after=a+b"
        );
        assert_eq!(e.label(), "h.example:8443/p");
    }

    #[test]
    fn plaintext_and_other_paths_are_refused() {
        assert!(matches!(
            ProjectEndpoint::parse("http://h/api/projects/p"),
            Err(EndpointError::NotHttps(_))
        ));
        for bad in [
            "https://h/",
            "https://h/api/projects/",
            "https://h/api/projects/p/agents",
            "https://h/api/projects/p?x=1",
        ] {
            assert!(
                matches!(
                    ProjectEndpoint::parse(bad),
                    Err(EndpointError::NotProjectPath(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_host_seen_in_traffic_maps_to_its_default_project() {
        let e = ProjectEndpoint::default_for_host("contoso.services.ai.azure.com").unwrap();
        assert_eq!(
            e.to_string(),
            "https://contoso.services.ai.azure.com/api/projects/_project"
        );
    }

    #[test]
    fn paging_links_elsewhere_are_not_same_origin() {
        let e = ProjectEndpoint::parse("https://h/api/projects/p").unwrap();
        assert!(e.same_origin(&Url::parse("https://h/api/projects/p/connections?skip=2").unwrap()));
        assert!(!e.same_origin(&Url::parse("https://evil/api/projects/p/connections").unwrap()));
        assert!(!e.same_origin(&Url::parse("https://h:444/x").unwrap()));
    }
}
