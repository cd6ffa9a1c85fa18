//! Fault injection, configured at run time through the handle. Decisions come from a seeded
//! generator, so a sequential test sees the same faults on every run.

use std::time::Duration;

use super::accounting::Verb;

/// What to break. `Default` breaks nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Seed of the decision generator (re-seeded whenever the config is set).
    pub seed: u64,
    /// Share of requests (0.0..=1.0) answered with one of `error_codes` instead of being served.
    pub error_rate: f64,
    /// Codes drawn uniformly for injected errors: 500, 503 and 429 by default.
    pub error_codes: Vec<u16>,
    /// Verbs the error rate applies to; empty means every verb.
    pub error_verbs: Vec<Verb>,
    /// `Retry-After` seconds sent with injected 429/503 (kube-client retries those itself).
    pub retry_after_seconds: u64,
    /// Added to every request before it is served.
    pub latency: Duration,
    /// Watch streams end after this many events (bookmarks not counted).
    pub watch_cut_after_events: Option<u32>,
    /// Watch streams end after this long.
    pub watch_cut_after: Option<Duration>,
    /// Share of watch requests resuming from a resourceVersion answered with a 410 Gone event.
    pub watch_gone_rate: f64,
    /// Share of server-side apply requests answered 409 Conflict.
    pub apply_conflict_rate: f64,
    /// Streaming lists (watches with `sendInitialEvents`) answered 422 Invalid, as by an API
    /// server with the WatchList feature gate off.
    pub refuse_streaming_lists: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 1,
            error_rate: 0.0,
            error_codes: vec![500, 503, 429],
            error_verbs: Vec::new(),
            retry_after_seconds: 0,
            latency: Duration::ZERO,
            watch_cut_after_events: None,
            watch_cut_after: None,
            watch_gone_rate: 0.0,
            apply_conflict_rate: 0.0,
            refuse_streaming_lists: false,
        }
    }
}

/// The message kube-apiserver's validation gives a streaming list with the WatchList gate off.
pub const WATCH_LIST_REFUSED: &str =
    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled";

/// The live fault state: the config and its generator.
#[derive(Debug)]
pub struct Faults {
    pub config: FaultConfig,
    rng: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        let rng = config.seed;
        Faults { config, rng }
    }

    /// splitmix64: tiny, seedable, good enough for fault decisions.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, rate: f64) -> bool {
        // Draw only when a fault is configured, so unrelated settings do not shift decisions.
        rate > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    /// The error code to answer a request with, if it is to fail.
    pub fn error_for(&mut self, verb: Verb) -> Option<u16> {
        let applies = self.config.error_verbs.is_empty() || self.config.error_verbs.contains(&verb);
        if !applies || self.config.error_codes.is_empty() || !self.chance(self.config.error_rate) {
            return None;
        }
        let i = (self.next() % self.config.error_codes.len() as u64) as usize;
        Some(self.config.error_codes[i])
    }

    pub fn apply_conflict(&mut self) -> bool {
        let rate = self.config.apply_conflict_rate;
        self.chance(rate)
    }

    pub fn watch_gone(&mut self) -> bool {
        let rate = self.config.watch_gone_rate;
        self.chance(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions_and_rate_roughly_kept() {
        let config = FaultConfig {
            error_rate: 0.2,
            seed: 42,
            ..FaultConfig::default()
        };
        let draw = |c: &FaultConfig| {
            let mut f = Faults::new(c.clone());
            (0..2000)
                .map(|_| f.error_for(Verb::Get))
                .collect::<Vec<_>>()
        };
        let a = draw(&config);
        assert_eq!(a, draw(&config));
        let failed = a.iter().flatten().count();
        assert!(
            (300..500).contains(&failed),
            "{failed} of 2000 failed at rate 0.2"
        );
        for code in [500, 503, 429] {
            assert!(a.contains(&Some(code)));
        }
        let only_writes = FaultConfig {
            error_verbs: vec![Verb::Apply],
            ..config
        };
        assert!(Faults::new(only_writes).error_for(Verb::List).is_none());
    }
}
