//! Compiled schemas by `(action, version)`, and the latest version of each action.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use vellum_core::schema::CompiledSchema;
use vellum_store::{Store, StoreError, StoredSchema};

/// How long "the latest version of an action" is trusted before asking the store again. A
/// version created through this process is seen at once; one created by another process (the
/// CLI, another node) within this delay.
const LATEST_VERSION_TTL: Duration = Duration::from_secs(2);

/// Compiled schemas by `(action, version)` (immutable, so cached for good) and the latest
/// version number of each action (cached briefly).
#[derive(Default)]
pub(crate) struct SchemaRegistry {
    versions: RwLock<HashMap<(String, u32), Arc<CompiledSchema>>>,
    latest: RwLock<HashMap<String, (u32, Instant)>>,
}

impl SchemaRegistry {
    /// Caches a version; `is_latest` says it was read or created as the action's latest, the only
    /// case in which it may move the cached latest version.
    pub(crate) fn remember(&self, stored: StoredSchema, is_latest: bool) -> Result<Arc<CompiledSchema>, StoreError> {
        let compiled = Arc::new(CompiledSchema::compile(stored.definition).map_err(|errors| {
            StoreError::Internal(format!(
                "stored schema {} v{} no longer compiles: {errors}",
                stored.action, stored.version
            ))
        })?);
        self.versions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((stored.action.clone(), stored.version), Arc::clone(&compiled));
        if is_latest {
            let mut latest = self.latest.write().unwrap_or_else(PoisonError::into_inner);
            let entry = latest.entry(stored.action).or_insert((stored.version, Instant::now()));
            if entry.0 <= stored.version {
                *entry = (stored.version, Instant::now());
            }
        }
        Ok(compiled)
    }

    /// Returns the version to validate against and its compiled schema: the named version, or
    /// the latest when `version` is `None`. `None` when the action or the version does not exist.
    pub(crate) async fn resolve(
        &self,
        store: &dyn Store,
        action: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, Arc<CompiledSchema>)>, StoreError> {
        let wanted = match version {
            Some(version) => Some(version),
            None => self
                .latest
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(action)
                .filter(|(_, checked)| checked.elapsed() < LATEST_VERSION_TTL)
                .map(|(version, _)| *version),
        };
        if let Some(version) = wanted {
            let cached = self
                .versions
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&(action.to_owned(), version))
                .cloned();
            if let Some(compiled) = cached {
                return Ok(Some((version, compiled)));
            }
        }
        let Some(stored) = store.get_schema(action, wanted).await? else {
            return Ok(None);
        };
        let version = stored.version;
        // Only a lookup of the latest (no version asked, cache stale) may move the latest.
        let fetched_latest = wanted.is_none();
        Ok(Some((version, self.remember(stored, fetched_latest)?)))
    }
}
