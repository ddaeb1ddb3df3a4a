//! `dbcert rotate-master-key`: re-seals every project CA key and the master key check under a
//! new master key, in place, while replicas holding both keys keep serving. Prints counts and
//! key ids, never keys.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::app::read_master_key_file;
use crate::config::RotateMasterKeyArgs;
use crate::domain::{Keyring, RotationReport, rotate_master_key};
use crate::storage;

/// Runs one rotation pass; exits 0 when everything is sealed under the new key.
pub async fn run(args: RotateMasterKeyArgs) -> ExitCode {
    match rotate(&args).await {
        Ok(report) => {
            println!(
                "resealed={} already_current={} unopenable={} changed_concurrently={} check_resealed={}",
                report.resealed,
                report.already_current,
                report.unopenable.len(),
                report.changed_concurrently,
                report.check_resealed
            );
            for project_id in &report.unopenable {
                println!("unopenable project ca key: {project_id}");
            }
            if report.is_complete() {
                println!("every ca key is sealed under the new master key");
                ExitCode::SUCCESS
            } else {
                println!("rotation incomplete: run it again (see the lines above)");
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("rotate-master-key failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn rotate(args: &RotateMasterKeyArgs) -> anyhow::Result<RotationReport> {
    let new = read_master_key_file(&args.new_master_key_file)?;
    let old = args
        .old_master_key_file
        .iter()
        .map(|path| read_master_key_file(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keyring = Keyring::new(new, old).context("the old and the new master key are the same")?;
    println!(
        "new master key id {}; old key ids {}",
        keyring.primary().id_hex(),
        keyring
            .keys()
            .skip(1)
            .map(|k| k.id_hex())
            .collect::<Vec<_>>()
            .join(",")
    );
    let url = args.database_url();
    let store = storage::open(&url)
        .await
        .with_context(|| format!("failed to open the store at {}", storage::redact_url(&url)))?;
    Ok(rotate_master_key(store.as_ref(), &keyring).await?)
}
