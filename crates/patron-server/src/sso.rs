//! OpenID Connect login (issue 21 §4): the authorization code flow with PKCE (S256) against the
//! provider in the settings (`patron_store::access::sso`). Discovery, the token exchange with
//! the client secret (HTTP Basic), the ID token's RS256 signature checked against the provider's
//! JWKS (ring, already in the tree through rustls), then issuer, audience, expiry and nonce; the
//! e-mail from the ID token or, when the provider keeps it for userinfo, from there.
//!
//! Nothing here logs a token, a code or the client secret.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use patron_store::access::sso::SsoSettings;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a single sign-on failed (shown to the user in words, logged without secrets).
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The provider could not be reached or answered something unusable.
    #[error("the identity provider: {0}")]
    Provider(String),
    /// The ID token did not pass a check.
    #[error("the identity provider's answer did not verify: {0}")]
    Token(String),
}

type SsoResult<T> = std::result::Result<T, SsoError>;

/// What the provider's discovery document says (the parts used).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The issuer (must equal the configured one).
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The signing keys.
    pub jwks_uri: String,
    /// Claims of the user, with the access token.
    pub userinfo_endpoint: Option<String>,
}

/// Who the provider says logged in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `iss` of the ID token.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The e-mail (verified when the provider says so).
    pub email: String,
    /// The display name, if given.
    pub name: Option<String>,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str, bearer: Option<&str>) -> SsoResult<T> {
    let mut req = client().get(url).header("accept", "application/json");
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.map_err(|e| SsoError::Provider(format!("{url} did not answer ({})", e.without_url())))?;
    if !res.status().is_success() {
        return Err(SsoError::Provider(format!("{url} answered {}", res.status())));
    }
    res.json().await.map_err(|e| SsoError::Provider(format!("{url} answered no usable JSON ({})", e.without_url())))
}

/// Reads the provider's discovery document and checks it names the configured issuer.
pub async fn discover(settings: &SsoSettings) -> SsoResult<Discovery> {
    let d: Discovery = get_json(&format!("{}/.well-known/openid-configuration", settings.issuer), None).await?;
    if d.issuer.trim_end_matches('/') != settings.issuer {
        return Err(SsoError::Provider(format!("the discovery document names the issuer {:?}, not {:?}", d.issuer, settings.issuer)));
    }
    Ok(d)
}

/// A random URL-safe string of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The PKCE challenge (S256) of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Where the browser goes to log in at the provider.
pub fn authorization_url(d: &Discovery, s: &SsoSettings, redirect_uri: &str, state: &str, nonce: &str, verifier: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", s.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", "openid email profile"),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", &pkce_challenge(verifier)),
        ("code_challenge_method", "S256"),
    ])
    .unwrap_or_default();
    let sep = if d.authorization_endpoint.contains('?') { '&' } else { '?' };
    format!("{}{sep}{query}", d.authorization_endpoint)
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
}

/// The provider's keys (RSA only are used).
#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    nonce: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
}

/// Seconds of clock difference with the provider tolerated on `exp`.
const LEEWAY: i64 = 120;

/// Exchanges the code (with the PKCE verifier) and checks the ID token: signature (RS256 with a
/// key of the provider's JWKS), issuer, audience, expiry at `now`, nonce.
pub async fn finish(
    d: &Discovery,
    s: &SsoSettings,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    nonce: &str,
    now: DateTime<Utc>,
) -> SsoResult<Identity> {
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ])
    .map_err(|e| SsoError::Provider(e.to_string()))?;
    // RFC 6749 §2.3.1: client id and secret form-encoded, then HTTP Basic.
    let enc = |v: &str| serde_urlencoded::to_string([("", v)]).unwrap_or_default().trim_start_matches('=').to_owned();
    let res = client()
        .post(&d.token_endpoint)
        .basic_auth(enc(&s.client_id), Some(enc(&s.client_secret)))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| SsoError::Provider(format!("the token endpoint did not answer ({})", e.without_url())))?;
    if !res.status().is_success() {
        return Err(SsoError::Provider(format!("the token endpoint refused the code ({})", res.status())));
    }
    let tokens: TokenResponse =
        res.json().await.map_err(|e| SsoError::Provider(format!("the token endpoint answered no usable JSON ({})", e.without_url())))?;
    let id_token = tokens.id_token.ok_or_else(|| SsoError::Token("no ID token".into()))?;
    let jwks: Jwks = get_json(&d.jwks_uri, None).await?;
    let claims = verify(&id_token, &jwks, d, s, nonce, now)?;
    let (mut email, mut verified, mut name) = (claims.email, claims.email_verified, claims.name);
    if email.is_none() {
        // Providers that follow the core spec to the letter keep the profile for userinfo.
        if let (Some(url), Some(at)) = (&d.userinfo_endpoint, &tokens.access_token) {
            let info: UserInfo = get_json(url, Some(at)).await?;
            if info.sub != claims.sub {
                return Err(SsoError::Token("userinfo is about another subject".into()));
            }
            (email, verified, name) = (info.email, info.email_verified, info.name.or(name));
        }
    }
    let email = email.ok_or_else(|| SsoError::Token("the provider gave no e-mail (scope email)".into()))?;
    if verified == Some(false) {
        return Err(SsoError::Token("the provider says the e-mail is not verified".into()));
    }
    Ok(Identity { issuer: claims.iss, subject: claims.sub, email, name })
}

fn b64(part: &str) -> SsoResult<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| SsoError::Token("not base64url".into()))
}

fn verify(token: &str, jwks: &Jwks, d: &Discovery, s: &SsoSettings, nonce: &str, now: DateTime<Utc>) -> SsoResult<Claims> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SsoError::Token("not a signed JWT".into()));
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| SsoError::Token("unreadable header".into()))?;
    // Only RS256: "none" and HMAC with a public key as secret are the classic forgeries.
    if header.alg != "RS256" {
        return Err(SsoError::Token(format!("signature algorithm {} (RS256 expected)", header.alg)));
    }
    let rsa = jwks.keys.iter().filter(|k| k.kty == "RSA" && k.use_.as_deref().is_none_or(|u| u == "sig"));
    let candidates: Vec<&Jwk> = match &header.kid {
        Some(kid) => rsa.filter(|k| k.kid.as_deref() == Some(kid)).collect(),
        None => rsa.collect(),
    };
    let signed = format!("{h}.{p}");
    let signature = b64(sig)?;
    let ok = candidates.iter().any(|k| {
        let (Some(n), Some(e)) = (k.n.as_deref().and_then(|n| b64(n).ok()), k.e.as_deref().and_then(|e| b64(e).ok())) else {
            return false;
        };
        ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .is_ok()
    });
    if !ok {
        return Err(SsoError::Token("the signature does not verify with the provider's keys".into()));
    }
    let claims: Claims = serde_json::from_slice(&b64(p)?).map_err(|_| SsoError::Token("unreadable claims".into()))?;
    if claims.iss.trim_end_matches('/') != d.issuer.trim_end_matches('/') {
        return Err(SsoError::Token("issued by another issuer".into()));
    }
    let audiences = match &claims.aud {
        Audience::One(a) => vec![a.as_str()],
        Audience::Many(v) => v.iter().map(String::as_str).collect(),
    };
    if !audiences.contains(&s.client_id.as_str()) {
        return Err(SsoError::Token("issued for another client".into()));
    }
    if audiences.len() > 1 && claims.azp.as_deref() != Some(s.client_id.as_str()) {
        return Err(SsoError::Token("issued for another party (azp)".into()));
    }
    if claims.exp + LEEWAY < now.timestamp() {
        return Err(SsoError::Token("expired".into()));
    }
    if claims.nonce.as_deref() != Some(nonce) {
        return Err(SsoError::Token("the nonce does not match this login".into()));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_base64url_sha256_without_padding() {
        // Computed independently: base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=").
        assert_eq!(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUE-wFr3HJXpSoiYo7xZw"), "jYv7laP-5LgFlB9f3u6leAQlLeeaMz-hCsvTGgjOPmw");
    }

    #[test]
    fn forged_tokens_are_refused() {
        let d = Discovery {
            issuer: "https://id.example".into(),
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            userinfo_endpoint: None,
        };
        let s = SsoSettings { client_id: "c".into(), ..Default::default() };
        let jwks = Jwks { keys: vec![] };
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let body = enc(serde_json::json!({"iss": "https://id.example", "sub": "1", "aud": "c", "exp": 4_000_000_000i64, "nonce": "n"}));
        for alg in ["none", "HS256"] {
            let t = format!("{}.{body}.", enc(serde_json::json!({"alg": alg})));
            assert!(verify(&t, &jwks, &d, &s, "n", Utc::now()).is_err(), "{alg}");
        }
        let t = format!("{}.{body}.AAAA", enc(serde_json::json!({"alg": "RS256"})));
        assert!(matches!(verify(&t, &jwks, &d, &s, "n", Utc::now()), Err(SsoError::Token(_))));
        assert!(verify("a.b", &jwks, &d, &s, "n", Utc::now()).is_err());
    }
}
