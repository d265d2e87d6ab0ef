//! The key store on both backends: sealing, opening, erasure with a tombstone, rotation.

use eventlog::EventStore;
use keystore::{Error, KeyStore, MasterKey};

async fn each_backend(f: impl AsyncFn(KeyStore, EventStore, MasterKey)) {
    for db in testkit::all_backends() {
        let store = EventStore::connect(&db.url).await.unwrap();
        let master = MasterKey::generate();
        let ks = KeyStore::connect(&store, master.clone()).await.unwrap();
        f(ks, store, master).await;
        drop(db);
    }
}

#[tokio::test]
async fn sealed_fields_open_only_for_their_subject_and_field() {
    each_backend(async |ks, _, _| {
        let s = ks.seal("resident:1", "display_name", "Ærø Østergård").await.unwrap();
        assert!(s.0.starts_with("sealed:v1:"));
        assert!(!s.0.contains("Ærø"));
        assert_eq!(ks.unseal("resident:1", "display_name", &s).await.unwrap().as_deref(), Some("Ærø Østergård"));
        assert!(matches!(ks.unseal("resident:1", "notes", &s).await, Err(Error::Corrupt { .. })));
        ks.seal("resident:2", "display_name", "x").await.unwrap();
        assert!(matches!(ks.unseal("resident:2", "display_name", &s).await, Err(Error::Corrupt { .. })));
    })
    .await;
}

#[tokio::test]
async fn erasure_makes_every_copy_unreadable_and_blocks_new_keys() {
    each_backend(async |ks, _, _| {
        let a = ks.seal("pilot:9", "personal", "a@example.org").await.unwrap();
        let b = ks.seal("pilot:9", "personal", "+45 12345678").await.unwrap();
        assert!(ks.erase("pilot:9").await.unwrap());
        assert_eq!(ks.unseal("pilot:9", "personal", &a).await.unwrap(), None);
        assert_eq!(ks.unseal("pilot:9", "personal", &b).await.unwrap(), None);
        assert!(!ks.erase("pilot:9").await.unwrap(), "erasing twice is harmless");
        assert!(matches!(ks.seal("pilot:9", "personal", "again").await, Err(Error::Erased(_))));
        assert!(ks.is_erased("pilot:9").await.unwrap());
        // Erasing a subject that never had a key still leaves a tombstone.
        ks.erase("pilot:10").await.unwrap();
        assert!(matches!(ks.seal("pilot:10", "personal", "x").await, Err(Error::Erased(_))));
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_seals_share_one_key() {
    each_backend(async |ks, _, _| {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let ks = ks.clone();
            tasks.push(tokio::spawn(async move { ks.seal("ride:1", "story", &format!("s{i}")).await.unwrap() }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let s = t.await.unwrap();
            assert_eq!(ks.unseal("ride:1", "story", &s).await.unwrap(), Some(format!("s{i}")));
        }
    })
    .await;
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_every_live_key() {
    each_backend(async |ks, store, old| {
        let s = ks.seal("resident:1", "display_name", "Ærø").await.unwrap();
        ks.erase("resident:2").await.unwrap();
        let new = MasterKey::generate();
        let rotated = KeyStore::connect(&store, new.clone()).await.unwrap();
        assert!(matches!(rotated.unseal("resident:1", "display_name", &s).await, Err(Error::WrongMasterKey(_))));
        assert_eq!(rotated.rewrap_from(&old).await.unwrap(), 1);
        assert_eq!(rotated.unseal("resident:1", "display_name", &s).await.unwrap().as_deref(), Some("Ærø"));
        assert!(matches!(ks.unseal("resident:1", "display_name", &s).await, Err(Error::WrongMasterKey(_))));
    })
    .await;
}

#[tokio::test]
async fn a_restored_backup_does_not_bring_an_erased_key_back() {
    for db in testkit::all_backends() {
        let store = EventStore::connect(&db.url).await.unwrap();
        let ledger = keystore::ErasureLedger::connect(&db.sibling("ledger")).await.unwrap();
        let master = MasterKey::generate();
        let (ks, _) =
            KeyStore::connect(&store, master.clone()).await.unwrap().with_ledger(ledger.clone()).await.unwrap();
        let master_id = master.id();
        let sealed = ks.seal("resident:7", "personal", "Ærø Østergård").await.unwrap();
        // The "backup": the wrapped key as it was before the erasure.
        let backup =
            store.fetch_texts("SELECT wrapped FROM keystore_keys WHERE subject = 'resident:7'", &[]).await.unwrap();
        ks.erase("resident:7").await.unwrap();
        assert_eq!(ks.unseal("resident:7", "personal", &sealed).await.unwrap(), None);
        // "Restore": the key row comes back from the backup.
        let wrapped = backup[0].clone();
        store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE keystore_keys SET wrapped = $1, master_key_id = $2, erased_at = NULL WHERE subject = 'resident:7'",
                        &[wrapped.into(), master_id.into()],
                    )
                    .await
                })
            })
            .await
            .unwrap();
        let restored = KeyStore::connect(&store, master.clone()).await.unwrap();
        assert_eq!(
            restored.unseal("resident:7", "personal", &sealed).await.unwrap().as_deref(),
            Some("Ærø Østergård"),
            "without the ledger the restore would bring the person back"
        );
        let (again, erased) = restored.with_ledger(ledger).await.unwrap();
        assert_eq!(erased, 1, "the ledger erased the restored key again");
        assert_eq!(again.unseal("resident:7", "personal", &sealed).await.unwrap(), None);
        drop(db);
    }
}

/// Replicas starting at once on a fresh database each open the key store: none fails on
/// creating its table (PostgreSQL's `IF NOT EXISTS` alone is not safe against that).
#[tokio::test]
async fn processes_opening_a_fresh_key_store_at_once_all_succeed() {
    for db in testkit::all_backends() {
        let open = || async {
            let store = EventStore::connect(&db.url).await.map_err(|e| e.to_string())?;
            KeyStore::connect(&store, MasterKey::generate()).await.map(drop).map_err(|e| e.to_string())
        };
        let opened = tokio::join!(open(), open(), open(), open(), open(), open());
        let opened = [opened.0, opened.1, opened.2, opened.3, opened.4, opened.5];
        assert!(opened.iter().all(Result::is_ok), "{}: {opened:?}", db.url);
    }
}

#[tokio::test]
async fn many_subjects_open_at_once_as_each_would_alone() {
    each_backend(async |ks, _, _| {
        // More subjects than one statement reads, so the batch spans several.
        let n = keystore::KEYS_AT_ONCE + 30;
        let mut sealed = Vec::new();
        for i in 0..n {
            let subject = format!("resident:{i}");
            let value =
                ks.seal_json(&subject, "personal", &serde_json::json!({ "name": format!("R{i}") })).await.unwrap();
            sealed.push((subject, value));
        }
        assert!(ks.erase("resident:7").await.unwrap());
        // A subject that never had a key, and one subject asked for twice.
        let never = domain::types::Sealed(sealed[1].1.0.clone());
        let mut asked: Vec<(&str, &str, &domain::types::Sealed)> =
            sealed.iter().map(|(s, v)| (s.as_str(), "personal", v)).collect();
        asked.push(("resident:none", "personal", &never));
        asked.push(("resident:3", "personal", &sealed[3].1));
        let opened: Vec<Option<serde_json::Value>> = ks.unseal_json_many(&asked).await.unwrap();
        assert_eq!(opened.len(), asked.len());
        for ((subject, field, value), got) in asked.iter().zip(&opened) {
            let alone: Option<serde_json::Value> = ks.unseal_json(subject, field, value).await.unwrap();
            assert_eq!(got, &alone, "{subject}");
        }
        assert_eq!(opened[7], None, "erased");
        assert_eq!(opened[n], None, "never keyed");
        assert_eq!(opened[n + 1], Some(serde_json::json!({ "name": "R3" })));
        // A value moved to another subject does not open: the batch fails as one call would.
        let moved = [("resident:2", "personal", &sealed[1].1)];
        assert!(matches!(ks.unseal_json_many::<serde_json::Value>(&moved).await, Err(Error::Corrupt { .. })));
        assert!(ks.unseal_json_many::<serde_json::Value>(&[]).await.unwrap().is_empty());
    })
    .await;
}
