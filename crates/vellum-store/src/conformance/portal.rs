//! Conformance: Admin Portal links and sessions.

use vellum_core::operator::{Email, SessionToken, SessionTokenHash};
use vellum_core::portal::{NewPortalLink, PortalIntent};

use super::*;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).unwrap()
}

fn hash(byte: u8) -> SessionTokenHash {
    SessionToken::from_random_bytes([byte; 32]).hash()
}

fn link(organization_id: OrganizationId, secret: u8, user: Option<&str>, created: i64) -> NewPortalLink {
    NewPortalLink {
        organization_id,
        intent: PortalIntent::AuditLogs,
        external_user_id: user.map(str::to_owned),
        return_url: Some("https://app.test/settings".into()),
        success_url: None,
        it_contact_emails: vec![Email::parse("it@customer.test").unwrap()],
        secret_hash: hash(secret),
        created_at: at(created),
        expires_at: at(created + 300_000),
    }
}

/// A link opens once, before it expires, into a session of its organization and intent;
/// revoking by `external_user_id` ends its sessions and stops unopened links.
pub async fn portal_links_open_once_and_revoke_with_their_sessions(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Portal")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    let created = store
        .create_portal_link(link(organization, 1, Some("admin_1"), 1_000))
        .await
        .unwrap();
    assert_eq!(created.organization_id, organization);
    assert_eq!(created.it_contact_emails[0].as_str(), "it@customer.test");

    // Expired, unknown and spent links open nothing.
    assert_eq!(
        store
            .open_portal_link(hash(1), hash(50), at(301_000), at(400_000))
            .await
            .unwrap(),
        None,
        "a link expires five minutes after it was made"
    );
    assert_eq!(
        store
            .open_portal_link(hash(9), hash(50), at(2_000), at(400_000))
            .await
            .unwrap(),
        None
    );
    let session = store
        .open_portal_link(hash(1), hash(50), at(2_000), at(3_602_000))
        .await
        .unwrap()
        .expect("a fresh link opens");
    assert_eq!(session.link, created);
    assert_eq!(
        store
            .open_portal_link(hash(1), hash(51), at(2_001), at(400_000))
            .await
            .unwrap(),
        None,
        "a link opens once"
    );
    assert_eq!(
        store.find_portal_session(hash(50), at(3_000)).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.find_portal_session(hash(51), at(3_000)).await.unwrap(), None);
    assert_eq!(
        store.find_portal_session(hash(50), at(3_602_000)).await.unwrap(),
        None,
        "a session ends at its expiry"
    );

    // Revocation: only the named user's links of that organization.
    store
        .create_portal_link(link(organization, 2, Some("admin_1"), 1_000))
        .await
        .unwrap();
    store
        .create_portal_link(link(organization, 3, Some("admin_2"), 1_000))
        .await
        .unwrap();
    store
        .create_portal_link(link(other, 4, Some("admin_1"), 1_000))
        .await
        .unwrap();
    let admin_2 = store
        .open_portal_link(hash(3), hash(53), at(2_000), at(3_602_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .revoke_portal_links(organization, "admin_1".into(), at(4_000))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.find_portal_session(hash(50), at(4_001)).await.unwrap(), None);
    assert_eq!(
        store
            .open_portal_link(hash(2), hash(52), at(4_001), at(400_000))
            .await
            .unwrap(),
        None,
        "a revoked link does not open"
    );
    assert_eq!(
        store.find_portal_session(hash(53), at(4_001)).await.unwrap(),
        Some(admin_2),
        "another user's session stays"
    );
    assert!(
        store
            .open_portal_link(hash(4), hash(54), at(4_001), at(400_000))
            .await
            .unwrap()
            .is_some(),
        "another organization's link stays"
    );
    assert_eq!(
        store
            .revoke_portal_links(organization, "admin_1".into(), at(5_000))
            .await
            .unwrap(),
        0,
        "revoking twice revokes nothing more"
    );

    // Signing out ends one session; a deleted organization ends them all.
    store.end_portal_session(hash(54)).await.unwrap();
    assert_eq!(store.find_portal_session(hash(54), at(5_000)).await.unwrap(), None);
    store.delete_organization(organization).await.unwrap();
    assert_eq!(store.find_portal_session(hash(53), at(5_000)).await.unwrap(), None);
    assert!(matches!(
        store.create_portal_link(link(organization, 5, None, 6_000)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .revoke_portal_links(organization, "admin_2".into(), at(6_000))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Many callers opening one link at once: exactly one gets a session.
pub async fn concurrent_opens_spend_a_link_once(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Race")).await.unwrap().id;
    store
        .create_portal_link(link(organization, 1, None, 1_000))
        .await
        .unwrap();
    let opens = (0..8u8).map(|caller| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .open_portal_link(hash(1), hash(100 + caller), at(2_000), at(3_602_000))
                .await
                .unwrap()
        })
    });
    let mut opened = 0;
    for open in opens.collect::<Vec<_>>() {
        opened += usize::from(open.await.unwrap().is_some());
    }
    assert_eq!(opened, 1);
}
