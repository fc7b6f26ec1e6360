//! kubelet's per-provider answer cache.
//!
//! Upstream: kubernetes `pkg/credentialprovider/plugin/plugin.go`, `pluginProvider.provide` and
//! `getCachedCredentials`: an answer is stored under the request's image (`Image`), its registry
//! (`Registry`: the image up to the first `/`, `parseRegistry`) or one global key (`Global`),
//! until `cacheDuration` from the answer, else the provider's `defaultCacheDuration`; a
//! duration of zero (either way) is not stored. A lookup tries the image key, then the
//! registry key, then the global key, and ignores expired entries (`cacheExpirationPolicy`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exec::{Auth, CacheKeyType, Response};

/// Most entries kept per provider; past it, expired entries are dropped, then the oldest.
pub const MAX_ENTRIES: usize = 4096;

/// A cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The answer's `auth` map (shared with the answer it came from).
    pub auth: Auth,
    /// Which key it is stored under.
    pub key_type: CacheKeyType,
    /// When it expires (monotonic).
    pub expires: Instant,
    /// When it expires, Unix seconds.
    pub expires_unix: u64,
}

/// One provider's cache.
#[derive(Debug, Default)]
pub struct Cache {
    entries: HashMap<(CacheKeyType, String), Entry>,
}

/// kubelet's `parseRegistry`: the image up to its first `/`.
pub fn registry_of(image: &str) -> &str {
    image.split('/').next().unwrap_or(image)
}

impl Cache {
    /// The live answer for `image`: image key, then registry key, then global.
    pub fn get(&self, image: &str, now: Instant) -> Option<&Entry> {
        [
            (CacheKeyType::Image, image),
            (CacheKeyType::Registry, registry_of(image)),
            (CacheKeyType::Global, ""),
        ]
        .into_iter()
        .filter_map(|(t, k)| self.entries.get(&(t, k.to_string())))
        .find(|e| e.expires > now)
    }

    /// Stores `response` for `image` as kubelet does; returns the entry, or `None` when the
    /// answer is not cached (a zero duration).
    pub fn put(
        &mut self,
        image: &str,
        response: &Response,
        default: Duration,
        now: Instant,
        now_unix: u64,
    ) -> Option<Entry> {
        let ttl = response.cache_duration.unwrap_or(default);
        if ttl.is_zero() {
            return None;
        }
        let key = match response.cache_key_type {
            CacheKeyType::Image => image,
            CacheKeyType::Registry => registry_of(image),
            CacheKeyType::Global => "",
        };
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        let entry = Entry {
            auth: Arc::clone(&response.auth),
            key_type: response.cache_key_type,
            expires: now + ttl,
            expires_unix: now_unix.saturating_add(ttl.as_secs()),
        };
        self.entries
            .insert((response.cache_key_type, key.to_string()), entry.clone());
        Some(entry)
    }

    /// The earliest expiry of a live entry.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.entries
            .values()
            .map(|e| e.expires)
            .filter(|&t| t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(t: CacheKeyType, d: Option<Duration>) -> Response {
        Response {
            cache_key_type: t,
            cache_duration: d,
            auth: Vec::new().into(),
        }
    }

    #[test]
    fn keys_and_lookup_order() {
        let now = Instant::now();
        let mut c = Cache::default();
        let min = Duration::from_secs(60);
        c.put(
            "r.example/a",
            &answer(CacheKeyType::Image, None),
            min,
            now,
            0,
        )
        .unwrap();
        assert!(c.get("r.example/a", now).is_some());
        assert!(c.get("r.example/b", now).is_none());
        c.put(
            "r.example/a",
            &answer(CacheKeyType::Registry, None),
            min,
            now,
            0,
        );
        assert_eq!(
            c.get("r.example/b", now).unwrap().key_type,
            CacheKeyType::Registry
        );
        assert!(c.get("other.example/b", now).is_none());
        c.put("x/y", &answer(CacheKeyType::Global, None), min, now, 0);
        assert!(c.get("other.example/b", now).is_some());
        assert!(c.get("other.example/b", now + min + min).is_none());
    }

    #[test]
    fn zero_durations_are_not_cached_and_the_answer_wins_over_the_default() {
        let now = Instant::now();
        let mut c = Cache::default();
        let r = answer(CacheKeyType::Image, Some(Duration::ZERO));
        assert!(c.put("i", &r, Duration::from_secs(60), now, 0).is_none());
        let r = answer(CacheKeyType::Image, None);
        assert!(c.put("i", &r, Duration::ZERO, now, 0).is_none());
        let r = answer(CacheKeyType::Image, Some(Duration::from_secs(5)));
        let e = c.put("i", &r, Duration::from_secs(600), now, 100).unwrap();
        assert_eq!(e.expires_unix, 105);
        assert!(c.get("i", now + Duration::from_secs(6)).is_none());
    }
}
