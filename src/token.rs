//! The cloudflared tunnel token, kept behind a redacting newtype.
//!
//! A token is base64 of a JSON object `{"a": account tag, "s": tunnel secret,
//! "t": tunnel ID, "e": endpoint (optional)}`. A credentials file, as written by
//! `cloudflared tunnel create` (`{"AccountTag", "TunnelSecret", "TunnelID", "Endpoint"}`),
//! carries the same facts and is accepted too: it is converted to the token it stands for,
//! so that the pods always read a token file. The operator needs only the tunnel ID (for
//! the status) and a hash (to roll pods on rotation); the value itself goes nowhere but
//! the child Secret.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a Secret's value is not a usable token. Messages never contain the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty")]
    Empty,
    #[error("the token is not valid UTF-8 text")]
    NotUtf8,
    #[error("the token is not base64; use the output of `cloudflared tunnel token NAME`")]
    NotBase64,
    #[error("the token does not decode to a JSON object with the fields a, t and s; use the output of `cloudflared tunnel token NAME`")]
    NotJson,
    #[error("the token's field {0:?} is missing or empty")]
    MissingField(&'static str),
    #[error("the token's tunnel ID is not a UUID")]
    BadTunnelId,
    #[error("the value is JSON but not a credentials file: use the object `cloudflared tunnel create` writes (AccountTag, TunnelSecret, TunnelID), or a token")]
    CredentialsNotJson,
    #[error("the credentials file's field {0:?} is missing or empty")]
    MissingCredentialsField(&'static str),
    #[error("the credentials file's TunnelSecret is not base64")]
    CredentialsSecretNotBase64,
}

#[derive(Deserialize, Serialize)]
struct TokenFields {
    #[serde(default)]
    a: String,
    #[serde(default)]
    s: String,
    #[serde(default)]
    t: String,
    /// The endpoint (`fed` for FedRAMP), when not the default one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    e: String,
}

/// `cloudflared tunnel create`'s credentials file (cloudflared's `connection.Credentials`).
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(default, rename = "AccountTag")]
    account_tag: String,
    #[serde(default, rename = "TunnelSecret")]
    tunnel_secret: String,
    #[serde(default, rename = "TunnelID")]
    tunnel_id: String,
    #[serde(default, rename = "Endpoint")]
    endpoint: String,
}

impl CredentialsFile {
    /// The token that carries the same facts.
    fn to_token(&self) -> Result<String, TokenError> {
        for (name, value) in [
            ("AccountTag", &self.account_tag),
            ("TunnelSecret", &self.tunnel_secret),
            ("TunnelID", &self.tunnel_id),
        ] {
            if value.is_empty() {
                return Err(TokenError::MissingCredentialsField(name));
            }
        }
        // Go writes the secret ([]byte) as standard base64, as the token's "s".
        base64::engine::general_purpose::STANDARD
            .decode(&self.tunnel_secret)
            .map_err(|_| TokenError::CredentialsSecretNotBase64)?;
        if !is_uuid(&self.tunnel_id) {
            return Err(TokenError::BadTunnelId);
        }
        let fields = TokenFields {
            a: self.account_tag.clone(),
            s: self.tunnel_secret.clone(),
            t: self.tunnel_id.clone(),
            e: self.endpoint.clone(),
        };
        let json = serde_json::to_vec(&fields).map_err(|_| TokenError::CredentialsNotJson)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(json))
    }
}

/// A parsed tunnel token. `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct TunnelToken {
    value: String,
    tunnel_id: String,
    /// `e`: the endpoint, when not the default one (`fed`).
    endpoint: Option<String>,
    hash: String,
}

impl TunnelToken {
    /// Parses a token, or a credentials file, as stored in a Secret (surrounding
    /// whitespace, as left by `echo` or an editor, is ignored).
    pub fn parse(raw: &[u8]) -> Result<Self, TokenError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| TokenError::NotUtf8)?
            .trim();
        if text.is_empty() {
            return Err(TokenError::Empty);
        }
        if text.starts_with('{') {
            let credentials: CredentialsFile =
                serde_json::from_str(text).map_err(|_| TokenError::CredentialsNotJson)?;
            return TunnelToken::parse(credentials.to_token()?.as_bytes());
        }
        let json = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| TokenError::NotBase64)?;
        let fields: TokenFields = serde_json::from_slice(&json).map_err(|_| TokenError::NotJson)?;
        for (name, value) in [("a", &fields.a), ("t", &fields.t), ("s", &fields.s)] {
            if value.is_empty() {
                return Err(TokenError::MissingField(name));
            }
        }
        if !is_uuid(&fields.t) {
            return Err(TokenError::BadTunnelId);
        }
        Ok(TunnelToken {
            hash: sha256_hex(text.as_bytes()),
            tunnel_id: fields.t.to_ascii_lowercase(),
            endpoint: (!fields.e.is_empty()).then_some(fields.e),
            value: text.to_string(),
        })
    }

    /// The endpoint the token names (`fed`), if not the default one.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The tunnel's UUID (public: it appears in the tunnel's DNS records).
    pub fn tunnel_id(&self) -> &str {
        &self.tunnel_id
    }

    /// `sha256:<hex>` of the value, for the pod annotation that rolls pods on rotation.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The value, for the child Secret only.
    pub fn expose_secret(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for TunnelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelToken")
            .field("tunnel_id", &self.tunnel_id)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// `sha256:<64 hex digits>`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_digest(&Sha256::digest(bytes))
}

/// A SHA-256 digest as `sha256:<64 hex digits>`.
pub fn hex_digest(digest: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::TUNNEL_ID;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    fn good() -> String {
        encode(&format!(
            r#"{{"a":"0123456789abcdef","t":"{TUNNEL_ID}","s":"c2VjcmV0LXNlY3JldA=="}}"#
        ))
    }

    #[test]
    fn parses_tunnel_id_and_ignores_trailing_newline() {
        let token = TunnelToken::parse(format!("{}\n", good()).as_bytes()).expect("valid token");
        assert_eq!(token.tunnel_id(), TUNNEL_ID);
        assert_eq!(token.expose_secret(), good());
        assert_eq!(token.hash(), sha256_hex(good().as_bytes()));
        assert!(token.hash().starts_with("sha256:") && token.hash().len() == 71);
    }

    #[test]
    fn debug_output_does_not_contain_the_value() {
        let token = TunnelToken::parse(good().as_bytes()).expect("valid token");
        let debug = format!("{token:?}");
        assert!(!debug.contains(&good()), "{debug}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    fn credentials(secret: &str, id: &str, endpoint: &str) -> String {
        format!(
            r#"{{"AccountTag":"0123456789abcdef","TunnelSecret":"{secret}","TunnelID":"{id}","Endpoint":"{endpoint}"}}"#
        )
    }

    #[test]
    fn a_credentials_file_becomes_the_token_it_stands_for() {
        let from_file =
            TunnelToken::parse(credentials("c2VjcmV0LXNlY3JldA==", TUNNEL_ID, "").as_bytes())
                .expect("valid credentials");
        assert_eq!(from_file.tunnel_id(), TUNNEL_ID);
        assert_eq!(from_file.endpoint(), None);
        // The same facts as the token: a, s, t (no e for the default endpoint).
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(from_file.expose_secret())
            .expect("base64");
        let fields: serde_json::Value = serde_json::from_slice(&decoded).expect("json");
        assert_eq!(
            fields,
            serde_json::json!({ "a": "0123456789abcdef", "s": "c2VjcmV0LXNlY3JldA==", "t": TUNNEL_ID })
        );
        assert_eq!(
            from_file,
            TunnelToken::parse(from_file.expose_secret().as_bytes()).expect("token")
        );

        let fed = TunnelToken::parse(
            format!("  {}\n", credentials("c2VjcmV0", TUNNEL_ID, "fed")).as_bytes(),
        )
        .expect("fed credentials");
        assert_eq!(fed.endpoint(), Some("fed"));
        let token_fed = TunnelToken::parse(
            encode(&format!(
                r#"{{"a":"x","s":"eQ==","t":"{TUNNEL_ID}","e":"fed"}}"#
            ))
            .as_bytes(),
        )
        .expect("fed token");
        assert_eq!(token_fed.endpoint(), Some("fed"));
    }

    #[test]
    fn rejects_each_malformed_credentials_file_with_its_reason() {
        let cases = [
            ("{ not json".to_string(), TokenError::CredentialsNotJson),
            (
                r#"{"TunnelSecret":"eQ==","TunnelID":"x"}"#.to_string(),
                TokenError::MissingCredentialsField("AccountTag"),
            ),
            (
                r#"{"AccountTag":"a","TunnelID":"x"}"#.to_string(),
                TokenError::MissingCredentialsField("TunnelSecret"),
            ),
            (
                r#"{"AccountTag":"a","TunnelSecret":"eQ=="}"#.to_string(),
                TokenError::MissingCredentialsField("TunnelID"),
            ),
            (
                credentials("not base64!", TUNNEL_ID, ""),
                TokenError::CredentialsSecretNotBase64,
            ),
            (
                credentials("eQ==", "not-a-uuid", ""),
                TokenError::BadTunnelId,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                TunnelToken::parse(raw.as_bytes()),
                Err(want.clone()),
                "input {raw}"
            );
        }
    }

    #[test]
    fn rejects_each_malformed_shape_with_its_reason() {
        let cases: Vec<(Vec<u8>, TokenError)> = vec![
            (b"".to_vec(), TokenError::Empty),
            (b"  \n".to_vec(), TokenError::Empty),
            (vec![0xff, 0xfe], TokenError::NotUtf8),
            (b"not base64 !!".to_vec(), TokenError::NotBase64),
            (encode("plain text").into_bytes(), TokenError::NotJson),
            (
                encode(r#"{"t":"x","s":"y"}"#).into_bytes(),
                TokenError::MissingField("a"),
            ),
            (
                encode(r#"{"a":"x","s":"y"}"#).into_bytes(),
                TokenError::MissingField("t"),
            ),
            (
                encode(r#"{"a":"x","t":"y"}"#).into_bytes(),
                TokenError::MissingField("s"),
            ),
            (
                encode(r#"{"a":"x","t":"not-a-uuid","s":"y"}"#).into_bytes(),
                TokenError::BadTunnelId,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(TunnelToken::parse(&raw), Err(want.clone()), "input {raw:?}");
            assert!(!want.to_string().is_empty());
        }
    }
}
