//! Secured mode: API keys for HTTP (and trusted backends), and signed tokens for sockets.
//!
//! A socket proves which client it is with an HS256 JSON Web Token signed with the server's
//! `--token-secret`: `sub` is the client id, `subscribe` and `publish` list the queues it may
//! use (`"*"` for all), `exp` is when it stops being valid (seconds since the epoch). The token
//! is checked here without any HTTP or socket.io type, so both transports share one rule.
//!
//! Signing and checking are `jsonwebtoken`'s; this module only says what is accepted:
//! - the algorithm is pinned to `HS256`: a token that names another one (`HS512`, `RS256`,
//!   `none`, ...) is refused before its signature is looked at;
//! - `exp` is required; `nbf` is honoured when present; both with [`LEEWAY_SECS`] of leeway
//!   for clocks that disagree a little;
//! - `aud` is optional, but when present it must name [`AUDIENCE`], so a token minted with
//!   the same secret for another service is refused. Tokens minted here carry it.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Code, Error};
use crate::names::{ClientId, QueueName};

/// The audience a token may name (`aud`): this server. Tokens without `aud` are accepted too.
pub const AUDIENCE: &str = "queuehub";

/// Seconds a token is still accepted after its `exp`, and before its `nbf`: clock skew
/// between whoever minted it and this server.
pub const LEEWAY_SECS: u64 = 30;

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
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// The claims as signed: queuehub's own and the audience.
#[derive(Serialize)]
struct Signed<'a> {
    #[serde(flatten)]
    claims: &'a Claims,
    aud: &'static str,
}

impl Tokens {
    /// A signer for `secret` (at least 16 bytes, refused otherwise at start-up).
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < 16 {
            return Err("--token-secret must be at least 16 characters".into());
        }
        let key_error = |e: jsonwebtoken::errors::Error| format!("--token-secret: {e}");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[AUDIENCE]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()).map_err(key_error)?,
            decoding: DecodingKey::from_secret(secret.as_bytes()).map_err(key_error)?,
            validation,
        })
    }

    /// A signed token for `claims`, for the audience [`AUDIENCE`].
    pub fn sign(&self, claims: &Claims) -> String {
        let signed = Signed {
            claims,
            aud: AUDIENCE,
        };
        // An HMAC key (checked non-empty in `new`) signs any serializable claims: this
        // cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &signed, &self.encoding)
            .unwrap_or_else(|e| unreachable!("signing HS256 claims failed: {e}"))
    }

    /// The claims of `token` if it is an HS256 JWT with our signature, within its `exp` and
    /// `nbf` (give or take [`LEEWAY_SECS`]), and for no audience or for [`AUDIENCE`].
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| unauthorized(refusal(token, &e)))
    }
}

/// Why `token` was refused, in words.
fn refusal(token: &str, error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as Jwt;
    // The header again, only to name what was wrong with it.
    let header = jsonwebtoken::decode_header(token);
    match (error.kind(), header) {
        (Jwt::InvalidToken, _) => "the token is not a JWT (three dot-separated parts)".into(),
        (Jwt::Base64(_) | Jwt::Utf8(_), _) => "the token is not valid base64url".into(),
        (Jwt::InvalidAlgorithm, Ok(header)) => {
            format!("tokens must be signed with HS256, not {:?}", header.alg)
        }
        // `alg: none` (or any name the library does not know) is not even a valid header.
        (Jwt::Json(_), Err(_)) => {
            "the token's header is not valid: tokens must be signed with HS256".into()
        }
        (Jwt::InvalidSignature, _) => "the token's signature is not valid".into(),
        (Jwt::ExpiredSignature, _) => "the token has expired".into(),
        (Jwt::ImmatureSignature, _) => "the token is not valid yet (nbf)".into(),
        (Jwt::InvalidAudience, _) => {
            format!("the token is for another audience, not {AUDIENCE:?}")
        }
        (Jwt::MissingRequiredClaim(claim), _) => format!("the token has no {claim:?} claim"),
        _ => format!("the token's claims are not valid: {error}"),
    }
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
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "a secret of sixteen+ bytes";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: ClientId::parse("acme").unwrap(),
            subscribe: vec!["orders".into()],
            publish: vec!["*".into()],
            exp,
        }
    }

    fn tokens() -> Tokens {
        Tokens::new(SECRET).unwrap()
    }

    /// A token with any header algorithm and claims, signed with `secret`.
    fn signed(alg: Algorithm, secret: &str, claims: &Value) -> String {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    /// Valid claims (as JSON) for an hour, with `extra` fields set or replaced.
    fn claims_json(extra: Value) -> Value {
        let mut value = serde_json::to_value(claims(now() + 3600)).unwrap();
        for (key, field) in extra.as_object().unwrap() {
            value[key] = field.clone();
        }
        value
    }

    fn refusal(token: &str) -> String {
        tokens().verify(token).unwrap_err().message().to_owned()
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims_and_names_its_audience() {
        let token = tokens().sign(&claims(now() + 60));
        assert_eq!(tokens().verify(&token).unwrap(), claims(now() + 60));
        let payload: Value = jsonwebtoken::dangerous::insecure_decode(&token)
            .unwrap()
            .claims;
        assert_eq!(payload["aud"], AUDIENCE);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.typ.as_deref()),
            (Algorithm::HS256, Some("JWT"))
        );
    }

    #[test]
    fn a_token_without_an_audience_is_accepted() {
        let token = signed(Algorithm::HS256, SECRET, &claims_json(json!({})));
        assert_eq!(tokens().verify(&token).unwrap().sub.as_str(), "acme");
    }

    #[test]
    fn other_algorithms_are_refused_hs512_and_none_included() {
        // Signed with the right secret, but not with HS256.
        let hs512 = signed(Algorithm::HS512, SECRET, &claims_json(json!({})));
        assert!(refusal(&hs512).contains("HS256"), "{}", refusal(&hs512));
        // `alg: none` with an empty signature: the classic forgery. The header is
        // base64url of `{"alg":"none","typ":"JWT"}`; the claims are a real token's.
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let good = tokens().sign(&claims(now() + 3600));
        let body = good.split('.').nth(1).unwrap();
        let none = format!("{header}.{body}.");
        assert!(refusal(&none).contains("HS256"), "{}", refusal(&none));
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway() {
        let expired = tokens().sign(&claims(now() - LEEWAY_SECS - 60));
        assert!(
            refusal(&expired).contains("expired"),
            "{}",
            refusal(&expired)
        );
        let just_expired = tokens().sign(&claims(now() - LEEWAY_SECS / 2));
        assert!(tokens().verify(&just_expired).is_ok(), "within the leeway");
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let mut body = claims_json(json!({}));
        body.as_object_mut().unwrap().remove("exp");
        let token = signed(Algorithm::HS256, SECRET, &body);
        assert!(refusal(&token).contains("exp"), "{}", refusal(&token));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_until_its_nbf() {
        let later = claims_json(json!({ "nbf": now() + LEEWAY_SECS + 600 }));
        let token = signed(Algorithm::HS256, SECRET, &later);
        assert!(
            refusal(&token).contains("not valid yet"),
            "{}",
            refusal(&token)
        );
        let now_valid = claims_json(json!({ "nbf": now() - 1 }));
        assert!(
            tokens()
                .verify(&signed(Algorithm::HS256, SECRET, &now_valid))
                .is_ok()
        );
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        for aud in [json!("billing"), json!(["billing", "reports"])] {
            let token = signed(
                Algorithm::HS256,
                SECRET,
                &claims_json(json!({ "aud": aud })),
            );
            assert!(refusal(&token).contains("audience"), "{}", refusal(&token));
        }
        let ours = claims_json(json!({ "aud": [AUDIENCE] }));
        assert!(
            tokens()
                .verify(&signed(Algorithm::HS256, SECRET, &ours))
                .is_ok()
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let foreign = Tokens::new("another secret, also long").unwrap();
        let token = foreign.sign(&claims(now() + 60));
        assert!(refusal(&token).contains("signature"), "{}", refusal(&token));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let good = tokens().sign(&claims(now() + 60));
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = signed(
            Algorithm::HS256,
            "the attacker's own secret",
            &claims_json(json!({ "sub": "someone-else" })),
        );
        // The other client's claims with our header and our signature.
        parts[1] = forged.split('.').nth(1).unwrap();
        let tampered = parts.join(".");
        assert!(
            refusal(&tampered).contains("signature"),
            "{}",
            refusal(&tampered)
        );
    }

    #[test]
    fn junk_is_refused() {
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(tokens().verify(junk).is_err(), "{junk:?}");
        }
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
