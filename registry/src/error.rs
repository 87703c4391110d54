//! OCI distribution error responses: `{"errors":[{"code","message"}]}` with
//! the status the spec pairs with each code.
//!
//! Both registry-facing servers answer every refusal through [`OciError`], so
//! a client always gets a body it can parse, and a message never carries
//! more than the server chose to put in it (no echoed input, no secrets).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::reference::ReferenceError;

/// The error codes of the distribution spec that a read-only registry uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The blob is not known to the registry.
    BlobUnknown,
    /// The digest is malformed or of an unsupported algorithm.
    DigestInvalid,
    /// The manifest (tag or digest) is not known.
    ManifestUnknown,
    /// The repository name is malformed.
    NameInvalid,
    /// The repository is not known.
    NameUnknown,
    /// The operation (push, delete) is not supported by this registry.
    Unsupported,
    /// Authentication is required or failed.
    Unauthorized,
    /// The caller may not access the resource.
    Denied,
    /// The client sent more requests than allowed.
    Toomanyrequests,
    /// A manifest or blob could not be fetched or served for a reason on the
    /// server's side (upstream down, disk full). Not in the spec's table, but
    /// the spec allows codes beyond it; clients key on the HTTP status.
    Unavailable,
    /// The request was malformed in a way no other code names (a bad Range).
    RangeInvalid,
    /// An uploaded body's length is missing or differs from the one given.
    SizeInvalid,
}

impl ErrorCode {
    /// The HTTP status the distribution spec pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown | ErrorCode::ManifestUnknown | ErrorCode::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::DigestInvalid | ErrorCode::NameInvalid | ErrorCode::SizeInvalid => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Toomanyrequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }
}

/// One error as the registry API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// Human-readable text.
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Usually exactly one entry.
    pub errors: Vec<ErrorEntry>,
}

/// An error response: a code, a message, and optionally a status other than
/// the code's default (a 502 when upstream failed, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct OciError {
    /// The spec's code.
    pub code: ErrorCode,
    /// Human-readable text; never includes credentials or unbounded input.
    pub message: String,
    /// Overrides [`ErrorCode::status`].
    pub status: Option<StatusCode>,
}

impl OciError {
    /// An error with the code's own status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OciError {
            code,
            message: message.into(),
            status: None,
        }
    }

    /// The same error answered with `status`.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            errors: vec![ErrorEntry {
                code: self.code,
                message: self.message.clone(),
            }],
        }
    }
}

impl From<ReferenceError> for OciError {
    fn from(error: ReferenceError) -> Self {
        let code = match error {
            ReferenceError::Digest(_) => ErrorCode::DigestInvalid,
            ReferenceError::Tag(_) => ErrorCode::ManifestUnknown,
            ReferenceError::Name(_) | ReferenceError::Namespace(_) => ErrorCode::NameInvalid,
            ReferenceError::UnknownRoute => ErrorCode::NameUnknown,
        };
        let status = match error {
            // A malformed tag can never name a manifest, but it is the
            // client's mistake: 400, not 404.
            ReferenceError::Tag(_) => Some(StatusCode::BAD_REQUEST),
            _ => None,
        };
        OciError {
            code,
            message: error.to_string(),
            status,
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_matches_the_spec_shape() {
        let error = OciError::new(ErrorCode::BlobUnknown, "blob unknown to registry");
        let json = serde_json::to_value(error.body()).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]})
        );
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn reference_errors_map_to_400_codes() {
        let digest =
            ReferenceError::Digest("sha256:zz".parse::<shoal_swarm::Digest>().unwrap_err());
        let error = OciError::from(digest);
        assert_eq!(error.code, ErrorCode::DigestInvalid);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let tag = OciError::from(ReferenceError::Tag("empty"));
        assert_eq!(tag.status(), StatusCode::BAD_REQUEST);
        let name = OciError::from(ReferenceError::Name("empty"));
        assert_eq!(
            (name.code, name.status()),
            (ErrorCode::NameInvalid, StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn status_override_wins() {
        let error = OciError::new(ErrorCode::Unavailable, "upstream down")
            .with_status(StatusCode::BAD_GATEWAY);
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    }
}
