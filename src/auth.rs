//! Secured mode: API keys for HTTP (and trusted backends), and signed tokens for sockets.
//!
//! A socket proves which client it is with an HS256 JSON Web Token signed with the server's
//! `--token-secret`: `sub` is the client id, `subscribe` and `publish` list the queues it may
//! use (`"*"` for all), `exp` is when it stops being valid (seconds since the epoch). The token
//! is checked here without any HTTP or socket.io type, so both transports share one rule.
//! Only `HS256` is accepted: a token that names another algorithm (`none` included) is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Code, Error};
use crate::names::{ClientId, QueueName};

type HmacSha256 = Hmac<Sha256>;

/// What a token lets a client do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The client id the token proves.
    pub sub: ClientId,
    /// Queues it may subscribe to (and so read and ack); `"*"` for all.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Queues it may publish to; `"*"` for all.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

fn allows(list: &[String], queue: &QueueName) -> bool {
    list.iter().any(|q| q == "*" || q == queue.as_str())
}

impl Claims {
    /// Whether the token lets its client subscribe to `queue`.
    pub fn may_subscribe(&self, queue: &QueueName) -> bool {
        allows(&self.subscribe, queue)
    }

    /// Whether the token lets its client publish to `queue`.
    pub fn may_publish(&self, queue: &QueueName) -> bool {
        allows(&self.publish, queue)
    }
}

/// A refused credential: 401 over HTTP, `connect_error` for a socket.
pub fn unauthorized(message: impl Into<String>) -> Error {
    Error::new(Code::Unauthorized, message)
}

/// An action the credential does not allow: 403 over HTTP.
pub fn forbidden(message: impl Into<String>) -> Error {
    Error::new(Code::Forbidden, message)
}

/// Signs and checks tokens with the server's secret.
#[derive(Clone)]
pub struct Tokens {
    secret: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

impl Tokens {
    /// A signer for `secret` (at least 16 bytes, refused otherwise at start-up).
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < 16 {
            return Err("--token-secret must be at least 16 characters".into());
        }
        Ok(Self {
            secret: secret.as_bytes().to_vec(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// A signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let signing_input = format!("{}.{}", base64_json(&header), base64_json(claims));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of `token` if its signature is ours, it is HS256, and it has not expired
    /// at `now_secs`.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<Claims, Error> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unauthorized(
                "the token is not a JWT (three dot-separated parts)",
            ));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| unauthorized("the token is not valid base64url"))
        };
        let header: Header = serde_json::from_slice(&decode(header)?)
            .map_err(|_| unauthorized("the token's header is not valid JSON"))?;
        if header.alg != "HS256" {
            return Err(unauthorized(format!(
                "tokens must be signed with HS256, not {:?}",
                header.alg
            )));
        }
        let mut mac = self.mac();
        mac.update(format!("{}.{}", token_part(token, 0), token_part(token, 1)).as_bytes());
        mac.verify_slice(&decode(signature)?)
            .map_err(|_| unauthorized("the token's signature is not valid"))?;
        let claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|e| unauthorized(format!("the token's claims are not valid: {e}")))?;
        if claims.exp <= now_secs {
            return Err(unauthorized("the token has expired"));
        }
        Ok(claims)
    }
}

/// The `index`th dot-separated part of a token.
fn token_part(token: &str, index: usize) -> &str {
    token.split('.').nth(index).unwrap_or_default()
}

/// base64url (no padding) of the JSON of `value`: one part of a token.
fn base64_json<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// The API keys that unlock HTTP writes and admin routes.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    /// Keys from flags and files; empty keys are ignored.
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        Self(
            keys.into_iter()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect(),
        )
    }

    /// Whether any key is configured (secured HTTP).
    pub fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `presented` is one of the keys (compared in constant time).
    pub fn accepts(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0
            .iter()
            .any(|key| key.as_bytes().ct_eq(presented.as_bytes()).into())
    }
}

/// What secured mode checks; both parts may be off (open mode).
#[derive(Clone, Default)]
pub struct Security {
    pub api_keys: ApiKeys,
    pub tokens: Option<Tokens>,
    /// With API keys: let queue stats and metrics be read without one.
    pub public_stats: bool,
}

/// Never prints a key or the secret.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("api_keys", &self.api_keys.0.len())
            .field("tokens", &self.tokens.is_some())
            .field("public_stats", &self.public_stats)
            .finish()
    }
}

impl Security {
    /// Whether anything is checked at all.
    pub fn secured(&self) -> bool {
        self.api_keys.enabled() || self.tokens.is_some()
    }

    /// Secured mode is all or nothing: a token secret without an API key would leave every
    /// HTTP route open, token minting included, so anyone could mint a token for any client
    /// and read, ack or drop its inbox. Such a setup is refused at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens.is_some() && !self.api_keys.enabled() {
            return Err(
                "--token-secret needs an API key too (--api-key, --api-key-file or \
                 QUEUEHUB_API_KEY): without one every HTTP route would be open, token minting \
                 included, and anyone could mint a token for any client and read, ack or \
                 delete its inbox"
                    .into(),
            );
        }
        Ok(())
    }

    /// One line for the start-up log: which mode is in force and what it asks for.
    pub fn describe(&self) -> String {
        let stats = if self.public_stats {
            "queue stats and metrics are public"
        } else {
            "queue stats and metrics need the key too"
        };
        match (self.api_keys.enabled(), self.tokens.is_some()) {
            (false, _) => "open mode: no authentication; anyone who can reach queuehub can \
                 publish, read, ack and delete messages (see docs/SECURITY.md for --api-key \
                 and --token-secret)"
                .into(),
            (true, false) => format!(
                "secured mode: HTTP routes need 'Authorization: Bearer <api key>' ({stats}); \
                 sockets need the API key (auth: {{apiKey}} or ?apiKey=)"
            ),
            (true, true) => format!(
                "secured mode: HTTP routes need 'Authorization: Bearer <api key>' ({stats}); \
                 sockets need a client token (auth: {{token}} or ?token=) or the API key"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: ClientId::parse("acme").unwrap(),
            subscribe: vec!["orders".into()],
            publish: vec!["*".into()],
            exp,
        }
    }

    fn tokens() -> Tokens {
        Tokens::new("a secret of sixteen+ bytes").unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims() {
        let token = tokens().sign(&claims(2000));
        assert_eq!(tokens().verify(&token, 1000).unwrap(), claims(2000));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let good = tokens().sign(&claims(2000));
        assert!(tokens().verify(&good, 2000).is_err(), "expired");
        let other = Tokens::new("another secret, also long").unwrap();
        assert!(
            other.verify(&good, 1000).is_err(),
            "signed with another secret"
        );
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: ClientId::parse("someone-else").unwrap(),
                ..claims(2000)
            })
            .unwrap(),
        );
        parts[1] = &forged_claims;
        assert!(
            tokens().verify(&parts.join("."), 1000).is_err(),
            "claims changed"
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(tokens().verify(junk, 1000).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn the_none_algorithm_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(2000)).unwrap());
        let err = tokens()
            .verify(&format!("{header}.{body}."), 1000)
            .unwrap_err();
        assert!(err.message().contains("HS256"), "{err}");
    }

    #[test]
    fn claims_allow_listed_queues_or_everything() {
        let c = claims(1);
        assert!(c.may_subscribe(&QueueName::parse("orders").unwrap()));
        assert!(!c.may_subscribe(&QueueName::parse("other").unwrap()));
        assert!(c.may_publish(&QueueName::parse("anything").unwrap()));
    }

    #[test]
    fn a_token_secret_without_an_api_key_is_not_a_valid_setup() {
        let tokens_only = Security {
            tokens: Some(tokens()),
            ..Security::default()
        };
        let err = tokens_only.validate().unwrap_err();
        assert!(err.contains("--api-key"), "{err}");
        let both = Security {
            api_keys: ApiKeys::new(["k".to_owned()]),
            ..tokens_only
        };
        assert!(both.validate().is_ok());
        assert!(Security::default().validate().is_ok(), "open mode");
    }

    #[test]
    fn api_keys_match_exactly() {
        let keys = ApiKeys::new(["k1".to_owned(), " ".to_owned()]);
        assert!(keys.enabled());
        assert!(keys.accepts("k1"));
        assert!(!keys.accepts("k2") && !keys.accepts(""));
    }
}
