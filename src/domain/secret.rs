//! Secret key material: zeroizing containers with elided `Debug`, and the master key that
//! seals CA private keys at rest (AES-256-GCM from aws-lc-rs).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use zeroize::Zeroizing;

/// DER bytes of a private key. No `Clone`, zeroized on drop, `Debug` elided.
pub struct SecretDer(Zeroizing<Vec<u8>>);

impl SecretDer {
    /// Wraps DER bytes.
    pub fn new(der: Vec<u8>) -> Self {
        Self(Zeroizing::new(der))
    }

    /// Returns the secret DER bytes.
    pub fn secret_der(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret key elided]")
    }
}

/// The length of a master key, in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const SEALED_VERSION: u8 = 1;

/// Failures of sealing and opening.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The master key text is not base64 of 32 bytes.
    #[error("master key must be the base64 encoding of {MASTER_KEY_LEN} bytes")]
    InvalidMasterKey,
    /// The sealed value was not sealed under this key and context, or was altered.
    #[error("sealed value cannot be opened with this master key")]
    Open,
    /// The cipher refused the operation.
    #[error("sealing failed")]
    Seal,
}

/// The key-encryption key under which CA private keys are stored.
pub struct MasterKey {
    key: LessSafeKey,
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl MasterKey {
    /// Generates a random master key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).expect("the system RNG must be available");
        Self::from_bytes(bytes)
    }

    /// Parses the base64 text form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| SealError::InvalidMasterKey)?,
        );
        let bytes: [u8; MASTER_KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| SealError::InvalidMasterKey)?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }

    /// Returns the base64 text form, for writing a generated key to its file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes.as_ref()))
    }

    fn from_bytes(bytes: Zeroizing<[u8; MASTER_KEY_LEN]>) -> Self {
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes.as_ref()).expect("32 bytes is an AES-256 key");
        Self {
            key: LessSafeKey::new(unbound),
            bytes,
        }
    }

    /// Derives a 32-byte secret for another purpose (HMAC-SHA256 of the label under the key).
    pub fn derive_secret(&self, label: &str) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.bytes.as_ref());
        let tag = aws_lc_rs::hmac::sign(&key, label.as_bytes());
        tag.as_ref()
            .try_into()
            .expect("HMAC-SHA256 tags are 32 bytes")
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the owning project's id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Seal)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| SealError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        // The plaintext copy was encrypted in place; nothing secret is left in `in_out`.
        Ok(sealed)
    }

    /// Decrypts what [`MasterKey::seal`] produced under the same context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<SecretDer, SealError> {
        let [version, rest @ ..] = sealed else {
            return Err(SealError::Open);
        };
        if *version != SEALED_VERSION || rest.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Open)?;
        Ok(SecretDer::new(plaintext.to_vec()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { key: _, bytes: _ } = self;
        f.write_str("MasterKey([secret key elided])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_under_the_same_context_only() {
        let key = MasterKey::generate();
        let sealed = key.seal("project-a", b"ca key").unwrap();
        assert_eq!(
            key.open("project-a", &sealed).unwrap().secret_der(),
            b"ca key"
        );
        assert!(key.open("project-b", &sealed).is_err());
        let other = MasterKey::generate();
        assert!(other.open("project-a", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("project-a", &tampered).is_err());
        assert!(!sealed.windows(6).any(|w| w == b"ca key"));
    }

    #[test]
    fn base64_round_trip_and_rejects_wrong_lengths() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&format!("{}\n", key.to_base64().as_str())).unwrap();
        let sealed = key.seal("c", b"x").unwrap();
        assert_eq!(again.open("c", &sealed).unwrap().secret_der(), b"x");
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn debug_output_elides_secrets() {
        let key = MasterKey::generate();
        let text = format!("{key:?}");
        assert!(!text.contains(key.to_base64().as_str()));
        assert_eq!(
            format!("{:?}", SecretDer::new(vec![1, 2, 3])),
            "[secret key elided]"
        );
    }
}
