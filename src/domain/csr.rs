//! Certificate signing requests (PKCS#10, RFC 2986): what dbcert takes from one, and what it
//! refuses. A CSR lets the caller keep its private key: dbcert checks the request's signature
//! with the request's own key (proof of possession), keeps that public key and nothing else,
//! and signs the same Atlas leaf profile it signs for a key it generates.
//!
//! Checked in this order, each with its own error code (all 400, gRPC `INVALID_ARGUMENT`):
//! 1. size (at most [`MAX_CSR_PEM_BYTES`], before any parsing) and shape: exactly one PEM block
//!    `CERTIFICATE REQUEST` (or the older `NEW CERTIFICATE REQUEST`) holding one DER request
//!    and nothing after it: `INVALID_CSR`;
//! 2. the key: RSA with a 2048-, 3072- or 4096-bit modulus, or ECDSA on P-256 or P-384 (the
//!    leaf key types dbcert itself generates); anything else (Ed25519, P-521, RSA-1024 or
//!    RSA-8192, DSA, …): `CSR_KEY_TYPE_NOT_SUPPORTED`;
//! 3. the signature, verified with the request's key by aws-lc (through x509-parser); SHA-1
//!    signatures are refused: `CSR_SIGNATURE_INVALID`;
//! 4. the subject: empty, or exactly one attribute, a CN equal to the username (MONGODB-X509
//!    maps the subject to the user, so the certificate's subject is always `CN=<username>`, and
//!    a request naming anything else was made for something else): `CSR_SUBJECT_MISMATCH`.
//!
//! Requested extensions and other attributes (a challenge password, SANs, key usages) are
//! ignored, not refused: the leaf profile stays exactly Atlas's (reference §2), whatever the
//! tool that made the request adds by default.

use rcgen::{
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, PublicKeyData,
    SignatureAlgorithm,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_X509_COMMON_NAME,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::error::{AtlasError, AtlasResult, ErrorCode};
use super::key_type::KeyType;
use super::model::Username;

/// The largest CSR accepted, in bytes of PEM text. An RSA-4096 request is about 1.7 KiB; the
/// bound leaves room for attributes and extensions while keeping parsing cheap.
pub const MAX_CSR_PEM_BYTES: usize = 16 * 1024;

/// The public key of a verified certificate signing request: all dbcert keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrPublicKey {
    key_type: KeyType,
    /// The rcgen algorithm whose key OIDs (and parameters) name this key in a certificate.
    algorithm: &'static SignatureAlgorithm,
    /// The `subjectPublicKey` BIT STRING's bytes (RSAPublicKey DER, or the EC point).
    subject_public_key: Vec<u8>,
}

// === impl CsrPublicKey ===

impl CsrPublicKey {
    /// Parses a PEM CSR, verifies its signature and checks its key and subject against the
    /// module's rules; returns its public key.
    pub fn parse(pem: &str, username: &Username) -> AtlasResult<Self> {
        if pem.len() > MAX_CSR_PEM_BYTES {
            return Err(invalid_csr(format!(
                "The certificate signing request is larger than {MAX_CSR_PEM_BYTES} bytes."
            )));
        }
        let der = single_request_der(pem)?;
        let request = match X509CertificationRequest::from_der(&der) {
            Ok(([], request)) => request,
            _ => {
                return Err(invalid_csr(
                    "The certificate signing request is not a DER PKCS#10 request.",
                ));
            }
        };
        let info = &request.certification_request_info;
        let key = Self::from_spki(&info.subject_pki)?;

        let signature_algorithm = &request.signature_algorithm.algorithm;
        if *signature_algorithm == OID_PKCS1_SHA1WITHRSA
            || *signature_algorithm == OID_SHA1_WITH_RSA
        {
            return Err(AtlasError::new(
                ErrorCode::CsrSignatureInvalid,
                "The certificate signing request is signed with SHA-1, which is not accepted.",
                Vec::new(),
            )
            .with_field("csr_pem"));
        }
        if request.verify_signature().is_err() {
            return Err(AtlasError::new(
                ErrorCode::CsrSignatureInvalid,
                "The certificate signing request's signature does not verify with its public key.",
                Vec::new(),
            )
            .with_field("csr_pem"));
        }

        check_subject(info.subject.iter_rdn(), username)?;
        Ok(key)
    }

    /// Returns the key's type (one of the leaf types dbcert generates).
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> AtlasResult<Self> {
        let algorithm_oid = &spki.algorithm.algorithm;
        let subject_public_key = spki.subject_public_key.data.to_vec();
        if *algorithm_oid == OID_PKCS1_RSAENCRYPTION {
            let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err(invalid_csr(
                    "The certificate signing request's RSA public key does not parse.",
                ));
            };
            let key_type = match modulus_bits(rsa.modulus) {
                2048 => KeyType::Rsa2048,
                3072 => KeyType::Rsa3072,
                4096 => KeyType::Rsa4096,
                bits => return Err(key_type_not_supported(&format!("RSA-{bits}"))),
            };
            return Ok(Self {
                key_type,
                algorithm: &PKCS_RSA_SHA256,
                subject_public_key,
            });
        }
        if *algorithm_oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok());
            let (key_type, algorithm, point_len) = match curve {
                Some(curve) if curve == OID_EC_P256 => {
                    (KeyType::EcdsaP256, &PKCS_ECDSA_P256_SHA256, 65)
                }
                Some(curve) if curve == OID_NIST_EC_P384 => {
                    (KeyType::EcdsaP384, &PKCS_ECDSA_P384_SHA384, 97)
                }
                Some(curve) => return Err(key_type_not_supported(&format!("ECDSA curve {curve}"))),
                None => return Err(key_type_not_supported("ECDSA without a named curve")),
            };
            // An uncompressed point (0x04, x, y), as certificates carry it (RFC 5480 §2.2).
            if subject_public_key.len() != point_len || subject_public_key.first() != Some(&4) {
                return Err(invalid_csr(
                    "The certificate signing request's EC public key is not an uncompressed point.",
                ));
            }
            return Ok(Self {
                key_type,
                algorithm,
                subject_public_key,
            });
        }
        Err(key_type_not_supported(&format!(
            "public key algorithm {algorithm_oid}"
        )))
    }
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.subject_public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl std::fmt::Debug for CsrPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            key_type,
            algorithm: _,
            subject_public_key: _,
        } = self;
        f.debug_struct("CsrPublicKey")
            .field("key_type", key_type)
            .finish_non_exhaustive()
    }
}

// === helpers ===

/// The DER of the one PEM request block of `pem`.
fn single_request_der(pem: &str) -> AtlasResult<Vec<u8>> {
    let mut blocks = Pem::iter_from_buffer(pem.as_bytes());
    let Some(Ok(block)) = blocks.next() else {
        return Err(invalid_csr(
            "The certificate signing request is not PEM (-----BEGIN CERTIFICATE REQUEST-----).",
        ));
    };
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(invalid_csr(format!(
            "The PEM block is a {}, not a CERTIFICATE REQUEST.",
            printable_label(&block.label)
        )));
    }
    if blocks.next().is_some() {
        return Err(invalid_csr(
            "The certificate signing request holds more than one PEM block.",
        ));
    }
    Ok(block.contents)
}

/// Checks the subject: empty, or one RDN of one attribute, a CN equal to the username.
fn check_subject<'a, 'b: 'a>(
    rdns: impl Iterator<Item = &'a x509_parser::x509::RelativeDistinguishedName<'b>>,
    username: &Username,
) -> AtlasResult<()> {
    let attributes: Vec<_> = rdns.flat_map(|rdn| rdn.iter()).collect();
    match attributes.as_slice() {
        [] => Ok(()),
        [cn] if *cn.attr_type() == OID_X509_COMMON_NAME
            && cn.as_str().is_ok_and(|value| value == username.as_str()) =>
        {
            Ok(())
        }
        _ => Err(AtlasError::new(
            ErrorCode::CsrSubjectMismatch,
            format!(
                "The certificate signing request's subject must be empty or exactly CN={}.",
                username.as_str()
            ),
            vec![username.to_string()],
        )
        .with_field("csr_pem")),
    }
}

/// The size of a big-endian modulus in bits, leading zero bits not counted.
fn modulus_bits(modulus: &[u8]) -> usize {
    let Some(first) = modulus.iter().position(|&byte| byte != 0) else {
        return 0;
    };
    (modulus.len() - first) * 8 - modulus[first].leading_zeros() as usize
}

/// A PEM label fit for an error detail (it came from the client).
fn printable_label(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .take(40)
        .collect()
}

fn invalid_csr(detail: impl Into<String>) -> AtlasError {
    AtlasError::new(ErrorCode::InvalidCsr, detail, Vec::new()).with_field("csr_pem")
}

fn key_type_not_supported(what: &str) -> AtlasError {
    AtlasError::new(
        ErrorCode::CsrKeyTypeNotSupported,
        format!(
            "The certificate signing request's key ({what}) is not supported: use RSA 2048, 3072 \
             or 4096, or ECDSA P-256 or P-384."
        ),
        vec![what.to_owned()],
    )
    .with_field("csr_pem")
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn csr(key: &KeyPair, subject: &[(DnType, &str)]) -> String {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (kind, value) in subject {
            dn.push(kind.clone(), *value);
        }
        params.distinguished_name = dn;
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    #[test]
    fn keeps_the_public_key_of_a_request_for_the_user() {
        let key = KeyType::EcdsaP256.generate().unwrap();
        let pem = csr(&key, &[(DnType::CommonName, "alice")]);
        let parsed = CsrPublicKey::parse(&pem, &user("alice")).unwrap();
        assert_eq!(parsed.key_type(), KeyType::EcdsaP256);
        assert_eq!(parsed.der_bytes(), key.public_key_raw());
    }

    #[test]
    fn an_empty_subject_is_fine_another_is_not() {
        let key = KeyType::EcdsaP384.generate().unwrap();
        assert!(CsrPublicKey::parse(&csr(&key, &[]), &user("alice")).is_ok());
        for subject in [
            vec![(DnType::CommonName, "bob")],
            vec![(DnType::CommonName, "Alice")],
            vec![
                (DnType::CommonName, "alice"),
                (DnType::OrganizationName, "x"),
            ],
            vec![(DnType::OrganizationName, "alice")],
        ] {
            let error = CsrPublicKey::parse(&csr(&key, &subject), &user("alice")).unwrap_err();
            assert_eq!(error.code(), ErrorCode::CsrSubjectMismatch, "{subject:?}");
        }
    }

    #[test]
    fn a_flipped_signature_bit_is_refused() {
        use base64::Engine as _;
        let key = KeyType::EcdsaP256.generate().unwrap();
        let pem = csr(&key, &[]);
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        // The signature is the request's last bytes; the last byte is inside the DER integer s.
        *der.last_mut().unwrap() ^= 1;
        let tampered = pem_of(&der);
        let error = CsrPublicKey::parse(&tampered, &user("alice")).unwrap_err();
        assert_eq!(error.code(), ErrorCode::CsrSignatureInvalid);
    }

    #[test]
    fn shapes_other_than_one_request_are_invalid() {
        let key = KeyType::EcdsaP256.generate().unwrap();
        let one = csr(&key, &[]);
        let oversized = format!("{one}{}", " ".repeat(MAX_CSR_PEM_BYTES));
        for pem in [
            String::new(),
            "garbage".to_owned(),
            format!("{one}{one}"),
            one.replace("CERTIFICATE REQUEST", "CERTIFICATE"),
            pem_of(b"\x30\x03\x02\x01\x00"),
            oversized,
        ] {
            let error = CsrPublicKey::parse(&pem, &user("alice")).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidCsr, "{pem:.60}");
        }
    }

    #[test]
    fn ed25519_is_not_a_supported_key() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let error = CsrPublicKey::parse(&csr(&key, &[]), &user("alice")).unwrap_err();
        assert_eq!(error.code(), ErrorCode::CsrKeyTypeNotSupported);
    }

    #[test]
    fn modulus_bits_skip_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n")
    }
}
