//! Alert sources and their webhook tokens.
//!
//! A token is 32 random bytes shown once at creation or rotation; only its SHA-256 is stored
//! (the token is high-entropy, so a slow hash adds nothing). Checks compare hashes in constant
//! time. Sources are few and checked on every webhook, so they are cached in memory and the
//! cache is updated together with the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::engine::now_millis;
use crate::store::{SourceRecord, Store, StoreError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("no such alert source")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A freshly issued token; the only time the plain value exists.
pub struct IssuedToken(pub String);

fn new_token() -> IssuedToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    IssuedToken(format!("pbsrc_{}", hex(&bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hash_matches(stored_hex: &str, candidate: &[u8; 32]) -> bool {
    let mut stored = [0u8; 32];
    if stored_hex.len() != 64 {
        return false;
    }
    for (i, chunk) in stored_hex.as_bytes().chunks(2).enumerate() {
        let Ok(s) = std::str::from_utf8(chunk) else {
            return false;
        };
        let Ok(b) = u8::from_str_radix(s, 16) else {
            return false;
        };
        stored[i] = b;
    }
    stored.ct_eq(candidate).into()
}

#[derive(Clone)]
pub struct Sources {
    store: Store,
    cache: Arc<RwLock<HashMap<String, SourceRecord>>>,
    grace: Duration,
}

pub const MAX_NAME_LEN: usize = 200;

impl Sources {
    pub fn load(store: Store, grace: Duration) -> Result<Sources, StoreError> {
        let all = store.sources()?;
        let cache = all.into_iter().map(|s| (s.id.clone(), s)).collect();
        Ok(Sources {
            store,
            cache: Arc::new(RwLock::new(cache)),
            grace,
        })
    }

    fn cache_put(&self, record: SourceRecord) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.insert(record.id.clone(), record);
    }

    pub async fn create(
        &self,
        name: &str,
        default_environment_id: Option<String>,
    ) -> Result<(SourceRecord, IssuedToken), SourceError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(SourceError::Invalid(format!(
                "name must be 1 to {MAX_NAME_LEN} characters"
            )));
        }
        let token = new_token();
        let record = SourceRecord {
            id: ulid::Ulid::new().to_string(),
            name: name.to_string(),
            default_environment_id: default_environment_id.filter(|e| !e.trim().is_empty()),
            token_sha256: hex(&token_hash(&token.0)),
            previous_token_sha256: None,
            previous_expires_at: None,
            created_at: now_millis(),
        };
        self.store.put_source(&record).await?;
        self.cache_put(record.clone());
        Ok((record, token))
    }

    pub fn get(&self, id: &str) -> Option<SourceRecord> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.get(id).cloned()
    }

    /// All sources, oldest first.
    pub fn list(&self) -> Vec<SourceRecord> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = cache.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    pub async fn rotate(&self, id: &str) -> Result<(SourceRecord, IssuedToken), SourceError> {
        let mut record = self.get(id).ok_or(SourceError::NotFound)?;
        let token = new_token();
        record.previous_token_sha256 = Some(std::mem::replace(
            &mut record.token_sha256,
            hex(&token_hash(&token.0)),
        ));
        record.previous_expires_at = Some(now_millis() + self.grace.as_millis() as i64);
        self.store.put_source(&record).await?;
        self.cache_put(record.clone());
        Ok((record, token))
    }

    pub async fn set_default_environment(
        &self,
        id: &str,
        env: Option<String>,
    ) -> Result<SourceRecord, SourceError> {
        let mut record = self.get(id).ok_or(SourceError::NotFound)?;
        record.default_environment_id = env.filter(|e| !e.trim().is_empty());
        self.store.put_source(&record).await?;
        self.cache_put(record.clone());
        Ok(record)
    }

    pub async fn delete(&self, id: &str) -> Result<(), SourceError> {
        if self.get(id).is_none() {
            return Err(SourceError::NotFound);
        }
        self.store.delete_source(id).await?;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(id);
        Ok(())
    }

    /// Whether `token` is the source's current token, or its previous one within the grace
    /// period. Unknown sources and wrong tokens look the same to the caller.
    pub fn verify(&self, id: &str, token: &str) -> bool {
        let candidate = token_hash(token);
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let Some(source) = cache.get(id) else {
            return false;
        };
        if hash_matches(&source.token_sha256, &candidate) {
            return true;
        }
        match (&source.previous_token_sha256, source.previous_expires_at) {
            (Some(prev), Some(until)) => now_millis() < until && hash_matches(prev, &candidate),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn tokens_verify_rotate_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        // 2 s of grace: the rotation's durable write, on a busy machine, must not use it up.
        let sources = Sources::load(store.clone(), Duration::from_secs(2)).unwrap();
        let (src, t1) = sources.create("prod", None).await.unwrap();
        assert!(t1.0.len() >= 64);
        assert!(sources.verify(&src.id, &t1.0));
        assert!(!sources.verify(&src.id, "pbsrc_wrong"));
        assert!(!sources.verify("nope", &t1.0));
        assert_ne!(src.token_sha256, t1.0, "only the hash is stored");

        let (_, t2) = sources.rotate(&src.id).await.unwrap();
        assert!(sources.verify(&src.id, &t2.0));
        assert!(
            sources.verify(&src.id, &t1.0),
            "old token works during the grace period"
        );
        std::thread::sleep(Duration::from_millis(2100));
        assert!(
            !sources.verify(&src.id, &t1.0),
            "old token expires after the grace period"
        );

        // The cache is rebuilt from the store.
        let reloaded = Sources::load(store, Duration::from_secs(1)).unwrap();
        assert!(reloaded.verify(&src.id, &t2.0));
        reloaded.delete(&src.id).await.unwrap();
        assert!(!reloaded.verify(&src.id, &t2.0));
        assert_eq!(reloaded.delete(&src.id).await, Err(SourceError::NotFound));
    }

    #[tokio::test]
    async fn a_source_change_that_is_not_durable_is_refused_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let sources = Sources::load(store.clone(), Duration::from_secs(1)).unwrap();
        let (kept, token) = sources.create("kept", None).await.unwrap();
        store.faults().set_failing_flushes(true);
        assert!(sources.create("lost", None).await.is_err());
        assert!(sources.rotate(&kept.id).await.is_err());
        assert!(sources.delete(&kept.id).await.is_err());
        store.faults().set_failing_flushes(false);
        // Nothing refused is served, and the store agrees after a reload.
        let names: Vec<_> = sources.list().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["kept"]);
        assert!(sources.verify(&kept.id, &token.0));
        let reloaded = Sources::load(store, Duration::from_secs(1)).unwrap();
        assert_eq!(reloaded.list().len(), 1);
        assert!(reloaded.verify(&kept.id, &token.0));
    }

    #[tokio::test]
    async fn names_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let sources = Sources::load(store, Duration::from_secs(1)).unwrap();
        assert!(matches!(
            sources.create("  ", None).await,
            Err(SourceError::Invalid(_))
        ));
        assert!(matches!(
            sources.create(&"x".repeat(201), None).await,
            Err(SourceError::Invalid(_))
        ));
    }
}
