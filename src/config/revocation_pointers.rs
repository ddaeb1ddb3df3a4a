//! `--leaf-revocation-pointers`: which revocation pointers leaves carry, and
//! `--leaf-revocation-pointer-url`: the base URL they start with (else `--public-url`).

use clap::ValueEnum;

use super::ConfigError;
use crate::domain::RevocationPointerSettings;
use crate::gateway::PublicUrl;

/// A revocation pointer leaves may carry (`--leaf-revocation-pointers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RevocationPointer {
    /// A CRL Distribution Points extension: `{base}/api/dbcert/v1/groups/{groupId}/crl/{generation}`.
    Crl,
    /// An Authority Information Access extension (OCSP): `{base}/api/dbcert/v1/groups/{groupId}/ocsp`.
    Ocsp,
}

/// Parses one of `--leaf-revocation-pointers`: spaces around it and any case accepted, as in the
/// other lists.
pub(super) fn parse_revocation_pointer(text: &str) -> Result<RevocationPointer, String> {
    RevocationPointer::from_str(text.trim(), true)
        .map_err(|_| format!("unknown revocation pointer {text:?} (use crl, ocsp)"))
}

/// The revocation pointers of leaves: none unless asked for, and then on
/// `--leaf-revocation-pointer-url` when given, else on `--public-url`. A pointer URL without
/// pointers would do nothing: refused, as pointers without either URL are.
pub(super) fn leaf_revocation_pointers(
    pointers: &[RevocationPointer],
    pointer_url: Option<&PublicUrl>,
    public_url: Option<&PublicUrl>,
) -> Result<Option<RevocationPointerSettings>, ConfigError> {
    if pointers.is_empty() {
        return match pointer_url {
            Some(_) => Err(ConfigError::RevocationPointerUrlWithoutPointers),
            None => Ok(None),
        };
    }
    let base_url = pointer_url
        .or(public_url)
        .ok_or(ConfigError::RevocationPointersWithoutUrl)?;
    Ok(Some(RevocationPointerSettings {
        base_url: base_url.as_str().to_owned(),
        crl: pointers.contains(&RevocationPointer::Crl),
        ocsp: pointers.contains(&RevocationPointer::Ocsp),
    }))
}
