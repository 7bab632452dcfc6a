//! RFC 9457 problem details: every error the API returns, with a precise
//! message, as `application/problem+json`.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use remit_store::StoreError;
use serde::de::DeserializeOwned;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = remit_api::problem::PROBLEM_JSON;

/// An RFC 9457 problem: what went wrong, for a client to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    www_authenticate: Option<&'static str>,
}

impl Problem {
    /// A problem with a status, a stable type slug, a short title and a detail.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        // A detail may quote what the caller sent: bounded, always.
        let detail = detail.into();
        let detail = match remit_runtime::bounded::bounded(
            &detail,
            remit_runtime::bounded::MAX_MESSAGE_TEXT,
        ) {
            std::borrow::Cow::Borrowed(_) => detail,
            std::borrow::Cow::Owned(bounded) => bounded,
        };
        Self {
            status,
            kind,
            title,
            detail,
            www_authenticate: None,
        }
    }

    /// 400: the request is well-formed JSON but asks for something invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(detail: impl Into<String>, challenge: &'static str) -> Self {
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Admin credentials required",
            detail,
        );
        problem.www_authenticate = Some(challenge);
        problem
    }

    /// 500 for a failure the client cannot fix; the detail is logged, not sent.
    pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{what} failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("{what} failed; see the server log"),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The problem document (`remit_api::Problem`, the one shape of it).
    pub fn document(&self) -> remit_api::Problem {
        remit_api::Problem::new(self.kind, self.title, self.status.as_u16(), &self.detail)
    }

    /// The problem document as JSON.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.document()).unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.document())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::Duplicate { .. } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "Already exists",
                error.to_string(),
            ),
            StoreError::NotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                error.to_string(),
            ),
            StoreError::Invalid { .. } => Self::invalid(error.to_string()),
            StoreError::ApprovalAlreadyDecided { .. } | StoreError::ApprovalNotUsable { .. } => {
                Self::new(
                    StatusCode::CONFLICT,
                    "approval-final",
                    "Approval cannot be decided",
                    error.to_string(),
                )
            }
            StoreError::Unreachable { .. } | StoreError::Query { .. } => {
                remit_runtime::metrics::store_error("unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "Store unavailable",
                    "the database did not answer; retry later (details in the server log)",
                )
                .logged(&error)
            }
            _ => {
                remit_runtime::metrics::store_error("internal");
                Self::internal("a store operation", &error)
            }
        }
    }
}

impl From<remit_runtime::RecordError> for Problem {
    fn from(error: remit_runtime::RecordError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "receipt-failed",
            "Receipt not recorded",
            error.to_string(),
        )
    }
}

impl From<remit_runtime::state::PolicyRebuildError> for Problem {
    fn from(error: remit_runtime::state::PolicyRebuildError) -> Self {
        Self::internal("reloading the policy", &error)
    }
}

impl Problem {
    fn logged(self, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "store error");
        self
    }
}

fn rejection(status: StatusCode, body_text: String) -> Problem {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "body-too-large",
            "Request body too large",
            body_text,
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            status,
            "unsupported-media-type",
            "Unsupported media type",
            body_text,
        ),
        StatusCode::UNPROCESSABLE_ENTITY => Problem::new(
            status,
            "invalid-body",
            "Request body does not match the expected shape",
            body_text,
        ),
        _ => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            "Malformed request body",
            body_text,
        ),
    }
}

impl From<JsonRejection> for Problem {
    fn from(error: JsonRejection) -> Self {
        rejection(error.status(), error.body_text())
    }
}

impl From<FormRejection> for Problem {
    fn from(error: FormRejection) -> Self {
        rejection(error.status(), error.body_text())
    }
}

/// A JSON body whose rejections are problem documents.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// A form body (`application/x-www-form-urlencoded`, as OAuth endpoints
/// take) whose rejections are problem documents.
#[derive(Debug, Clone)]
pub struct FormBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for FormBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Form(value) = axum::Form::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_duplicates_are_conflicts_and_unknowns_are_not_found() {
        let dup: Problem = StoreError::Duplicate {
            what: "agent",
            id: "a".into(),
        }
        .into();
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        assert!(dup.detail().contains("agent \"a\" already exists"));
        let missing: Problem = StoreError::NotFound {
            what: "agent",
            id: "b".into(),
        }
        .into();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn deciding_a_decided_approval_is_a_conflict_not_a_server_error() {
        let again: Problem = StoreError::ApprovalAlreadyDecided {
            id: "ap1".into(),
            state: "approved".into(),
        }
        .into();
        assert_eq!(again.status(), StatusCode::CONFLICT);
        assert!(again.detail().contains("a decision is final"));
        let expired: Problem = StoreError::ApprovalNotUsable {
            id: "ap1".into(),
            reason: "expired",
        }
        .into();
        assert_eq!(expired.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn problem_body_names_type_status_and_detail() {
        let body = Problem::invalid("ttl_secs must be positive").body();
        assert_eq!(body["status"], 400);
        assert_eq!(body["type"], "urn:remit:problem:invalid-request");
        assert_eq!(body["detail"], "ttl_secs must be positive");
    }
}
