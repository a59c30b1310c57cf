//! Pure parsing of token-endpoint answers and of a bearer token's expiry.
use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;

/// A bearer token. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub secret: Secret,
    /// None when the answer did not say (then it is used once and re-fetched).
    pub expires_at: Option<SystemTime>,
}

/// Entra's error answer: `{ error, error_description, error_codes }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthError {
    pub error: Option<String>,
    pub description: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error, &self.description) {
            (Some(e), Some(d)) => write!(f, "{e}: {}", first_line(d)),
            (Some(e), None) => f.write_str(e),
            (None, Some(d)) => f.write_str(first_line(d)),
            (None, None) => f.write_str("no error detail"),
        }
    }
}

// AADSTS descriptions carry Trace/Correlation IDs on later lines.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

fn number(v: &serde_json::Value) -> Option<u64> {
    // Managed identity endpoints send numbers as strings ("3599").
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A successful answer from Entra (`expires_in`), IMDS or App Service
/// (`expires_on` epoch seconds, `expires_in`, both possibly strings).
pub fn parse_token_answer(body: &[u8], now: SystemTime) -> Result<AccessToken, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let token = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("no access_token in the answer")?;
    let expires_at = number(&v["expires_on"])
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .or_else(|| number(&v["expires_in"]).map(|s| now + Duration::from_secs(s)));
    Ok(AccessToken {
        secret: Secret::new(token),
        expires_at,
    })
}

/// Entra's (or a managed identity endpoint's) error answer, best effort.
pub fn parse_oauth_error(body: &[u8]) -> OAuthError {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return OAuthError::default();
    };
    let s = |x: &serde_json::Value| x.as_str().map(str::to_owned);
    // App Service answers {"statusCode":400,"message":"..."}.
    OAuthError {
        error: s(&v["error"]).or_else(|| s(&v["error"]["code"])),
        description: s(&v["error_description"])
            .or_else(|| s(&v["message"]))
            .or_else(|| s(&v["error"]["message"])),
    }
}

/// The `exp` claim of a JWT, read without verifying it: only to tell the user
/// early that an explicit token has expired. None for anything else.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(number(&claims["exp"])?))
}

/// RFC 3339 in UTC, seconds precision, for error messages.
pub fn utc(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| {
            ts.round(jiff::Unit::Second)
                .map_or_else(|_| ts.to_string(), |r| r.to_string())
        })
        .unwrap_or_else(|_| format!("{t:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn entra_answer_expires_relative_to_now() {
        let t = parse_token_answer(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ"}"#,
            at(1000),
        )
        .unwrap();
        assert_eq!(t.secret.expose(), "eyJ");
        assert_eq!(t.expires_at, Some(at(4599)));
    }

    #[test]
    fn managed_identity_answer_with_string_numbers_uses_expires_on() {
        let t = parse_token_answer(
            br#"{"access_token":"x","expires_in":"86399","expires_on":"1700000000","resource":"https://ai.azure.com","token_type":"Bearer"}"#,
            at(0),
        )
        .unwrap();
        assert_eq!(t.expires_at, Some(at(1_700_000_000)));
    }

    #[test]
    fn answer_without_token_is_an_error() {
        assert!(parse_token_answer(br#"{"token_type":"Bearer"}"#, at(0)).is_err());
        assert!(parse_token_answer(b"<html>", at(0)).is_err());
    }

    #[test]
    fn entra_error_keeps_code_and_first_line() {
        let e = parse_oauth_error(
            br#"{"error":"invalid_client","error_description":"AADSTS700024: Client assertion is not within its valid time range.\r\nTrace ID: 1","error_codes":[700024]}"#,
        );
        assert_eq!(
            e.to_string(),
            "invalid_client: AADSTS700024: Client assertion is not within its valid time range."
        );
        let app_service =
            parse_oauth_error(br#"{"statusCode":400,"message":"No managed identity found"}"#);
        assert_eq!(app_service.to_string(), "No managed identity found");
    }

    #[test]
    fn jwt_exp_is_read_and_non_jwts_are_ignored() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"aud":"https://ai.azure.com","exp":1700000000}"#);
        assert_eq!(
            jwt_expiry(&format!("eyJhbGciOiJub25lIn0.{payload}.sig")),
            Some(at(1_700_000_000))
        );
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    #[test]
    fn utc_formats_epoch_seconds() {
        assert_eq!(utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(utc(at(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("abc")), "Secret(***)");
    }
}
