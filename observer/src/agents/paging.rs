//! Paging rules for the two list styles of the project API, as pure decisions:
//! `/connections` and `/deployments` answer `{ value, nextLink }` (Azure.Core);
//! `/agents` and `/assistants` answer `{ data, last_id, has_more }` and take
//! `after=<last_id>` (OpenAI style).
use std::collections::HashSet;

use url::Url;

use crate::agents::endpoint::ProjectEndpoint;

/// Pages read per list before giving up: 50 × 100 items is far above any
/// real project, and a service that keeps saying has_more must not loop us.
pub const MAX_PAGES: usize = 50;

/// Items asked per cursor page: the documented maximum (1..100, default 20).
pub const PAGE_LIMIT: &str = "100";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PagingError {
    #[error("more than {MAX_PAGES} pages; stopped")]
    TooManyPages,
    #[error("has_more is true but the page has no last_id to continue after")]
    NoCursor,
    #[error("the service returned cursor {0:?} twice; stopped to avoid a loop")]
    RepeatedCursor(String),
    #[error("nextLink {0:?} is not a URL")]
    BadLink(String),
    // The bearer token goes with every page: never to another origin.
    #[error("nextLink {0:?} leaves the project's origin; not followed")]
    ForeignLink(String),
}

/// What to do after a page.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    Done,
    Next(T),
}

/// Cursor paging state for `/agents` and `/assistants`.
#[derive(Debug, Default)]
pub struct CursorPager {
    pages: usize,
    seen: HashSet<String>,
}

impl CursorPager {
    /// `has_more` decides when present; when absent (older services), the
    /// generated SDKs go on while a `last_id` comes back, so an empty page or
    /// a missing `last_id` ends the list.
    pub fn after_page(
        &mut self,
        has_more: Option<bool>,
        last_id: Option<&str>,
        items: usize,
    ) -> Result<Step<String>, PagingError> {
        self.pages += 1;
        let more = has_more.unwrap_or(items > 0 && last_id.is_some());
        if !more {
            return Ok(Step::Done);
        }
        let cursor = last_id
            .filter(|c| !c.is_empty())
            .ok_or(PagingError::NoCursor)?;
        if self.pages >= MAX_PAGES {
            return Err(PagingError::TooManyPages);
        }
        if !self.seen.insert(cursor.to_owned()) {
            return Err(PagingError::RepeatedCursor(cursor.to_owned()));
        }
        Ok(Step::Next(cursor.to_owned()))
    }
}

/// nextLink paging state for `/connections` and `/deployments`.
#[derive(Debug, Default)]
pub struct LinkPager {
    pages: usize,
}

impl LinkPager {
    /// The next URL: relative links resolve against the endpoint, foreign
    /// origins are refused, and `api-version` is set to ours (as the generated
    /// clients do) whatever the link carried.
    pub fn after_page(
        &mut self,
        endpoint: &ProjectEndpoint,
        next_link: Option<&str>,
        api_version: &str,
    ) -> Result<Step<Url>, PagingError> {
        self.pages += 1;
        let Some(link) = next_link.filter(|l| !l.trim().is_empty()) else {
            return Ok(Step::Done);
        };
        if self.pages >= MAX_PAGES {
            return Err(PagingError::TooManyPages);
        }
        let url = endpoint
            .as_url()
            .join(link)
            .map_err(|_| PagingError::BadLink(link.to_owned()))?;
        if !endpoint.same_origin(&url) {
            return Err(PagingError::ForeignLink(link.to_owned()));
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "api-version")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut url = url;
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", api_version)
            .extend_pairs(kept);
        Ok(Step::Next(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> ProjectEndpoint {
        ProjectEndpoint::parse("https://h/api/projects/p").unwrap()
    }

    #[test]
    fn cursor_paging_follows_last_id_until_has_more_is_false() {
        let mut p = CursorPager::default();
        assert_eq!(
            p.after_page(Some(true), Some("a2"), 2),
            Ok(Step::Next("a2".into()))
        );
        assert_eq!(
            p.after_page(Some(true), Some("a4"), 2),
            Ok(Step::Next("a4".into()))
        );
        assert_eq!(p.after_page(Some(false), Some("a6"), 2), Ok(Step::Done));
    }

    #[test]
    fn cursor_paging_without_has_more_stops_on_an_empty_page() {
        let mut p = CursorPager::default();
        assert_eq!(
            p.after_page(None, Some("a2"), 2),
            Ok(Step::Next("a2".into()))
        );
        assert_eq!(p.after_page(None, None, 0), Ok(Step::Done));
    }

    #[test]
    fn a_service_that_repeats_its_cursor_or_never_ends_is_stopped() {
        let mut p = CursorPager::default();
        p.after_page(Some(true), Some("x"), 1).unwrap();
        assert_eq!(
            p.after_page(Some(true), Some("x"), 1),
            Err(PagingError::RepeatedCursor("x".into()))
        );
        assert_eq!(
            CursorPager::default().after_page(Some(true), None, 1),
            Err(PagingError::NoCursor)
        );
        let mut p = CursorPager::default();
        let mut last = Ok(Step::Done);
        for i in 0..MAX_PAGES {
            last = p.after_page(Some(true), Some(&i.to_string()), 1);
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last, Err(PagingError::TooManyPages));
    }

    #[test]
    fn next_link_resolves_keeps_its_query_and_pins_our_api_version() {
        let mut p = LinkPager::default();
        let Step::Next(url) = p
            .after_page(
                &ep(),
                Some("/api/projects/p/connections?api-version=2025-05-01&skipToken=abc"),
                "v1",
            )
            .unwrap()
        else {
            panic!("expected a next page")
        };
        assert_eq!(
            url.as_str(),
            "https://h/api/projects/p/connections?api-version=v1&skipToken=abc"
        );
        assert_eq!(p.after_page(&ep(), None, "v1"), Ok(Step::Done));
    }

    #[test]
    fn next_link_to_another_origin_is_refused() {
        let r = LinkPager::default().after_page(&ep(), Some("https://elsewhere/steal"), "v1");
        assert_eq!(
            r,
            Err(PagingError::ForeignLink("https://elsewhere/steal".into()))
        );
    }
}
