//! Conformance: The verifiable logs: roots, proofs, frontiers and checkpoints against the core's Merkle math.

use super::*;

/// The leaf hash the core computes for a stored event.
pub fn leaf_of(event: &vellum_core::Event) -> vellum_core::merkle::Hash {
    vellum_core::merkle::leaf_hash(&vellum_core::canonical::canonical_event_bytes(event))
}

/// Every root, inclusion proof, consistency proof and frontier the backend serves, at every size
/// a log passes through, agrees with the core's Merkle math over the events it returned; signed
/// checkpoints verify and are never re-signed without growth.
pub async fn log_proofs_and_checkpoints_agree_with_the_core_math(store: Arc<impl Store>) {
    use vellum_core::merkle;
    let organization = store.create_organization(new_organization("Log")).await.unwrap().id;
    let signer = Arc::new(vellum_core::checkpoint::NoteSigner::new("vellum-conformance", &[3; 32]).unwrap());
    let verifier = vellum_core::checkpoint::NoteVerifier::from_public_key(signer.name(), &signer.public_key()).unwrap();
    let origin = "conformance.example/log".to_owned();

    let empty = store
        .log_checkpoint(organization, Arc::clone(&signer), origin.clone())
        .await
        .unwrap();
    assert_eq!(empty.checkpoint.size, 0);
    assert_eq!(empty.checkpoint.root, merkle::empty_root());

    let mut events: Vec<vellum_core::Event> = Vec::new();
    let mut sizes = Vec::new();
    let mut checkpoints = vec![empty];
    // Batches of 1, 2, 3, … leaves, so that appends start and end at every kind of position.
    let mut batch = 1;
    while events.len() < 140 {
        let new: Vec<NewEvent> = (0..batch)
            .map(|n| event_at(1_000 + n, "log.appended", &format!("u{n}"), &[("doc", "d")]))
            .collect();
        let stored = appended(&*store, organization, new).await;
        for event in &stored {
            assert_eq!(event.log_index, events.len() as u64);
            events.push(event.clone());
        }
        sizes.push(events.len() as u64);
        batch = batch % 7 + 1;

        let leaves: Vec<merkle::Hash> = events.iter().map(leaf_of).collect();
        let size = events.len() as u64;
        let root = merkle::root_of(&leaves);
        assert_eq!(
            store.log_tree_head(organization).await.unwrap(),
            crate::TreeHead { size, root }
        );

        let signed = store
            .log_checkpoint(organization, Arc::clone(&signer), origin.clone())
            .await
            .unwrap();
        assert_eq!((signed.checkpoint.size, signed.checkpoint.root), (size, root));
        assert_eq!(verifier.verify(&signed.note).unwrap(), signed.checkpoint);
        let again = store
            .log_checkpoint(organization, Arc::clone(&signer), origin.clone())
            .await
            .unwrap();
        assert_eq!(again.note, signed.note, "a log that did not grow is not signed again");
        checkpoints.push(signed);

        // Inclusion of a spread of leaves, in this tree and in the first one that held them.
        for index in [0, size / 3, size / 2, size - 1] {
            let event = &events[index as usize];
            for tree_size in [None, Some(index + 1)] {
                let proof = store
                    .log_inclusion_proof(organization, event.id, tree_size)
                    .await
                    .unwrap();
                let tree = tree_size.unwrap_or(size);
                assert_eq!((proof.leaf_index, proof.tree_size), (index, tree));
                assert!(
                    merkle::verify_inclusion(
                        index,
                        tree,
                        &leaves[index as usize],
                        &proof.hashes,
                        &merkle::root_of(&leaves[..tree as usize])
                    ),
                    "inclusion of {index} in {tree}"
                );
            }
        }
        // Consistency from every earlier size the log passed through.
        for &first in &sizes {
            let proof = store.log_consistency_proof(organization, first, size).await.unwrap();
            let first_root = merkle::root_of(&leaves[..first as usize]);
            assert!(
                merkle::verify_consistency(first, size, &first_root, &root, &proof),
                "consistency {first} -> {size}"
            );
        }
        // The frontier is the complete subtrees of the binary decomposition of the size.
        let frontier = store.log_frontier(organization, size).await.unwrap();
        let mut expected = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                expected.push(merkle::root_of(
                    &leaves[start as usize..(start + (1 << level)) as usize],
                ));
                start += 1 << level;
            }
        }
        assert_eq!(frontier, expected, "frontier at {size}");
    }
    let size = events.len() as u64;
    assert_eq!(store.log_first_inconsistent_node(organization).await.unwrap(), None);

    // Requests outside the log are refused as input errors, not served.
    let last = events.last().unwrap().id;
    for error in [
        store
            .log_inclusion_proof(organization, last, Some(size + 1))
            .await
            .unwrap_err(),
        store
            .log_inclusion_proof(organization, last, Some(size - 1))
            .await
            .unwrap_err(),
        store
            .log_consistency_proof(organization, 2, size + 1)
            .await
            .unwrap_err(),
        store.log_consistency_proof(organization, 5, 4).await.unwrap_err(),
        store.log_frontier(organization, size + 1).await.unwrap_err(),
        store.log_entries(organization, 0, size + 1).await.unwrap_err(),
    ] {
        assert!(matches!(error, StoreError::InvalidInput { .. }), "{error:?}");
    }
    assert!(matches!(
        store.log_consistency_proof(organization, 0, size).await.unwrap(),
        proof if proof.is_empty()
    ));
    let other = store
        .create_organization(new_organization("Other log"))
        .await
        .unwrap()
        .id;
    assert!(matches!(
        store.log_inclusion_proof(other, last, None).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));

    // Entries and the raw scan return exactly what was appended, with the leaves stored for it.
    let entries = store.log_entries(organization, 10, 20).await.unwrap();
    let expected: Vec<crate::LogEntry> = events[10..20].iter().cloned().map(crate::LogEntry::Event).collect();
    assert_eq!(entries, expected);
    let crate::LogScan {
        records,
        tree_size: scanned_size,
        checkpoint_note: note,
    } = store.log_scan(organization, 130, 100).await.unwrap();
    assert_eq!(scanned_size, size);
    assert_eq!(note.as_deref(), Some(checkpoints.last().unwrap().note.as_str()));
    assert_eq!(records.len() as u64, size - 130);
    for (record, event) in records.iter().zip(&events[130..]) {
        assert_eq!(record.log_index, event.log_index as i64);
        assert_eq!(record.event_id, Some(event.id));
        assert_eq!(record.event.as_ref().unwrap(), event);
        assert_eq!(record.stored_leaf, Some(leaf_of(event)));
    }

    // A deleted organization's log outlives it: still listed, scanned and verifiable, but no
    // longer served or signed.
    assert_eq!(
        store.log_organizations().await.unwrap(),
        vec![crate::LogOwner {
            organization_id: organization,
            deleted: false
        }],
        "an organization without events or checkpoints has no log"
    );
    store.delete_organization(organization).await.unwrap();
    assert_eq!(
        store.log_organizations().await.unwrap(),
        vec![crate::LogOwner {
            organization_id: organization,
            deleted: true
        }]
    );
    assert_eq!(store.log_tree_head(organization).await.unwrap().size, size);
    assert_eq!(
        store.log_frontier(organization, size).await.unwrap().len() as u32,
        size.count_ones()
    );
    assert_eq!(store.log_first_inconsistent_node(organization).await.unwrap(), None);
    assert!(matches!(
        store.log_checkpoint(organization, signer, origin).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(matches!(
        store.log_entries(organization, 0, 1).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

/// Checkpoints of one log signed concurrently are all of one consistent history.
pub async fn concurrent_checkpoints_are_consistent(store: Arc<impl Store>) {
    use vellum_core::merkle;
    let organization = store.create_organization(new_organization("Signing")).await.unwrap().id;
    let signer = Arc::new(vellum_core::checkpoint::NoteSigner::new("vellum-conformance", &[4; 32]).unwrap());
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = Arc::clone(&store);
        let signer = Arc::clone(&signer);
        tasks.push(tokio::spawn(async move {
            appended(&*store, organization, vec![event_at(n, "a", "u", &[])]).await;
            store
                .log_checkpoint(organization, signer, "origin".into())
                .await
                .unwrap()
        }));
    }
    let mut signed = Vec::new();
    for task in tasks {
        signed.push(task.await.unwrap().checkpoint);
    }
    let crate::TreeHead { size, root } = store.log_tree_head(organization).await.unwrap();
    assert_eq!(size, 16);
    for checkpoint in signed {
        let proof = store
            .log_consistency_proof(organization, checkpoint.size, size)
            .await
            .unwrap();
        assert!(merkle::verify_consistency(
            checkpoint.size,
            size,
            &checkpoint.root,
            &root,
            &proof
        ));
    }
}
