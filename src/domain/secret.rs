//! Secret key material: zeroizing containers with elided `Debug`, the master key that seals CA
//! private keys at rest (AES-256-GCM from aws-lc-rs), and the [`Keyring`] of master keys a
//! replica accepts while the master key is being rotated.
//!
//! Sealed format, version 2: `0x02 ‖ key id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, where the
//! key id is the first 8 bytes of `HMAC-SHA256(master key, "dbcert/v1/key-id")` (it names the
//! key without revealing anything about it). Version 1 (`0x01 ‖ nonce ‖ ciphertext ‖ tag`, no
//! key id) is still opened, by trying every key of the keyring.

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
/// The length of a master key id, in bytes.
pub const KEY_ID_LEN: usize = 8;
/// Sealed values without a key id (written before keyrings existed); opened, never written.
const SEALED_V1: u8 = 1;
/// Sealed values naming their key.
const SEALED_V2: u8 = 2;

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
    /// A keyring needs a primary key that is not also listed among its other keys.
    #[error("the keyring lists the same master key twice")]
    DuplicateKey,
    /// The cipher refused the operation.
    #[error("sealing failed")]
    Seal,
}

/// The key-encryption key under which CA private keys are stored.
pub struct MasterKey {
    key: LessSafeKey,
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
    id: [u8; KEY_ID_LEN],
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
        let mut key = Self {
            key: LessSafeKey::new(unbound),
            bytes,
            id: [0; KEY_ID_LEN],
        };
        let derived = Zeroizing::new(key.derive_secret("dbcert/v1/key-id"));
        key.id.copy_from_slice(&derived[..KEY_ID_LEN]);
        key
    }

    /// Returns the key's id: names the key in sealed values and reports, reveals nothing of it.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    /// Returns the key id as lowercase hex, for reports and logs.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
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
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + in_out.len());
        sealed.push(SEALED_V2);
        sealed.extend_from_slice(&self.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        // The plaintext copy was encrypted in place; nothing secret is left in `in_out`.
        Ok(sealed)
    }

    /// Decrypts what [`MasterKey::seal`] produced under the same context (or a version-1
    /// value sealed under this key).
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<SecretDer, SealError> {
        match parse_sealed(sealed)? {
            Sealed::V1 { nonce, ciphertext } => self.open_parts(context, nonce, ciphertext),
            Sealed::V2 {
                key_id,
                nonce,
                ciphertext,
            } if key_id == self.id => self.open_parts(context, nonce, ciphertext),
            Sealed::V2 { .. } => Err(SealError::Open),
        }
    }

    fn open_parts(
        &self,
        context: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretDer, SealError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Open)?
            .len();
        // Hand over the decrypted buffer itself rather than a copy: what stays behind past
        // `len` is the (public) tag.
        let mut plaintext = std::mem::take(&mut *in_out);
        plaintext.truncate(len);
        Ok(SecretDer::new(plaintext))
    }
}

/// The parts of a sealed value.
enum Sealed<'a> {
    V1 {
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
    V2 {
        key_id: &'a [u8],
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
}

fn parse_sealed(sealed: &[u8]) -> Result<Sealed<'_>, SealError> {
    match sealed {
        [SEALED_V1, rest @ ..] if rest.len() >= NONCE_LEN => {
            let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
            Ok(Sealed::V1 { nonce, ciphertext })
        }
        [SEALED_V2, rest @ ..] if rest.len() >= KEY_ID_LEN + NONCE_LEN => {
            let (key_id, rest) = rest.split_at(KEY_ID_LEN);
            let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
            Ok(Sealed::V2 {
                key_id,
                nonce,
                ciphertext,
            })
        }
        _ => Err(SealError::Open),
    }
}

/// The master keys a replica holds: the primary seals, every key opens. During a rotation a
/// replica holds the old and the new key, so it reads values sealed under either.
pub struct Keyring {
    primary: MasterKey,
    others: Vec<MasterKey>,
}

impl Keyring {
    /// Creates a keyring; `others` are accepted for opening only. The same key twice is refused
    /// (it would make the rotation procedure ambiguous).
    pub fn new(primary: MasterKey, others: Vec<MasterKey>) -> Result<Self, SealError> {
        let mut ids = vec![primary.id];
        for key in &others {
            if ids.contains(&key.id) {
                return Err(SealError::DuplicateKey);
            }
            ids.push(key.id);
        }
        Ok(Self { primary, others })
    }

    /// Returns the primary key (seals new values, derives new Digest nonces).
    pub fn primary(&self) -> &MasterKey {
        &self.primary
    }

    /// Returns every key, the primary first.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.primary).chain(&self.others)
    }

    /// Seals under the primary key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.primary.seal(context, plaintext)
    }

    /// Opens a value sealed under any key of the keyring: version 2 by its key id, version 1
    /// by trying each key.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<SecretDer, SealError> {
        match parse_sealed(sealed)? {
            Sealed::V1 { .. } => self
                .keys()
                .find_map(|key| key.open(context, sealed).ok())
                .ok_or(SealError::Open),
            Sealed::V2 { key_id, .. } => self
                .keys()
                .find(|key| key.id == key_id)
                .ok_or(SealError::Open)?
                .open(context, sealed),
        }
    }

    /// Whether a sealed value is already in the primary key's current format, so a rotation
    /// leaves it alone.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        matches!(parse_sealed(sealed), Ok(Sealed::V2 { key_id, .. }) if key_id == self.primary.id)
    }

    /// Derives a secret from every key, the primary's first (e.g. to verify Digest nonces
    /// made by replicas whose primary is another key of the ring).
    pub fn derive_secrets(&self, label: &str) -> Vec<Zeroizing<[u8; 32]>> {
        self.keys()
            .map(|key| Zeroizing::new(key.derive_secret(label)))
            .collect()
    }
}

impl From<MasterKey> for Keyring {
    fn from(primary: MasterKey) -> Self {
        Self {
            primary,
            others: Vec::new(),
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { primary, others } = self;
        f.debug_struct("Keyring")
            .field("primary", &primary.id_hex())
            .field(
                "others",
                &others.iter().map(MasterKey::id_hex).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            key: _,
            bytes: _,
            id,
        } = self;
        write!(f, "MasterKey(id {}, [secret key elided])", hex::encode(id))
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

    /// A version-1 value, as sealed before keyrings existed.
    fn seal_v1(key: &MasterKey, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut v2 = key.seal(context, plaintext).unwrap();
        v2.drain(1..1 + KEY_ID_LEN);
        v2[0] = SEALED_V1;
        v2
    }

    #[test]
    fn keyrings_open_under_any_key_and_seal_under_the_primary() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let old_sealed = old.seal("c", b"old").unwrap();
        let v1_sealed = seal_v1(&old, "c", b"v1");
        assert_eq!(old.open("c", &v1_sealed).unwrap().secret_der(), b"v1");
        let old_copy = MasterKey::from_base64(&old.to_base64()).unwrap();
        let ring = Keyring::new(new, vec![old_copy]).unwrap();
        assert_eq!(ring.open("c", &old_sealed).unwrap().secret_der(), b"old");
        assert_eq!(ring.open("c", &v1_sealed).unwrap().secret_der(), b"v1");
        assert!(!ring.is_current(&old_sealed) && !ring.is_current(&v1_sealed));
        let resealed = ring.seal("c", b"old").unwrap();
        assert!(ring.is_current(&resealed));
        assert_eq!(&resealed[1..1 + KEY_ID_LEN], &ring.primary().id());
        // The old key alone cannot open what the new primary sealed.
        assert!(old.open("c", &resealed).is_err());
        assert!(Keyring::from(old).open("c", &resealed).is_err());
        assert_eq!(ring.derive_secrets("x").len(), 2);
    }

    #[test]
    fn keyrings_refuse_duplicates_and_garbage() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert!(matches!(
            Keyring::new(key, vec![again]),
            Err(SealError::DuplicateKey)
        ));
        let ring = Keyring::from(MasterKey::generate());
        for garbage in [&[][..], &[2u8][..], &[1u8, 2, 3][..], &[9u8; 64][..]] {
            assert!(ring.open("c", garbage).is_err());
        }
    }

    #[test]
    fn debug_output_elides_secrets() {
        let key = MasterKey::generate();
        let text = format!("{key:?}");
        assert!(!text.contains(key.to_base64().as_str()));
        let id = key.id_hex();
        assert!(text.contains(&id));
        assert!(format!("{:?}", Keyring::from(key)).contains(&id));
        assert_eq!(
            format!("{:?}", SecretDer::new(vec![1, 2, 3])),
            "[secret key elided]"
        );
    }
}
