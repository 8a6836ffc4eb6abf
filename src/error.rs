//! The one error type that crosses layers: [`Error`], with a stable `code` and a human message.
//!
//! The broker and the validation code return it; `api/` turns it into an HTTP status and the
//! JSON body `{"error": {"code", "message"}}`, `socket/` into an ack `{ok: false, error}` or an
//! `mq:error` event. The `code` strings are part of the public contract: never rename one.

use std::fmt;

use serde::Serialize;

/// What kind of failure this is; each transport maps a kind to its own signal (HTTP status…).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed: bad JSON syntax.
    Malformed,
    /// A field is missing, has the wrong type or an invalid value.
    Invalid,
    /// The thing named does not exist (unknown queue, client not subscribed).
    NotFound,
    /// A payload or body is larger than allowed.
    TooLarge,
    /// The request body is not JSON.
    UnsupportedMediaType,
    /// A configured limit (batch size, rate) was hit.
    Limit,
    /// A capacity is used up: a configured one (inbox length) or the disk; nothing was
    /// changed.
    Full,
    /// The store could not commit; nothing was changed.
    Unavailable,
    /// The server is shutting down and takes no new work.
    ShuttingDown,
    /// No valid credential (API key or token) was presented.
    Unauthorized,
    /// The credential does not allow this.
    Forbidden,
}

/// An error with a stable machine-readable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Error {
    #[serde(skip)]
    kind: ErrorKind,
    code: &'static str,
    message: String,
}

impl Error {
    /// An error of `kind` with the stable `code`.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
        }
    }

    /// A name (queue, clientId, event, id) breaks the naming rules.
    pub fn invalid_name(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "invalid_name", message)
    }

    /// A field is missing or has the wrong type or value.
    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "invalid_field", message)
    }

    /// The body is not valid JSON.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, "malformed_json", message)
    }

    /// The body is JSON that queuehub refuses to read: an object names a key twice.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, "invalid_json", message)
    }

    /// The client asked for something of a subscription it does not have.
    pub fn not_subscribed(client: &impl fmt::Display, queue: Option<&dyn fmt::Display>) -> Self {
        let message = match queue {
            Some(queue) => format!("client '{client}' is not subscribed to queue '{queue}'"),
            None => format!("client '{client}' has no subscription; send subscribe first"),
        };
        Self::new(ErrorKind::NotFound, "not_subscribed", message)
    }

    /// No queue of that name has ever been published to or subscribed to.
    pub fn unknown_queue(queue: &impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "unknown_queue",
            format!("queue '{queue}' does not exist"),
        )
    }

    /// A payload is larger than the configured maximum.
    pub fn payload_too_large(size: usize, max: usize) -> Self {
        Self::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("payload is {size} bytes; the limit is {max} bytes"),
        )
    }

    /// A configured limit was hit.
    pub fn limit(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, code, message)
    }

    /// The store failed; nothing was changed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "store_unavailable", message)
    }

    /// The store cannot commit because the disk (or a quota or file-size limit) is full;
    /// nothing was changed.
    pub fn storage_full(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Full, "storage_full", message)
    }

    /// The server is shutting down.
    pub fn shutting_down() -> Self {
        Self::new(
            ErrorKind::ShuttingDown,
            "shutting_down",
            "queuehub is shutting down and accepts no new work",
        )
    }

    /// The same error under another stable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable machine-readable code, e.g. `invalid_name`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Turns a serde_json error into the right [`Error`]: syntax errors are `malformed_json`,
/// a repeated key ([`crate::json::StrictJson`]) is `invalid_json`, type and value errors
/// (including invalid names) are `invalid_field`.
pub fn from_json_error(err: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => Error::malformed_json(err.to_string()),
        Category::Data => {
            // A name that breaks the naming rules, or a repeated key, fails inside serde with
            // our own message; keep its stable code rather than the generic one.
            let text = err.to_string();
            if let Some((_, reason)) = text.split_once(crate::json::INVALID_JSON) {
                return Error::invalid_json(reason);
            }
            match text.split_once("invalid_name: ") {
                Some((_, reason)) => Error::invalid_name(reason),
                None => Error::invalid_field(text),
            }
        }
    }
}
