//! Client-side pacing: campbridge spends each upstream's request budget itself, so a 429 is a rare event
//! rather than the normal way to find the limit.
//!
//! A [`Pacer`] grants at most `requests` permits in any window of `per` (a sliding log of reserved send
//! times), optionally also per key (Jira's per-issue write limit). Waiters reserve their slot in order, so
//! workers sharing a pacer never stampede. A wait longer than [`MAX_WAIT`] is not waited: the request is
//! answered with a self-imposed 429 ([`super::ClientError::RateLimited`] with the wait as `Retry-After`),
//! which the mapper turns into a postponement (docs/decisions/0013), so a worker never sleeps through its
//! invocation.
//!
//! Every client of one upstream in a process shares one pacer ([`Pacer::shared`], keyed by upstream, origin
//! and budget): local mode's workers, its reconciler and the operator commands all draw from the same
//! budget. Processes split a budget with `share` (AWS mode: the mapper's maximum concurrency plus the
//! reconciler; `PACING_SHARE` in infra/template.yaml). docs/decisions/0014 has the budgets and why.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// The longest a request waits for a permit before it is reported as rate limited instead.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// How many keys (issues) a pacer remembers before it forgets the idle ones.
const MAX_KEYS: usize = 4096;

/// At most `requests` requests in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    pub requests: u32,
    pub per: Duration,
}

impl Budget {
    pub const fn new(requests: u32, per: Duration) -> Self {
        Self { requests, per }
    }

    /// Reads `"45/10s"`, `"20/1s"`, `"900/1h"`, `"5/1m"`: a whole number of requests per a whole number
    /// of seconds, minutes or hours.
    pub fn parse(text: &str) -> Option<Self> {
        let (n, window) = text.trim().split_once('/')?;
        let requests: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let window = window.trim();
        let (amount, unit) = window.split_at(window.len().checked_sub(1)?);
        let per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return None,
        };
        let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().ok().filter(|a| *a > 0)? };
        Some(Self { requests, per: Duration::from_secs(amount.checked_mul(per)?) })
    }

    /// This budget split between `share` processes (at least one request per window each).
    pub fn split(self, share: u32) -> Self {
        Self { requests: (self.requests / share.max(1)).max(1), ..self }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.per.as_secs();
        if s.is_multiple_of(3600) {
            write!(f, "{}/{}h", self.requests, s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}/{}m", self.requests, s / 60)
        } else {
            write!(f, "{}/{}s", self.requests, s)
        }
    }
}

/// Reserved send times within the last window, oldest first (some may lie in the future).
#[derive(Debug, Default)]
struct Log(VecDeque<Instant>);

impl Log {
    /// The earliest time a request may go out under `budget`, given the reservations so far.
    fn next_slot(&mut self, budget: Budget, now: Instant) -> Instant {
        while self.0.front().is_some_and(|t| *t + budget.per <= now) {
            self.0.pop_front();
        }
        let n = budget.requests as usize;
        if self.0.len() < n {
            return now;
        }
        // The (len − n + 1)-th newest reservation must leave the window first.
        self.0.get(self.0.len() - n).map_or(now, |t| (*t + budget.per).max(now))
    }

    fn reserve(&mut self, at: Instant) {
        // Slots are handed out in non-decreasing order per log, except when a key's slot pushes the global
        // one later; keep the log sorted so `next_slot` stays right.
        let i = self.0.iter().rposition(|t| *t <= at).map_or(0, |i| i + 1);
        self.0.insert(i, at);
    }
}

#[derive(Debug, Default)]
struct State {
    all: Log,
    keys: HashMap<String, Log>,
}

/// A request budget shared by every caller holding it. Cheap to share through an `Arc`.
#[derive(Debug)]
pub struct Pacer {
    name: String,
    budget: Budget,
    per_key: Option<Budget>,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(name: impl Into<String>, budget: Budget) -> Self {
        Self { name: name.into(), budget, per_key: None, state: Mutex::new(State::default()) }
    }

    /// Also at most `budget` per key (e.g. writes to one Jira issue).
    pub fn with_per_key(mut self, budget: Budget) -> Self {
        self.per_key = Some(budget);
        self
    }

    /// The process-wide pacer for `upstream` at `origin` with these budgets: every client built for the same
    /// upstream in this process gets the same one, so they share its budget.
    pub fn shared(upstream: &str, origin: &str, budget: Budget, per_key: Option<Budget>) -> Arc<Self> {
        static PACERS: OnceLock<Mutex<HashMap<String, Arc<Pacer>>>> = OnceLock::new();
        let id = format!("{upstream} {origin} {budget} {}", per_key.map(|b| b.to_string()).unwrap_or_default());
        let mut pacers = PACERS.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pacers
            .entry(id)
            .or_insert_with(|| {
                let pacer = Self::new(format!("{upstream} {origin}"), budget);
                Arc::new(match per_key {
                    Some(k) => pacer.with_per_key(k),
                    None => pacer,
                })
            })
            .clone()
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Takes a permit (and one for `key`, when this pacer limits per key), waiting for it when the budget
    /// is spent. A wait longer than [`MAX_WAIT`] is not taken: `Err(wait)` says how long it would have been.
    pub async fn acquire(&self, key: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let slot = {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut slot = state.all.next_slot(self.budget, now);
            let keyed = key.zip(self.per_key);
            if let Some((key, budget)) = keyed {
                if state.keys.len() >= MAX_KEYS {
                    state.keys.retain(|_, log| log.0.back().is_some_and(|t| *t + budget.per > now));
                }
                slot = slot.max(state.keys.entry(key.to_owned()).or_default().next_slot(budget, now));
            }
            let wait = slot.saturating_duration_since(now);
            if wait > MAX_WAIT {
                return Err(wait);
            }
            state.all.reserve(slot);
            if let Some((key, _)) = keyed {
                state.keys.entry(key.to_owned()).or_default().reserve(slot);
            }
            slot
        };
        if slot > now {
            tracing::debug!(pacer = %self.name, wait_ms = (slot - now).as_millis() as u64, "pacing");
            tokio::time::sleep_until(slot).await;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_and_print_as_requests_per_window() {
        assert_eq!(Budget::parse("45/10s"), Some(Budget::new(45, Duration::from_secs(10))));
        assert_eq!(Budget::parse(" 900 / 1h "), Some(Budget::new(900, Duration::from_secs(3600))));
        assert_eq!(Budget::parse("5/m"), Some(Budget::new(5, Duration::from_secs(60))));
        for bad in ["", "45", "0/10s", "45/0s", "45/10", "45/10d", "x/10s", "-1/10s"] {
            assert_eq!(Budget::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Budget::new(900, Duration::from_secs(3600)).to_string(), "900/1h");
        assert_eq!(Budget::new(45, Duration::from_secs(10)).to_string(), "45/10s");
        assert_eq!(Budget::new(45, Duration::from_secs(10)).split(3), Budget::new(15, Duration::from_secs(10)));
        assert_eq!(Budget::new(2, Duration::from_secs(10)).split(3).requests, 1, "never zero");
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_is_never_exceeded_in_any_window_and_waiters_go_in_order() {
        let pacer = Arc::new(Pacer::new("test", Budget::new(5, Duration::from_secs(10))));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..12 {
            let p = pacer.clone();
            handles.push(tokio::spawn(async move {
                match p.acquire(None).await {
                    Ok(()) => Some(Instant::now() - start),
                    Err(_) => None,
                }
            }));
        }
        let mut sent = Vec::new();
        let mut refused = 0;
        for h in handles {
            match h.await.unwrap() {
                Some(t) => sent.push(t),
                None => refused += 1,
            }
        }
        sent.sort();
        assert_eq!(sent.len(), 5, "the first window's permits at once; the rest would wait 10 s > MAX_WAIT");
        assert_eq!(refused, 7);
        assert!(sent.iter().all(|t| *t == Duration::ZERO), "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_is_waited_and_the_window_slides() {
        let pacer = Pacer::new("test", Budget::new(2, Duration::from_secs(4)));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            pacer.acquire(None).await.unwrap();
            at.push((Instant::now() - start).as_secs());
        }
        assert_eq!(at, [0, 0, 4, 4, 8, 8], "two per 4 s, never more in any window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_has_its_own_budget_inside_the_global_one() {
        let pacer = Pacer::new("jira", Budget::new(100, Duration::from_secs(1)))
            .with_per_key(Budget::new(2, Duration::from_secs(3)));
        let start = Instant::now();
        pacer.acquire(Some("WEB-1")).await.unwrap();
        pacer.acquire(Some("WEB-1")).await.unwrap();
        pacer.acquire(Some("WEB-2")).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::ZERO, "another issue is not held up");
        pacer.acquire(Some("WEB-1")).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(3), "the third write to WEB-1 waits for its window");
        pacer.acquire(None).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(3), "reads are not keyed");
    }

    #[test]
    fn clients_of_one_upstream_share_one_pacer() {
        let budget = Budget::new(45, Duration::from_secs(10));
        let a = Pacer::shared("basecamp", "http://127.0.0.1:1", budget, None);
        let b = Pacer::shared("basecamp", "http://127.0.0.1:1", budget, None);
        let c = Pacer::shared("basecamp", "http://127.0.0.1:2", budget, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
