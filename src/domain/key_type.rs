//! The key types dbcert generates: for leaves (chosen per request) and for project CAs (chosen
//! per project, before its CA exists).

use std::fmt;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize};

/// A private key type. RSA-4096 is the default, and what Atlas issues (reference §2).
///
/// Costs with aws-lc-rs on one core (see the README's Performance section): generating an
/// RSA-4096 key takes about 0.7 s (with a long tail), RSA-2048 about 0.1 s, an ECDSA key tens of
/// microseconds; signing with an RSA-4096 CA key takes milliseconds, with an ECDSA key tens of
/// microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// RSA, 2048-bit modulus, e = 65537.
    Rsa2048,
    /// RSA, 3072-bit modulus, e = 65537.
    Rsa3072,
    /// RSA, 4096-bit modulus, e = 65537 (the default).
    #[default]
    Rsa4096,
    /// ECDSA on NIST P-256; as a CA it signs with ecdsa-with-SHA256.
    EcdsaP256,
    /// ECDSA on NIST P-384; as a CA it signs with ecdsa-with-SHA384.
    EcdsaP384,
}

impl KeyType {
    /// Every key type, in a stable order.
    pub const ALL: &'static [KeyType] = &[
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
        Self::EcdsaP256,
        Self::EcdsaP384,
    ];

    /// Returns the stable name (stored, in flags and metrics): `RSA_4096`, `ECDSA_P256`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2048 => "RSA_2048",
            Self::Rsa3072 => "RSA_3072",
            Self::Rsa4096 => "RSA_4096",
            Self::EcdsaP256 => "ECDSA_P256",
            Self::EcdsaP384 => "ECDSA_P384",
        }
    }

    /// Parses a stable name (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether a project CA may have this type: RSA-4096, ECDSA P-256 or P-384 (smaller RSA
    /// keys are not offered for a CA that lives ten years).
    pub fn allowed_for_ca(self) -> bool {
        matches!(self, Self::Rsa4096 | Self::EcdsaP256 | Self::EcdsaP384)
    }

    /// Whether generating a key of this type is expensive (RSA: tens of milliseconds to
    /// seconds), so it must run on a blocking thread and is worth pooling.
    pub fn is_expensive_to_generate(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    /// Whether signing with a CA key of this type costs milliseconds (RSA) rather than
    /// microseconds (ECDSA).
    pub fn is_expensive_to_sign_with(self) -> bool {
        self.is_expensive_to_generate()
    }

    /// Generates a key pair of this type (CPU-bound; see [`KeyType::is_expensive_to_generate`]).
    pub fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            Self::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            Self::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
            Self::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
            Self::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            Self::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &t in KeyType::ALL {
            assert_eq!(KeyType::parse(t.as_str()), Some(t));
        }
        assert_eq!(KeyType::parse("ecdsa_p256"), Some(KeyType::EcdsaP256));
        assert_eq!(KeyType::parse("ED25519"), None);
        assert_eq!(KeyType::default(), KeyType::Rsa4096);
    }

    #[test]
    fn ecdsa_keys_have_their_curve() {
        assert_eq!(
            KeyType::EcdsaP256.generate().unwrap().algorithm(),
            &PKCS_ECDSA_P256_SHA256
        );
        assert_eq!(
            KeyType::EcdsaP384.generate().unwrap().algorithm(),
            &PKCS_ECDSA_P384_SHA384
        );
    }
}
