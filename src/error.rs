//! The one error type that crosses layers: [`Error`], with a stable `code` and a human message.
//!
//! The broker and the validation code return it; `api/` turns it into an HTTP status and the
//! JSON body `{"error": {"code", "message"}}`, `socket/` into an ack `{ok: false, error}` or an
//! `mq:error` event. The codes ([`Code`], one enum) are part of the public contract: never
//! rename one.

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

/// Declares [`Code`] from one table: each code's variant, the kind of failure it is, and what
/// it means. Serialized in snake_case (`InvalidName` is `"invalid_name"`); [`Code::as_str`]
/// gives the same text, and a test holds the two, and docs/API.md, together.
macro_rules! codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $text:literal, $kind:ident; )+) => {
        /// The stable machine-readable code of an [`Error`]: part of the public contract
        /// (docs/API.md lists every one); never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &[Code] = &[$(Code::$variant),+];

            /// The code as it is serialized, e.g. `invalid_name`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Code::$variant => $text, )+
                }
            }

            /// What kind of failure this code is.
            pub fn kind(self) -> ErrorKind {
                match self {
                    $( Code::$variant => ErrorKind::$kind, )+
                }
            }
        }
    };
}

codes! {
    /// The body is not JSON.
    MalformedJson = "malformed_json", Malformed;
    /// The body is JSON in which an object names a key twice.
    InvalidJson = "invalid_json", Malformed;
    /// A field is missing or has the wrong type or value.
    InvalidField = "invalid_field", Invalid;
    /// A name breaks the naming rules.
    InvalidName = "invalid_name", Invalid;
    /// The body is not sent as `application/json`.
    UnsupportedMediaType = "unsupported_media_type", UnsupportedMediaType;
    /// A payload is over the configured maximum.
    PayloadTooLarge = "payload_too_large", TooLarge;
    /// A request body is over the configured maximum.
    BodyTooLarge = "body_too_large", TooLarge;
    /// No such route.
    NotFound = "not_found", NotFound;
    /// The queue has never been published or subscribed to.
    UnknownQueue = "unknown_queue", NotFound;
    /// The client has no subscription (to that queue).
    NotSubscribed = "not_subscribed", NotFound;
    /// A socket event queuehub does not handle.
    UnknownEvent = "unknown_event", Invalid;
    /// `getAll` for a work-mode subscription.
    WorkMode = "work_mode", Invalid;
    /// Minting a token on a server without a token secret.
    TokensDisabled = "tokens_disabled", NotFound;
    /// Too many messages in one batch or ids in one ack.
    BatchTooLarge = "batch_too_large", Limit;
    /// Too many events (socket) or requests (HTTP) per second.
    RateLimited = "rate_limited", Limit;
    /// The address holds the most connections it may.
    TooManyConnections = "too_many_connections", Limit;
    /// A socket that does not read its answers loses them; only ever logged, never sent.
    ReplyDropped = "reply_dropped", Limit;
    /// A subscriber's inbox is at its limit.
    InboxFull = "inbox_full", Full;
    /// The disk (or a quota or file-size limit) is full.
    StorageFull = "storage_full", Full;
    /// The store could not commit.
    StoreUnavailable = "store_unavailable", Unavailable;
    /// The server is stopping.
    ShuttingDown = "shutting_down", ShuttingDown;
    /// No valid credential was presented.
    Unauthorized = "unauthorized", Unauthorized;
    /// The credential does not allow this.
    Forbidden = "forbidden", Forbidden;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An error with a stable machine-readable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Error {
    code: Code,
    /// For people; it may change between versions.
    message: String,
}

impl Error {
    /// An error with the stable `code` (which decides its kind).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A name (queue, clientId, event, id) breaks the naming rules.
    pub fn invalid_name(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidName, message)
    }

    /// A field is missing or has the wrong type or value.
    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidField, message)
    }

    /// The body is not valid JSON.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(Code::MalformedJson, message)
    }

    /// The body is JSON that queuehub refuses to read: an object names a key twice.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidJson, message)
    }

    /// The client asked for something of a subscription it does not have.
    pub fn not_subscribed(client: &impl fmt::Display, queue: Option<&dyn fmt::Display>) -> Self {
        let message = match queue {
            Some(queue) => format!("client '{client}' is not subscribed to queue '{queue}'"),
            None => format!("client '{client}' has no subscription; send subscribe first"),
        };
        Self::new(Code::NotSubscribed, message)
    }

    /// No queue of that name has ever been published to or subscribed to.
    pub fn unknown_queue(queue: &impl fmt::Display) -> Self {
        Self::new(
            Code::UnknownQueue,
            format!("queue '{queue}' does not exist"),
        )
    }

    /// A payload is larger than the configured maximum.
    pub fn payload_too_large(size: usize, max: usize) -> Self {
        Self::new(
            Code::PayloadTooLarge,
            format!("payload is {size} bytes; the limit is {max} bytes"),
        )
    }

    /// The store failed; nothing was changed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::StoreUnavailable, message)
    }

    /// The store cannot commit because the disk (or a quota or file-size limit) is full;
    /// nothing was changed.
    pub fn storage_full(message: impl Into<String>) -> Self {
        Self::new(Code::StorageFull, message)
    }

    /// The server is shutting down.
    pub fn shutting_down() -> Self {
        Self::new(
            Code::ShuttingDown,
            "queuehub is shutting down and accepts no new work",
        )
    }

    /// The same message under another stable code.
    pub fn with_code(mut self, code: Code) -> Self {
        self.code = code;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }

    /// The stable machine-readable code, e.g. [`Code::InvalidName`].
    pub fn code(&self) -> Code {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_in_snake_case_as_its_text() {
        for code in Code::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
            let snake: String = format!("{code:?}")
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let sep = (i > 0 && c.is_uppercase()).then_some('_');
                    sep.into_iter().chain(c.to_lowercase())
                })
                .collect();
            assert_eq!(code.as_str(), snake);
        }
    }

    #[test]
    fn an_error_serializes_as_code_and_message() {
        let err = Error::unknown_queue(&"orders");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"code":"unknown_queue","message":"queue 'orders' does not exist"}"#
        );
    }

    /// The codes of the error table in docs/API.md (`| \`code\` | status | when |`), read
    /// from its `## Errors` section only (other tables list metrics and settings).
    fn documented_codes() -> Vec<String> {
        let api = include_str!("../docs/API.md");
        let section = api.split("\n## Errors").nth(1).expect("an Errors section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(code, _)| code.to_owned())
            .collect()
    }

    #[test]
    fn every_code_is_in_the_error_table_of_the_api_reference_and_no_other() {
        let documented = documented_codes();
        for code in Code::ALL {
            assert!(
                documented.iter().any(|d| d == code.as_str()),
                "docs/API.md's error table does not list `{code}`"
            );
        }
        for code in &documented {
            assert!(
                Code::ALL.iter().any(|c| *c == code.as_str()),
                "docs/API.md lists `{code}`, which is no Code"
            );
        }
    }
}
