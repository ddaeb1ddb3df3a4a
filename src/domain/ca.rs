//! A project's certificate authority: creating it, and signing Atlas-profile client
//! certificates with it. Pure and synchronous (CPU-bound); callers run it on blocking threads.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PublicKeyData, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::csr::CsrPublicKey;
use super::key_type::KeyType;
use super::model::{ProjectId, Username};
use super::revocation_pointers::RevocationPointers;
use super::secret::SecretDer;
use super::validity::{BACKDATE, Validity};

/// How long a project CA is valid. Leaves never outlive it (their notAfter is capped).
pub const CA_LIFETIME: Duration = Duration::days(10 * 365 + 2);

/// The OID of the dnQualifier attribute (X.520, 2.5.4.46).
const OID_DN_QUALIFIER: &[u64] = &[2, 5, 4, 46];
/// The OID of the Extended Key Usage extension (RFC 5280 §4.2.1.12).
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
/// DER of `ExtKeyUsageSyntax ::= SEQUENCE { id-kp-clientAuth }` (1.3.6.1.5.5.7.3.2).
const EKU_CLIENT_AUTH_DER: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
];

/// The organization fields of every project CA's subject (`CN=<groupId>, OU=…, O=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSubject {
    /// `O`.
    pub organization: String,
    /// `OU`.
    pub organizational_unit: String,
}

/// Failures of the certificate machinery; all are internal (the inputs were validated).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// rcgen refused to build or sign.
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
    /// A stored CA certificate or key does not parse.
    #[error("stored project ca is unreadable")]
    Unreadable,
    /// A revocation pointer does not encode (a URL that is not ASCII).
    #[error("leaf revocation pointer does not encode")]
    Extension,
}

/// A freshly generated project CA, with its key in the clear (to be sealed before storing).
pub struct NewProjectCa {
    /// The CA, ready to sign.
    pub ca: ProjectCa,
    /// The CA's PKCS#8 private key.
    pub key_pkcs8: SecretDer,
}

/// A project's CA: its certificate and signing key.
pub struct ProjectCa {
    cert_der: Vec<u8>,
    cert_pem: String,
    subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_type: KeyType,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued to a user, with its private key (never stored).
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The unencrypted PKCS#8 private key, PEM, zeroized on drop; empty when the key came from
    /// a certificate signing request (the caller holds it).
    pub private_key_pem: Zeroizing<String>,
    /// The type of the certificate's key.
    pub key_type: KeyType,
    /// The serial number.
    pub serial: i64,
    /// `CN=<username>`.
    pub subject: String,
    /// The validity window.
    pub validity: Validity,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256_fingerprint: String,
}

// === impl ProjectCa ===

impl ProjectCa {
    /// Generates a CA for a project with a key of the given type (RSA-4096: about a second of
    /// CPU; ECDSA: microseconds). RSA CAs sign with sha256WithRSAEncryption, P-256 CAs with
    /// ecdsa-with-SHA256, P-384 CAs with ecdsa-with-SHA384.
    ///
    /// The subject is `CN=<groupId>, OU=…, O=…`; a generation after the first (a rotation)
    /// adds `dnQualifier=<generation>`, the attribute X.520 made to tell apart entries of the
    /// same name. The Atlas leaf profile carries no authority key identifier, so TLS stacks
    /// (OpenSSL, as in mongod) pick a leaf's CA by the leaf's issuer name alone: two CAs of one
    /// name in a trust bundle would leave them trying the wrong one.
    pub fn generate(
        project_id: &ProjectId,
        subject: &CaSubject,
        key_type: KeyType,
        generation: u32,
        now: OffsetDateTime,
    ) -> Result<NewProjectCa, CaError> {
        debug_assert!(key_type.allowed_for_ca(), "ca key types are validated");
        let mut key = key_type.generate()?;
        let key_pkcs8 = SecretDer::new(key.serialize_der());

        let now = now.replace_nanosecond(0).expect("0 is a valid nanosecond");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, dn_value(project_id.as_str()));
        dn.push(
            DnType::OrganizationalUnitName,
            dn_value(&subject.organizational_unit),
        );
        dn.push(DnType::OrganizationName, dn_value(&subject.organization));
        if generation > 1 {
            dn.push(
                DnType::CustomDnType(OID_DN_QUALIFIER.to_vec()),
                DnValue::PrintableString(
                    rcgen::string::PrintableString::try_from(generation.to_string())
                        .expect("digits are printable"),
                ),
            );
        }
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial().to_be_bytes()));
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        // rcgen keeps the key's PKCS#8 bytes and does not wipe them on drop.
        zeroize::Zeroize::zeroize(&mut key);
        let ca = Self::from_parts(cert.der().to_vec(), &key_pkcs8)?;
        Ok(NewProjectCa { ca, key_pkcs8 })
    }

    /// Rebuilds a CA from its stored DER certificate and PKCS#8 key. The key's type (RSA,
    /// ECDSA P-256 or P-384) is read from the key itself, and picks the signature algorithm.
    pub fn from_parts(cert_der: Vec<u8>, key_pkcs8: &SecretDer) -> Result<Self, CaError> {
        let key = KeyPair::try_from(&PrivatePkcs8KeyDer::from(key_pkcs8.secret_der()))
            .map_err(|_| CaError::Unreadable)?;
        let alg = key.algorithm();
        let key_type = if alg == &PKCS_ECDSA_P256_SHA256 {
            KeyType::EcdsaP256
        } else if alg == &PKCS_ECDSA_P384_SHA384 {
            KeyType::EcdsaP384
        } else if key.is_compatible(&rcgen::PKCS_RSA_SHA256) {
            // Every RSA CA dbcert makes is RSA-4096.
            KeyType::Rsa4096
        } else {
            return Err(CaError::Unreadable);
        };
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|_| CaError::Unreadable)?;
        let subject = parsed.subject().to_string();
        let not_before = parsed.validity().not_before.to_datetime();
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key)
            .map_err(|_| CaError::Unreadable)?;
        let cert_pem = pem_encode("CERTIFICATE", &cert_der);
        Ok(Self {
            cert_der,
            cert_pem,
            subject,
            not_before,
            not_after,
            key_type,
            issuer,
        })
    }

    /// Issues a client certificate with a fresh key of the given type (RSA-4096: about a
    /// second of CPU).
    pub fn issue(
        &self,
        username: &Username,
        validity: Validity,
        serial: i64,
        key_type: KeyType,
        pointers: &RevocationPointers,
    ) -> Result<IssuedCertificate, CaError> {
        let mut key = key_type.generate()?;
        let issued = self.issue_with_key(username, validity, serial, &key, key_type, pointers);
        zeroize::Zeroize::zeroize(&mut key);
        issued
    }

    /// Issues a client certificate for the given key of the given type: the Atlas profile of
    /// reference §2 (only the key and, with an ECDSA CA, the signature algorithm differ), plus
    /// the revocation pointers the operator opted into ([`RevocationPointers::NONE`]: none).
    pub fn issue_with_key(
        &self,
        username: &Username,
        validity: Validity,
        serial: i64,
        key: &KeyPair,
        key_type: KeyType,
        pointers: &RevocationPointers,
    ) -> Result<IssuedCertificate, CaError> {
        let mut issued = self.sign_leaf(username, validity, serial, key, key_type, pointers)?;
        issued.private_key_pem = Zeroizing::new(key.serialize_pem());
        Ok(issued)
    }

    /// Issues a client certificate for the public key of a verified certificate signing
    /// request: the same profile as [`ProjectCa::issue_with_key`], and no private key.
    pub fn issue_for_csr(
        &self,
        username: &Username,
        validity: Validity,
        serial: i64,
        key: &CsrPublicKey,
        pointers: &RevocationPointers,
    ) -> Result<IssuedCertificate, CaError> {
        self.sign_leaf(username, validity, serial, key, key.key_type(), pointers)
    }

    /// Signs the Atlas leaf profile (with the opted-in revocation pointers) for a public key;
    /// the result has no private key.
    fn sign_leaf(
        &self,
        username: &Username,
        validity: Validity,
        serial: i64,
        key: &impl PublicKeyData,
        key_type: KeyType,
        pointers: &RevocationPointers,
    ) -> Result<IssuedCertificate, CaError> {
        debug_assert!(serial > 0, "serials are positive");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, dn_value(username.as_str()));
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.is_ca = IsCa::NoCa;
        // Key Usage: rcgen marks it critical. Extended Key Usage: rcgen marks it non-critical,
        // Atlas critical, so it is written by hand. No SKI/AKI/SAN/basicConstraints, as Atlas.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku =
            CustomExtension::from_oid_content(OID_EXT_KEY_USAGE, EKU_CLIENT_AUTH_DER.to_vec());
        eku.set_criticality(true);
        params.custom_extensions = vec![eku];
        params.use_authority_key_identifier_extension = false;
        // Only what the operator opted into (`--leaf-revocation-pointers`); none by default.
        pointers.apply(&mut params)?;

        let cert = params.signed_by(key, &self.issuer)?;
        Ok(IssuedCertificate {
            certificate_pem: cert.pem(),
            private_key_pem: Zeroizing::new(String::new()),
            key_type,
            serial,
            subject: format!("CN={}", escape_rfc4514(username.as_str())),
            validity,
            sha256_fingerprint: hex::encode(Sha256::digest(cert.der())),
        })
    }

    /// Returns the type of the CA's key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Returns the CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Returns the CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Returns the CA's subject (RFC 4514 string).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Returns the CA's notBefore.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// Returns the CA's notAfter: no certificate it signs lives longer.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The CA as rcgen's signer (CRLs and OCSP answers, `crl.rs` and `ocsp.rs`).
    pub(super) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

impl fmt::Debug for ProjectCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            cert_der: _,
            cert_pem: _,
            subject,
            not_before,
            not_after,
            key_type,
            issuer: _,
        } = self;
        f.debug_struct("ProjectCa")
            .field("subject", subject)
            .field("key_type", key_type)
            .field("not_before", not_before)
            .field("not_after", not_after)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            certificate_pem: _,
            private_key_pem: _,
            key_type,
            serial,
            subject,
            validity,
            sha256_fingerprint,
        } = self;
        f.debug_struct("IssuedCertificate")
            .field("key_type", key_type)
            .field("serial", serial)
            .field("subject", subject)
            .field("validity", validity)
            .field("sha256_fingerprint", sha256_fingerprint)
            .finish_non_exhaustive()
    }
}

// === helpers ===

/// Draws a random positive 63-bit serial, as Atlas's (it is the list API's int64 `_id`).
pub fn random_serial() -> i64 {
    loop {
        let serial = (rand::random::<u64>() >> 1) as i64;
        if serial != 0 {
            return serial;
        }
    }
}

/// A name as PrintableString where its characters allow, else UTF8String (RFC 5280 §4.1.2.4).
fn dn_value(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(printable) => DnValue::PrintableString(printable),
        Err(_) => DnValue::Utf8String(s.to_owned()),
    }
}

/// Escapes an attribute value for an RFC 4514 string (`CN=a\,b`).
fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn pem_encode(tag: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_63_bit() {
        for _ in 0..1000 {
            let s = random_serial();
            assert!(s > 0);
        }
    }

    #[test]
    fn escapes_rfc4514_specials() {
        assert_eq!(escape_rfc4514("user389"), "user389");
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514("#x "), "\\#x\\ ");
    }

    #[test]
    fn printable_names_stay_printable() {
        assert!(matches!(dn_value("user389"), DnValue::PrintableString(_)));
        assert!(matches!(dn_value("a@b.example"), DnValue::Utf8String(_)));
    }
}
