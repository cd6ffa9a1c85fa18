//! Kubernetes-shaped failures: every error the simulator returns is a `Status` object.

use serde_json::{json, Value};

/// A failed request, rendered as a `kind: Status` body with the HTTP code.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn named(
        code: u16,
        reason: &'static str,
        message: String,
        group: &str,
        plural: &str,
        name: &str,
    ) -> Self {
        ApiError::new(code, reason, message)
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let what = qualified(group, plural);
        Self::named(
            404,
            "NotFound",
            format!("{what} \"{name}\" not found"),
            group,
            plural,
            name,
        )
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let what = qualified(group, plural);
        Self::named(
            409,
            "AlreadyExists",
            format!("{what} \"{name}\" already exists"),
            group,
            plural,
            name,
        )
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let what = qualified(group, plural);
        let msg = format!("Operation cannot be fulfilled on {what} \"{name}\": {why}");
        Self::named(409, "Conflict", msg, group, plural, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn invalid(group: &str, plural: &str, name: &str, field: &str, message: &str) -> Self {
        let what = qualified(group, plural);
        ApiError::new(422, "Invalid", format!("{what} \"{name}\" is invalid: {field}: {message}")).with_details(
            json!({"name": name, "group": group, "kind": plural,
                   "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]}),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn unsupported_media(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    pub fn method_not_allowed(method: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {method}"),
        )
    }

    /// A synthetic server-side failure (fault injection).
    pub fn injected(code: u16, retry_after: u64) -> Self {
        let (reason, message) = match code {
            429 => ("TooManyRequests", "too many requests (injected fault)"),
            503 => ("ServiceUnavailable", "service unavailable (injected fault)"),
            409 => ("Conflict", "conflict (injected fault)"),
            410 => ("Expired", "too old resource version (injected fault)"),
            _ => ("InternalError", "internal error (injected fault)"),
        };
        let mut err = ApiError::new(code, reason, message);
        if matches!(code, 429 | 503) {
            err.retry_after = Some(retry_after);
            err.details = Some(json!({"retryAfterSeconds": retry_after}));
        }
        err
    }

    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// `plural.group` as the real server names a resource in messages.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}
