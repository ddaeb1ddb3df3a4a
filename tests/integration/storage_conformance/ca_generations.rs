//! The conformance cases of project CA generations (rotation): the compare-and-set that makes
//! racing rotations end with one new CA, the trust bundle's window, and the walks of master
//! key rotation and the client-CA check over every generation.

use std::sync::Arc;

use dbcert::domain::{
    Actor, AuditAction, AuditEvent, AuditOutcome, CertificateRecord, KeyType, ProjectId, Store,
    StoreError, StoredCa,
};

use super::{
    assert_conflict, certificate, insert_ca, new_org, new_project, now, record_with_event, secs,
};

fn generation(generation: u32, tag: u8) -> StoredCa {
    StoredCa {
        generation,
        cert_der: vec![0x30, tag, generation as u8, 9],
        sealed_key: Some(vec![tag; 40]),
    }
}

fn rotated_event(project_id: &ProjectId, tag: u8) -> AuditEvent {
    AuditEvent {
        id: format!("{:016x}{:08x}", rand::random::<u64>(), u32::from(tag)),
        at: now(),
        actor: Actor::System,
        client_address: None,
        org_id: None,
        project_id: Some(project_id.clone()),
        action: AuditAction::ProjectCaRotated,
        target: None,
        serial: None,
        outcome: AuditOutcome::Success,
    }
}

fn generations(cas: &[StoredCa]) -> Vec<u32> {
    cas.iter().map(|ca| ca.generation).collect()
}

/// A rotation moves the issuing generation only from the one it expects; every CA is kept.
pub(super) async fn rotation_is_compare_and_set(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "rotate").await;
    let id = &project.id;
    // No CA yet: nothing to rotate from.
    assert_conflict(
        store
            .rotate_project_ca(
                id,
                &generation(2, 1),
                KeyType::EcdsaP256,
                now(),
                &rotated_event(id, 1),
            )
            .await,
    );
    insert_ca(store.as_ref(), id, &generation(1, 1), now())
        .await
        .unwrap();
    assert_eq!(store.project_ca_generation(id).await.unwrap(), Some(1));
    store
        .rotate_project_ca(
            id,
            &generation(2, 2),
            KeyType::EcdsaP256,
            now(),
            &rotated_event(id, 2),
        )
        .await
        .unwrap();
    // A rotation that read generation 1 (or skips one) changes nothing.
    for stale in [generation(2, 3), generation(4, 3)] {
        assert_conflict(
            store
                .rotate_project_ca(id, &stale, KeyType::Rsa4096, now(), &rotated_event(id, 3))
                .await,
        );
    }
    let issuing = store.project_ca(id).await.unwrap().unwrap();
    assert_eq!(issuing.generation, 2);
    assert_eq!(issuing.cert_der, generation(2, 2).cert_der);
    assert_eq!(store.project_ca_generation(id).await.unwrap(), Some(2));
    assert_eq!(
        store.user_security(id).await.unwrap().ca_key_type,
        KeyType::EcdsaP256,
        "the setting follows the issuing CA"
    );
    let all = store.project_cas(id).await.unwrap();
    assert_eq!(generations(&all), vec![2, 1], "newest first");
    assert_eq!(all[1].cert_der, generation(1, 1).cert_der);
    assert_eq!(all[1].sealed_key, generation(1, 1).sealed_key);
    // A deleted project is not rotated, and every generation's key is destroyed.
    assert!(store.delete_project(id, now()).await.unwrap());
    assert_conflict(
        store
            .rotate_project_ca(
                id,
                &generation(3, 4),
                KeyType::Rsa4096,
                now(),
                &rotated_event(id, 4),
            )
            .await,
    );
    let all = store.project_cas(id).await.unwrap();
    assert_eq!(generations(&all), vec![2, 1]);
    assert!(all.iter().all(|ca| ca.sealed_key.is_none()), "{all:?}");
}

/// Rotations racing from the same generation: exactly one wins.
pub(super) async fn concurrent_rotations_have_one_winner(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "rotate-race").await;
    insert_ca(store.as_ref(), &project.id, &generation(1, 0), now())
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for tag in 1..=8u8 {
        let (store, id) = (store.clone(), project.id.clone());
        tasks.spawn(async move {
            let event = rotated_event(&id, tag);
            let result = store
                .rotate_project_ca(&id, &generation(2, tag), KeyType::Rsa4096, now(), &event)
                .await;
            (tag, result)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (tag, Ok(())) => winners.push(tag),
            (_, Err(StoreError::Conflict)) => {}
            (_, Err(other)) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins: {winners:?}");
    let all = store.project_cas(&project.id).await.unwrap();
    assert_eq!(generations(&all), vec![2, 1]);
    assert_eq!(all[0].cert_der, generation(2, winners[0]).cert_der);
}

/// The bundle: the issuing CA, and an older one while a certificate it signed is unexpired.
pub(super) async fn trust_bundle_keeps_older_cas_while_their_certificates_live(
    store: Arc<dyn Store>,
) {
    let org = new_org(store.as_ref()).await;
    let project = new_project(store.as_ref(), &org, "bundle").await;
    let id = &project.id;
    let t = now();
    assert!(store.trusted_project_cas(id, t).await.unwrap().is_empty());
    insert_ca(store.as_ref(), id, &generation(1, 1), t)
        .await
        .unwrap();
    assert_eq!(
        generations(&store.trusted_project_cas(id, t).await.unwrap()),
        vec![1]
    );
    // Generation 1 signs one certificate expiring in a day.
    record_with_event(store.as_ref(), &certificate(&project, "alice", 11, t))
        .await
        .unwrap();
    for (g, tag) in [(2, 2), (3, 3)] {
        store
            .rotate_project_ca(
                id,
                &generation(g, tag),
                KeyType::Rsa4096,
                t,
                &rotated_event(id, tag),
            )
            .await
            .unwrap();
    }
    // Generation 2 signed nothing: it leaves the bundle at once; 1 stays for its certificate.
    assert_eq!(
        generations(&store.trusted_project_cas(id, t).await.unwrap()),
        vec![3, 1]
    );
    let by_gen2 = CertificateRecord {
        ca_generation: 2,
        ..certificate(&project, "bob", 22, t)
    };
    record_with_event(store.as_ref(), &by_gen2).await.unwrap();
    assert_eq!(
        generations(&store.trusted_project_cas(id, t).await.unwrap()),
        vec![3, 2, 1]
    );
    // A day later both certificates have expired: only the issuing CA is left.
    let later = t + secs(86_400);
    assert_eq!(
        generations(&store.trusted_project_cas(id, later).await.unwrap()),
        vec![3]
    );
    assert_eq!(
        generations(&store.project_cas(id).await.unwrap()),
        vec![3, 2, 1]
    );
}

/// Master key rotation and the client-CA check walk every generation of every project.
pub(super) async fn ca_walks_cover_every_generation(store: Arc<dyn Store>) {
    let org = new_org(store.as_ref()).await;
    let mut expected = Vec::new();
    for tag in 1..=3u8 {
        let project = new_project(store.as_ref(), &org, &format!("walk-{tag}")).await;
        insert_ca(store.as_ref(), &project.id, &generation(1, tag), now())
            .await
            .unwrap();
        expected.push((project.id.clone(), 1, generation(1, tag)));
        for g in 2..=tag as u32 {
            store
                .rotate_project_ca(
                    &project.id,
                    &generation(g, tag),
                    KeyType::Rsa4096,
                    now(),
                    &rotated_event(&project.id, tag),
                )
                .await
                .unwrap();
            expected.push((project.id.clone(), g, generation(g, tag)));
        }
    }
    expected.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));

    let mut keys = Vec::new();
    let mut after: Option<(ProjectId, u32)> = None;
    loop {
        let batch = store
            .sealed_ca_keys(after.as_ref().map(|(id, g)| (id, *g)), 2)
            .await
            .unwrap();
        assert!(batch.len() <= 2);
        let Some((last, g, _)) = batch.last() else {
            break;
        };
        after = Some((last.clone(), *g));
        keys.extend(batch);
    }
    let want: Vec<_> = expected
        .iter()
        .map(|(id, g, ca)| (id.clone(), *g, ca.sealed_key.clone().unwrap()))
        .collect();
    assert_eq!(keys, want);

    let mut certs = Vec::new();
    let mut after: Option<(ProjectId, u32)> = None;
    loop {
        let batch = store
            .project_ca_certificates(after.as_ref().map(|(id, g)| (id, *g)), 2)
            .await
            .unwrap();
        let Some((last, g, _)) = batch.last() else {
            break;
        };
        after = Some((last.clone(), *g));
        certs.extend(batch);
    }
    let want: Vec<_> = expected
        .iter()
        .map(|(id, g, ca)| (id.clone(), *g, ca.cert_der.clone()))
        .collect();
    assert_eq!(certs, want);

    // Re-sealing one generation leaves the others as they were.
    let (id, g, ca) = &expected[expected.len() - 1];
    let old = ca.sealed_key.clone().unwrap();
    assert!(
        !store
            .replace_sealed_ca_key(id, *g, &[0; 3], &[7; 40])
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_sealed_ca_key(id, *g, &old, &[7; 40])
            .await
            .unwrap()
    );
    let all = store.project_cas(id).await.unwrap();
    assert_eq!(all[0].sealed_key, Some(vec![7; 40]));
    assert!(
        all[1..]
            .iter()
            .all(|other| other.sealed_key.as_deref() == Some(&old[..]))
    );
}
