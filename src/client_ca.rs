//! The client-CA guard of mutual TLS: the CA file that gRPC client certificates must chain to
//! may hold no project CA of the store.
//!
//! dbcert's project CAs sign the certificates of database users, which any GROUP_OWNER can have
//! issued for any MANAGED username. If the gRPC listener trusted one of those CAs, a
//! certificate issued for a database user would pass the mutual TLS handshake, and only the
//! principal rule would stand between it and an API key's roles. The principal rule already
//! asks for a marker the Atlas leaf profile never carries (`tls::API_KEY_URI_PREFIX`); this
//! guard keeps the two trust domains apart as well, so neither mistake alone is enough: the
//! server refuses to start, and a SIGHUP reload is refused (the old configuration stays), while
//! the client-CA file holds a project CA.
//!
//! Certificates are compared by their subject public key (SubjectPublicKeyInfo), so a project
//! CA re-encoded or re-signed with the same key is caught as well as an exact copy. Every
//! project CA is compared, those of deleted projects included (the certificates they issued
//! may still be valid), and every CA each project has had (rotated-out CAs still sign the
//! certificates they issued).

use std::path::Path;

use rustls_pki_types::CertificateDer;

use crate::domain::{ProjectId, Store, StoreError};

/// Project CAs read per store query while walking them all.
const BATCH: u32 = 500;

/// Why a client-CA file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCaError {
    /// The file holds a project CA of the store.
    #[error(
        "the client CA file {path} holds the CA of project {project_id} (certificate {position} \
         in the file): certificates dbcert issues for database users must never authenticate \
         to dbcert; remove that CA from --grpc-client-ca-file (DBCERT_GRPC_CLIENT_CA_FILE)"
    )]
    ProjectCa {
        /// The file.
        path: String,
        /// The project whose CA it is.
        project_id: ProjectId,
        /// The certificate's position in the file, from 1.
        position: usize,
    },
    /// The project CAs could not be read, so the file could not be checked.
    #[error("cannot check the client CA file {path} against the project CAs")]
    Store {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

/// Refuses `client_cas` (read from `path`) when one of them is a project CA of `store`.
pub async fn refuse_project_cas(
    store: &dyn Store,
    path: &Path,
    client_cas: &[CertificateDer<'_>],
) -> Result<(), ClientCaError> {
    let path_text = || path.display().to_string();
    // A certificate that does not parse cannot be compared; rustls will not trust it either.
    let keys: Vec<Option<Vec<u8>>> = client_cas
        .iter()
        .map(|der| subject_public_key(der.as_ref()))
        .collect();
    // Every generation of every project's CAs, in (project, generation) order.
    let mut after: Option<(ProjectId, u32)> = None;
    loop {
        let batch = store
            .project_ca_certificates(after.as_ref().map(|(id, g)| (id, *g)), BATCH)
            .await
            .map_err(|source| ClientCaError::Store {
                path: path_text(),
                source,
            })?;
        let Some((last, last_generation, _)) = batch.last() else {
            return Ok(());
        };
        after = Some((last.clone(), *last_generation));
        for (project_id, _generation, ca_der) in batch {
            let ca_key = subject_public_key(&ca_der);
            let found = keys.iter().zip(client_cas).position(|(key, der)| {
                der.as_ref() == ca_der.as_slice() || (key.is_some() && *key == ca_key)
            });
            if let Some(index) = found {
                return Err(ClientCaError::ProjectCa {
                    path: path_text(),
                    project_id,
                    position: index + 1,
                });
            }
        }
    }
}

/// The DER of a certificate's SubjectPublicKeyInfo.
fn subject_public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.public_key().raw.to_vec())
}
