//! The master key check at start and master key rotation: re-sealing every CA key and the
//! check value under the keyring's primary key.
//!
//! Every value is replaced on its own, atomically and only if it still holds what was read
//! (compare-and-set), so an interrupted rotation leaves each value sealed under either key (both
//! in the keyring of every replica during a rotation) and running it again finishes the job.

use base64::Engine as _;
use tracing::{info, warn};

use super::ca_rotation::ca_key_context;
use super::model::ProjectId;
use super::secret::{Keyring, SealError};
use super::store::{Store, StoreError};

/// The meta key holding a value sealed under the master key, to detect a wrong key at start.
pub const MASTER_KEY_CHECK_META: &str = "master_key_check";
/// The plaintext of the check value.
const CHECK_PLAINTEXT: &[u8] = b"dbcert";
/// CA keys read per batch by a rotation.
const ROTATION_BATCH: u32 = 100;

/// Failures of the master key check and of a rotation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The stored check value is not base64.
    #[error("corrupt master key check in the store")]
    CorruptCheck,
    /// Sealing failed.
    #[error("sealing failed")]
    Seal(#[from] SealError),
    /// The store failed.
    #[error("store failure")]
    Store(#[from] StoreError),
    /// No key of the keyring opens the store's check value.
    #[error("the master key does not match the one this store was created with")]
    WrongKey,
}

/// What a rotation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// CA keys re-sealed under the primary key by this run.
    pub resealed: u64,
    /// CA keys already sealed under the primary key.
    pub already_current: u64,
    /// CA keys no key of the keyring opens (left as they are).
    pub unopenable: Vec<ProjectId>,
    /// CA keys changed by someone else between read and write (run again).
    pub changed_concurrently: u64,
    /// Whether the check value was re-sealed by this run.
    pub check_resealed: bool,
}

impl RotationReport {
    /// Whether every CA key and the check value are now sealed under the primary key.
    pub fn is_complete(&self) -> bool {
        self.unopenable.is_empty() && self.changed_concurrently == 0
    }
}

/// Refuses a keyring none of whose keys opens the store's check value; on an empty store,
/// records one sealed under the primary key.
pub async fn check_master_key(store: &dyn Store, keyring: &Keyring) -> Result<(), RotationError> {
    let candidate = encode(&keyring.seal(MASTER_KEY_CHECK_META, CHECK_PLAINTEXT)?);
    let stored = store
        .put_meta_if_absent(MASTER_KEY_CHECK_META, &candidate)
        .await?;
    let sealed = decode(&stored)?;
    keyring
        .open(MASTER_KEY_CHECK_META, &sealed)
        .map_err(|_| RotationError::WrongKey)?;
    if !keyring.is_current(&sealed) {
        info!(
            primary_key_id = %keyring.primary().id_hex(),
            "the store's master key check is sealed under another key of the keyring: a rotation is pending or in progress"
        );
    }
    Ok(())
}

/// Re-seals the check value and every project CA key (every generation's) under the keyring's
/// primary key. The
/// check value goes first, so once a rotation has started a replica holding only the old key
/// refuses to start rather than failing on the CA keys already re-sealed.
pub async fn rotate_master_key(
    store: &dyn Store,
    keyring: &Keyring,
) -> Result<RotationReport, RotationError> {
    let mut report = RotationReport::default();
    check_master_key(store, keyring).await?;
    let stored = store
        .meta(MASTER_KEY_CHECK_META)
        .await?
        .ok_or(RotationError::WrongKey)?;
    let sealed = decode(&stored)?;
    if !keyring.is_current(&sealed) {
        let resealed = encode(&keyring.seal(MASTER_KEY_CHECK_META, CHECK_PLAINTEXT)?);
        if store
            .replace_meta(MASTER_KEY_CHECK_META, &stored, &resealed)
            .await?
        {
            report.check_resealed = true;
        } else {
            report.changed_concurrently += 1;
        }
    }

    // Every generation of every project's CAs, in (project, generation) order.
    let mut after: Option<(ProjectId, u32)> = None;
    loop {
        let batch = store
            .sealed_ca_keys(after.as_ref().map(|(id, g)| (id, *g)), ROTATION_BATCH)
            .await?;
        let Some((last, last_generation, _)) = batch.last() else {
            break;
        };
        after = Some((last.clone(), *last_generation));
        for (project_id, generation, sealed) in batch {
            if keyring.is_current(&sealed) {
                report.already_current += 1;
                continue;
            }
            let context = ca_key_context(&project_id, generation);
            let Ok(key) = keyring.open(&context, &sealed) else {
                warn!(%project_id, generation, "no key of the keyring opens this project's ca key");
                report.unopenable.push(project_id);
                continue;
            };
            let resealed = keyring.seal(&context, key.secret_der())?;
            drop(key);
            if store
                .replace_sealed_ca_key(&project_id, generation, &sealed, &resealed)
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_concurrently += 1;
            }
        }
    }
    info!(
        primary_key_id = %keyring.primary().id_hex(),
        resealed = report.resealed,
        already_current = report.already_current,
        unopenable = report.unopenable.len(),
        changed_concurrently = report.changed_concurrently,
        check_resealed = report.check_resealed,
        "master key rotation pass finished"
    );
    Ok(report)
}

fn encode(sealed: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

fn decode(text: &str) -> Result<Vec<u8>, RotationError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| RotationError::CorruptCheck)
}
