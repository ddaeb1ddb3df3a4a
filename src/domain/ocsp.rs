//! The OCSP responder (RFC 6960) of each project: answers signed by the project CA that issued
//! the certificate asked about (found by the request's issuer key hash), `good`, `revoked`
//! (time and reason) or `unknown`, with the request's nonce echoed.
//!
//! The ASN.1 is RustCrypto's `x509-ocsp` (with `der` and `x509-cert`, the same family as the
//! `spki`/`const-oid` crates already in the tree); the answer is signed with the CA's key
//! through rcgen's signer, as certificates and CRLs are. A request that does not parse, asks
//! about more than [`MAX_REQUESTS`] certificates or carries an oversized nonce gets the OCSP
//! `malformedRequest` status; when [`OcspSigners`] are all busy, `tryLater`: the responder is
//! public, so its cost (one signature per answer, milliseconds with RSA-4096) is bounded.

use std::sync::Arc;

use aws_lc_rs::digest;
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
use rcgen::SigningKey;
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::ca::ProjectCa;
use super::core::{Core, store_error};
use super::error::{AtlasError, AtlasResult};
use super::key_type::KeyType;
use super::model::ProjectId;
use super::store::RevokedSerial;

/// The longest OCSP request read (DER); a longer one is `malformedRequest` (over REST, 413).
pub const MAX_OCSP_REQUEST_BYTES: usize = 64 * 1024;
/// The most certificates one OCSP request may ask about.
pub const MAX_REQUESTS: usize = 16;
/// The longest nonce extension value accepted (RFC 8954 allows nonces of 1 to 32 bytes; the
/// value is an OCTET STRING of it, so 34 bytes; some clients send the bare nonce).
const MAX_NONCE_LEN: usize = 34;
/// The most OCSP answers signed at once; beyond it, `tryLater`.
const MAX_CONCURRENT_SIGNATURES: usize = 8;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Bounds the OCSP answers being signed at once.
pub(super) struct OcspSigners(Arc<tokio::sync::Semaphore>);

impl Default for OcspSigners {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(
            MAX_CONCURRENT_SIGNATURES,
        )))
    }
}

/// What identifies one CA in a CertID: its name and key hashed with SHA-1 and SHA-256.
struct CaIdentity {
    generation: u32,
    ca: Arc<ProjectCa>,
    name_sha1: Vec<u8>,
    key_sha1: Vec<u8>,
    name_sha256: Vec<u8>,
    key_sha256: Vec<u8>,
}

impl CaIdentity {
    fn new(generation: u32, ca: Arc<ProjectCa>) -> Result<Self, der::Error> {
        let cert = Certificate::from_der(ca.certificate_der())?;
        let name = cert.tbs_certificate.subject.to_der()?;
        let key = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let sha1 = |data: &[u8]| {
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
                .as_ref()
                .to_vec()
        };
        let sha256 = |data: &[u8]| digest::digest(&digest::SHA256, data).as_ref().to_vec();
        Ok(Self {
            generation,
            name_sha1: sha1(&name),
            key_sha1: sha1(&key),
            name_sha256: sha256(&name),
            key_sha256: sha256(&key),
            ca,
        })
    }

    fn issued(&self, id: &CertId) -> bool {
        let (name, key) = if id.hash_algorithm.oid == OID_SHA1 {
            (&self.name_sha1, &self.key_sha1)
        } else if id.hash_algorithm.oid == OID_SHA256 {
            (&self.name_sha256, &self.key_sha256)
        } else {
            return false;
        };
        id.issuer_name_hash.as_bytes() == name.as_slice()
            && id.issuer_key_hash.as_bytes() == key.as_slice()
    }
}

/// The serial of a CertID as dbcert's serials are (positive, 63 bits), if it can be one.
fn serial(id: &CertId) -> Option<i64> {
    let bytes = id.serial_number.as_bytes();
    let bytes = match bytes {
        [0, rest @ ..] => rest,
        _ => bytes,
    };
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let mut be = [0u8; 8];
    be[8 - bytes.len()..].copy_from_slice(bytes);
    Some(i64::from_be_bytes(be)).filter(|s| *s > 0)
}

fn generalized(t: OffsetDateTime) -> Result<OcspGeneralizedTime, der::Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| der::ErrorKind::DateTime)?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        std::time::Duration::from_secs(secs),
    )?))
}

fn crl_reason(name: Option<&str>) -> Option<CrlReason> {
    Some(match name? {
        "unspecified" => CrlReason::Unspecified,
        "keyCompromise" => CrlReason::KeyCompromise,
        "caCompromise" => CrlReason::CaCompromise,
        "affiliationChanged" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessationOfOperation" => CrlReason::CessationOfOperation,
        "privilegeWithdrawn" => CrlReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

fn signature_algorithm(key_type: KeyType) -> AlgorithmIdentifierOwned {
    match key_type {
        KeyType::EcdsaP256 => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_WITH_SHA256,
            parameters: None,
        },
        KeyType::EcdsaP384 => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_WITH_SHA384,
            parameters: None,
        },
        _ => AlgorithmIdentifierOwned {
            oid: OID_SHA256_WITH_RSA,
            parameters: Some(Any::from(Null)),
        },
    }
}

/// An OCSP answer without a signature: a failure status.
fn unsigned(response: OcspResponse) -> Vec<u8> {
    // Invariant: a status-only OCSPResponse (an ENUMERATED in a SEQUENCE) always encodes.
    response
        .to_der()
        .expect("a status-only ocsp response must encode")
}

/// The parsed request, or the `malformedRequest` answer.
fn parse_request(der: &[u8]) -> Result<OcspRequest, Vec<u8>> {
    let malformed = || unsigned(OcspResponse::malformed_request());
    if der.len() > MAX_OCSP_REQUEST_BYTES {
        return Err(malformed());
    }
    let request = OcspRequest::from_der(der).map_err(|_| malformed())?;
    let list = &request.tbs_request.request_list;
    if list.is_empty() || list.len() > MAX_REQUESTS {
        return Err(malformed());
    }
    if let Some(extensions) = &request.tbs_request.request_extensions
        && extensions
            .iter()
            .any(|e| e.extn_id == OID_NONCE && e.extn_value.as_bytes().len() > MAX_NONCE_LEN)
    {
        return Err(malformed());
    }
    Ok(request)
}

// === impl Core ===

impl Core {
    /// Answers a DER OCSP request about certificates of a project's CAs: always a DER OCSP
    /// response (failure statuses included), except for an unknown project
    /// (`GROUP_NOT_FOUND`) or one without a CA yet (`PROJECT_CA_NOT_FOUND`). No principal: the
    /// responder is public, as a CRL.
    pub async fn ocsp_response(&self, group_id: &str, request: &[u8]) -> AtlasResult<Vec<u8>> {
        let project_id = self.live_project_id(group_id).await?;
        let cas = self.crl_cas(&project_id, true).await?;
        let request = match parse_request(request) {
            Ok(request) => request,
            Err(malformed) => return Ok(malformed),
        };
        let Ok(permit) = self.ocsp_signers.0.clone().try_acquire_owned() else {
            return Ok(unsigned(OcspResponse::try_later()));
        };
        let identities = cas
            .into_iter()
            .map(|(generation, ca)| CaIdentity::new(generation, ca))
            .collect::<Result<Vec<_>, _>>()
            .map_err(AtlasError::internal)?;
        let now = self.clock.now();
        // The signer: the CA of the first certificate asked about, else the issuing CA. A
        // response has one signer, so only its certificates are answered; one of another CA
        // generation in the same request is `unknown` (RFC 6960 clients refuse an answer about
        // a certificate signed by a CA that did not issue it).
        let signer = identities
            .iter()
            .find(|ca| ca.issued(&request.tbs_request.request_list[0].req_cert))
            .unwrap_or(&identities[0]);
        let mut responses = Vec::with_capacity(request.tbs_request.request_list.len());
        for item in &request.tbs_request.request_list {
            let status = self
                .ocsp_status(
                    &project_id,
                    std::slice::from_ref(signer),
                    &item.req_cert,
                    now,
                )
                .await?;
            responses.push(SingleResponse {
                cert_id: item.req_cert.clone(),
                cert_status: status,
                this_update: generalized(now).map_err(AtlasError::internal)?,
                next_update: None,
                single_extensions: None,
            });
        }
        let nonce: Vec<_> = request
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == OID_NONCE)
            .cloned()
            .collect();
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(signer.key_sha1.clone()).map_err(AtlasError::internal)?,
            ),
            produced_at: generalized(now).map_err(AtlasError::internal)?,
            responses,
            response_extensions: (!nonce.is_empty()).then_some(nonce),
        };
        let ca = signer.ca.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            sign_response(&ca, data)
        })
        .await
        .map_err(AtlasError::internal)?
    }

    async fn ocsp_status(
        &self,
        project_id: &ProjectId,
        identities: &[CaIdentity],
        id: &CertId,
        now: OffsetDateTime,
    ) -> AtlasResult<CertStatus> {
        let Some(ca) = identities.iter().find(|ca| ca.issued(id)) else {
            return Ok(CertStatus::unknown());
        };
        let Some(serial) = serial(id) else {
            return Ok(CertStatus::unknown());
        };
        let Some(record) = self
            .store
            .certificate_status(project_id, serial)
            .await
            .map_err(store_error)?
        else {
            return Ok(CertStatus::unknown());
        };
        if record.generation != ca.generation {
            return Ok(CertStatus::unknown());
        }
        let _ = now;
        Ok(match record.revoked {
            None => CertStatus::good(),
            Some(RevokedSerial {
                revoked_at, reason, ..
            }) => CertStatus::revoked(RevokedInfo {
                revocation_time: generalized(revoked_at).map_err(AtlasError::internal)?,
                revocation_reason: crl_reason(reason.as_deref()),
            }),
        })
    }
}

/// Signs the response data with the CA's key: a `successful` BasicOCSPResponse.
fn sign_response(ca: &ProjectCa, data: ResponseData) -> AtlasResult<Vec<u8>> {
    let tbs = data.to_der().map_err(AtlasError::internal)?;
    let signature = ca.issuer().key().sign(&tbs).map_err(AtlasError::internal)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: signature_algorithm(ca.key_type()),
        signature: BitString::from_bytes(&signature).map_err(AtlasError::internal)?,
        certs: None,
    };
    OcspResponse::successful(basic)
        .and_then(|response| response.to_der())
        .map_err(AtlasError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_malformed_request() {
        let answer = parse_request(b"not der").expect_err("garbage must not parse");
        let response = OcspResponse::from_der(&answer).expect("the answer must parse");
        assert_eq!(
            response.response_status,
            x509_ocsp::OcspResponseStatus::MalformedRequest
        );
    }

    #[test]
    fn serials_are_positive_and_at_most_63_bits() {
        let id = |bytes: &[u8]| CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: OID_SHA1,
                parameters: None,
            },
            issuer_name_hash: OctetString::new(vec![0; 20]).expect("octets"),
            issuer_key_hash: OctetString::new(vec![0; 20]).expect("octets"),
            serial_number: x509_cert::serial_number::SerialNumber::new(bytes).expect("serial"),
        };
        assert_eq!(serial(&id(&[0x01, 0x02])), Some(0x0102));
        assert_eq!(serial(&id(&[0x00, 0x80])), Some(0x80));
        assert_eq!(serial(&id(&[0x01; 9])), None);
    }
}
