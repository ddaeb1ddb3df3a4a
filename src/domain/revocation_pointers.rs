//! Revocation pointers in leaf certificates, an operator's opt-in
//! (`--leaf-revocation-pointers crl,ocsp`): a CRL Distribution Points extension naming the CRL
//! of the CA generation that signs the leaf, and an Authority Information Access extension
//! naming the project's OCSP responder. Both are non-critical. Off by default: a leaf is then
//! exactly Atlas's profile (no extension beyond key usage and extended key usage).
//!
//! The URLs depend only on the configured base URL (`--leaf-revocation-pointer-url`, else
//! `--public-url`), the project and the CA generation, all known where a leaf is signed
//! (`issuer.rs`):
//!
//! - CRL: `{base}/api/dbcert/v1/groups/{groupId}/crl/{generation}`, the DER CRL that CA signs,
//!   served while the CA is in the project's trust bundle (after a rotation an older CA's
//!   leaves keep pointing at their own CA's CRL);
//! - OCSP: `{base}/api/dbcert/v1/groups/{groupId}/ocsp`, the responder (POST, and the RFC 6960
//!   GET form below it).

use der::Encode as _;
use der::asn1::{Ia5String, ObjectIdentifier};
use rcgen::{CertificateParams, CrlDistributionPoint, CustomExtension};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use super::ca::CaError;
use super::model::ProjectId;

/// The path prefix of dbcert's own REST API, where the CRL and OCSP routes are (the gateway's
/// `openapi::PREFIX`; a gateway unit test keeps the two equal).
pub const DBCERT_API_PATH: &str = "/api/dbcert/v1";

/// The OID of the Authority Information Access extension (RFC 5280 §4.2.2.1, 1.3.6.1.5.5.7.1.1).
const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// Which revocation pointers leaves carry, and the base URL they start with (the core's
/// settings; `None` there is Atlas's profile).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationPointerSettings {
    /// `scheme://host[:port]`, no trailing slash (`--leaf-revocation-pointer-url`, else `--public-url`).
    pub base_url: String,
    /// Write the CRL Distribution Points extension.
    pub crl: bool,
    /// Write the Authority Information Access extension (OCSP).
    pub ocsp: bool,
}

impl RevocationPointerSettings {
    /// The pointers of a leaf of `project_id` signed by its CA of `generation`.
    pub fn for_leaf(&self, project_id: &ProjectId, generation: u32) -> RevocationPointers {
        let group = format!("{}{DBCERT_API_PATH}/groups/{project_id}", self.base_url);
        RevocationPointers {
            crl_url: self.crl.then(|| format!("{group}/crl/{generation}")),
            ocsp_url: self.ocsp.then(|| format!("{group}/ocsp")),
        }
    }
}

/// The revocation pointers of one leaf; none (the default) is Atlas's profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationPointers {
    /// The one URI of the CRL Distribution Points extension.
    pub crl_url: Option<String>,
    /// The one id-ad-ocsp URI of the Authority Information Access extension.
    pub ocsp_url: Option<String>,
}

impl RevocationPointers {
    /// No pointers: Atlas's profile.
    pub const NONE: Self = Self {
        crl_url: None,
        ocsp_url: None,
    };

    /// Adds the extensions to a leaf's parameters (nothing when there are no pointers).
    pub(super) fn apply(&self, params: &mut CertificateParams) -> Result<(), CaError> {
        if let Some(url) = &self.crl_url {
            // rcgen writes it non-critical: DistributionPoint { fullName [uri] }.
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        if let Some(url) = &self.ocsp_url {
            // rcgen has no AIA field; CustomExtension is non-critical unless set otherwise.
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    OID_AUTHORITY_INFO_ACCESS,
                    authority_info_access_der(url)?,
                ));
        }
        Ok(())
    }
}

/// DER of `AuthorityInfoAccessSyntax ::= SEQUENCE { AccessDescription { id-ad-ocsp,
/// uniformResourceIdentifier url } }`, encoded by `x509-cert`.
fn authority_info_access_der(url: &str) -> Result<Vec<u8>, CaError> {
    let uri = Ia5String::new(url).map_err(|_| CaError::Extension)?;
    AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: ID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(uri),
    }])
    .to_der()
    .map_err(|_| CaError::Extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(crl: bool, ocsp: bool) -> RevocationPointerSettings {
        RevocationPointerSettings {
            base_url: "https://dbcert.example.com".to_owned(),
            crl,
            ocsp,
        }
    }

    #[test]
    fn urls_name_the_project_and_the_signing_generation() {
        let project = ProjectId::parse("0123456789abcdef01234567").unwrap();
        assert_eq!(
            settings(true, true).for_leaf(&project, 3),
            RevocationPointers {
                crl_url: Some(
                    "https://dbcert.example.com/api/dbcert/v1/groups/0123456789abcdef01234567/crl/3"
                        .to_owned()
                ),
                ocsp_url: Some(
                    "https://dbcert.example.com/api/dbcert/v1/groups/0123456789abcdef01234567/ocsp"
                        .to_owned()
                ),
            }
        );
        assert_eq!(
            settings(false, true).for_leaf(&project, 1).crl_url,
            None,
            "crl off"
        );
        assert_eq!(
            settings(true, false).for_leaf(&project, 1).ocsp_url,
            None,
            "ocsp off"
        );
    }

    #[test]
    fn authority_info_access_is_the_rfc_5280_structure() {
        let der = authority_info_access_der("http://a/o").unwrap();
        // SEQUENCE { SEQUENCE { OID 1.3.6.1.5.5.7.48.1, [6] "http://a/o" } }
        let expected = [
            &[0x30, 0x18, 0x30, 0x16, 0x06, 0x08][..],
            &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01],
            &[0x86, 0x0a],
            b"http://a/o",
        ]
        .concat();
        assert_eq!(der, expected);
        assert!(authority_info_access_der("http://é").is_err());
    }

    #[test]
    fn no_pointers_add_nothing() {
        let mut params = CertificateParams::default();
        RevocationPointers::NONE.apply(&mut params).unwrap();
        assert!(params.crl_distribution_points.is_empty());
        assert!(params.custom_extensions.is_empty());
    }
}
