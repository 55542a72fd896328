//! Conformance: API keys, operators and sessions.

use super::*;

/// Operators are created once per email (any case), found, listed and re-passworded; sessions
/// are found only until they expire, and end on sign-out or a password change.
pub async fn operators_and_sessions(store: Arc<impl Store>) {
    use vellum_core::operator::{Email, PasswordHash, SessionToken};

    let email = Email::parse("Admin@Example.com").unwrap();
    let hash = PasswordHash::from_stored("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into());
    let operator = store.create_operator(email.clone(), hash.clone()).await.unwrap();
    assert_eq!(operator.email.as_str(), "admin@example.com");
    let again = store
        .create_operator(Email::parse("ADMIN@example.com").unwrap(), hash.clone())
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.find_operator(email.clone()).await.unwrap(),
        Some(operator.clone())
    );
    assert_eq!(
        store
            .find_operator(Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
    let second = store
        .create_operator(Email::parse("second@example.com").unwrap(), hash.clone())
        .await
        .unwrap();
    let listed: Vec<_> = store
        .list_operators()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, [operator.id, second.id]);

    let now = crate::now();
    let later = Timestamp::from_unix_millis(now.unix_millis() + 3_600_000).unwrap();
    let token = SessionToken::from_random_bytes([3; 32]);
    let session = store
        .create_operator_session(operator.id, token.hash(), later)
        .await
        .unwrap();
    assert_eq!(session.operator_id, operator.id);
    assert_eq!(session.email, operator.email);
    assert_eq!(session.expires_at, later);
    assert_eq!(
        store.find_operator_session(token.hash(), now).await.unwrap(),
        Some(session)
    );
    assert_eq!(
        store.find_operator_session(token.hash(), later).await.unwrap(),
        None,
        "a session is not valid at its expiry"
    );
    let stranger = SessionToken::from_random_bytes([4; 32]);
    assert_eq!(store.find_operator_session(stranger.hash(), now).await.unwrap(), None);

    store.delete_operator_session(token.hash()).await.unwrap();
    assert_eq!(store.find_operator_session(token.hash(), now).await.unwrap(), None);
    store.delete_operator_session(token.hash()).await.unwrap();

    // A password change ends that operator's sessions only.
    let mine = SessionToken::from_random_bytes([5; 32]);
    let theirs = SessionToken::from_random_bytes([6; 32]);
    store
        .create_operator_session(operator.id, mine.hash(), later)
        .await
        .unwrap();
    store
        .create_operator_session(second.id, theirs.hash(), later)
        .await
        .unwrap();
    let new_hash = PasswordHash::from_stored("$argon2id$v=19$m=8,t=1,p=1$b3RoZXJzYWx0$bmV3aGFzaG5ld2hhc2huZQ".into());
    store
        .set_operator_password(operator.id, new_hash.clone())
        .await
        .unwrap();
    assert_eq!(store.find_operator_session(mine.hash(), now).await.unwrap(), None);
    assert!(store.find_operator_session(theirs.hash(), now).await.unwrap().is_some());
    assert_eq!(
        store.find_operator(email).await.unwrap().unwrap().password_hash,
        new_hash
    );

    // A session of an operator that does not exist is refused.
    let ghost = vellum_core::OperatorId::from_ulid(vellum_core::id::Ulid::from_parts(1, 1));
    let orphan = store
        .create_operator_session(ghost, SessionToken::from_random_bytes([7; 32]).hash(), later)
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound { .. })), "{orphan:?}");
    assert!(matches!(
        store.set_operator_password(ghost, new_hash).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Keys are created, found by hash, listed, revoked and ensured.
pub async fn api_keys_lifecycle(store: Arc<impl Store>) {
    let secret = generate_api_key_secret().unwrap();
    let key = store.create_api_key("ci".into(), secret.clone()).await.unwrap();
    assert!(key.is_active());
    assert_eq!(key.redacted_secret, secret.redacted());
    assert_eq!(store.find_api_key(secret.hash()).await.unwrap(), Some(key.clone()));
    assert!(matches!(
        store.create_api_key("again".into(), secret.clone()).await,
        Err(StoreError::Conflict(_))
    ));

    let other = generate_api_key_secret().unwrap();
    assert_eq!(store.find_api_key(other.hash()).await.unwrap(), None);

    let revoked = store.revoke_api_key(key.id).await.unwrap();
    assert!(!revoked.is_active());
    let revoked_again = store.revoke_api_key(key.id).await.unwrap();
    assert_eq!(
        revoked_again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    assert!(!store.find_api_key(secret.hash()).await.unwrap().unwrap().is_active());

    let revived = store.ensure_api_key("bootstrap".into(), secret.clone()).await;
    assert!(
        matches!(revived, Err(StoreError::Conflict(_))),
        "a revoked key is never brought back: {revived:?}"
    );
    assert!(!store.find_api_key(secret.hash()).await.unwrap().unwrap().is_active());
    let crate::EnsuredApiKey {
        key: created,
        created: changed,
    } = store.ensure_api_key("bootstrap".into(), other.clone()).await.unwrap();
    assert!(changed && created.is_active());
    let crate::EnsuredApiKey {
        key: same,
        created: changed,
    } = store.ensure_api_key("bootstrap".into(), other).await.unwrap();
    assert!(!changed);
    assert_eq!(same.id, created.id);

    let listed: Vec<_> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id)
        .collect();
    assert_eq!(listed, [key.id, created.id]);
    let missing = vellum_core::ApiKeyId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store.revoke_api_key(missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// The sign-in throttle's records are shared by every caller of the store: failures lock a key
/// out, a success forgets its email, and attempts sent at once on separate connections are
/// admitted only as far as the free failures go.
pub async fn sign_in_throttle_counts_across_callers(store: Arc<impl Store>) {
    use vellum_core::operator::Email;
    use vellum_core::sign_in_throttle::{FREE_FAILURES, Outcome, Step, ThrottleKey};

    let at = |seconds: i64| Timestamp::from_unix_millis(1_800_000_000_000 + seconds * 1000).unwrap();
    let email = |text: &str| ThrottleKey::EmailFromAddress(Email::parse(text).unwrap(), "192.0.2.1".into());
    let address = ThrottleKey::Address("192.0.2.1".into());
    let keys = vec![address.clone(), email("a@example.com")];
    let step = |keys: &Vec<ThrottleKey>, step: Step, now: Timestamp| {
        let store = Arc::clone(&store);
        let keys = keys.clone();
        async move { store.sign_in_throttle(keys, step, now).await.unwrap() }
    };

    for _ in 0..FREE_FAILURES {
        step(&keys, Step::Begin, at(0)).await.unwrap();
        step(&keys, Step::Finish(Outcome::Failed), at(0)).await.unwrap();
    }
    assert_eq!(step(&keys, Step::Begin, at(1)).await, Err(29), "locked out for 30 s");
    let other = vec![address.clone(), email("b@example.com")];
    step(&other, Step::Begin, at(1))
        .await
        .expect("another email from the address may try");
    step(&other, Step::Finish(Outcome::Succeeded), at(1)).await.unwrap();
    step(&keys, Step::Begin, at(30)).await.expect("the lockout ended");
    step(&keys, Step::Finish(Outcome::Succeeded), at(30)).await.unwrap();
    step(&keys, Step::Begin, at(30))
        .await
        .expect("a success forgets the email's failures");
    step(&keys, Step::Finish(Outcome::NotChecked), at(30)).await.unwrap();

    // Forty attempts at once at a fresh email: only the free failures get their password checked.
    let fresh = vec![ThrottleKey::Address("198.51.100.7".into()), email("c@example.com")];
    let attempts = (0..40).map(|_| tokio::spawn(step(&fresh, Step::Begin, at(100))));
    let mut admitted = 0;
    for attempt in attempts {
        if attempt.await.unwrap().is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, FREE_FAILURES, "reservations are atomic across connections");
    for _ in 0..admitted {
        step(&fresh, Step::Finish(Outcome::Failed), at(100)).await.unwrap();
    }
    assert_eq!(step(&fresh, Step::Begin, at(100)).await, Err(30));
    let later = at(100 + vellum_core::sign_in_throttle::FAILURE_WINDOW_MILLIS / 1000);
    step(&fresh, Step::Begin, later)
        .await
        .expect("old failures are forgotten");
}
