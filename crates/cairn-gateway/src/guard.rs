//! Failed API key attempts, counted per client address (issue 29, item 11).
//!
//! Every request the API refuses with 401 (no key, an unknown key) counts against the address it came from.
//! After [`MAX_FAILURES`] in one [`WINDOW`], requests from that address that carry a key are refused with 429
//! until the window ends, a right key included (otherwise guessing would simply go on), so a key of 8+
//! random characters cannot be guessed at the speed of HTTP. Requests without a key (`/version`, `/metrics`,
//! the dashboard) are never refused here. What the gateway remembers is bounded ([`MAX_TRACKED`] addresses;
//! expired windows are dropped first, then the oldest). Behind a reverse proxy every client has the proxy's
//! address, so one guesser there locks out everyone behind it for a window: run the gateway where it sees
//! its clients' addresses (docs/SECURITY.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Inner;

/// Refused key attempts an address may make in one window.
pub const MAX_FAILURES: u32 = 10;
/// How long an address's count lasts, from its first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy)]
struct Count {
    since: Instant,
    failures: u32,
}

/// Refused key attempts per address.
#[derive(Default)]
pub(crate) struct Failures {
    by_ip: Mutex<HashMap<IpAddr, Count>>,
}

impl Failures {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Count>> {
        self.by_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `ip` must wait, if it has used up its failures for this window.
    pub fn locked_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let c = *self.map().get(&ip)?;
        let end = c.since + WINDOW;
        (c.failures >= MAX_FAILURES && now < end).then(|| end - now)
    }

    /// Counts one refused attempt from `ip`.
    pub fn record(&self, ip: IpAddr, now: Instant) {
        let mut map = self.map();
        if !map.contains_key(&ip) && map.len() >= MAX_TRACKED {
            map.retain(|_, c| now < c.since + WINDOW);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, c)| c.since).map(|(ip, _)| *ip) {
                    map.remove(&oldest);
                }
            }
        }
        let c = map.entry(ip).or_insert(Count {
            since: now,
            failures: 0,
        });
        if now >= c.since + WINDOW {
            *c = Count {
                since: now,
                failures: 0,
            };
        }
        c.failures = c.failures.saturating_add(1);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.map().len()
    }
}

/// The middleware: refuses keyed requests from an address past its failures, and counts every 401.
pub(crate) async fn limit_key_guessing(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let ip = peer.ip();
    if req.headers().contains_key("x-api-key") {
        if let Some(wait) = inner.failures.locked_for(ip, Instant::now()) {
            inner.metrics.key_attempts_refused.inc();
            let secs = wait.as_secs().max(1);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                format!(
                    "too many refused API keys from {ip} ({MAX_FAILURES} in {} s): try again in {secs} s \
                     with the key this gateway gave you",
                    WINDOW.as_secs()
                ),
            )
                .into_response();
        }
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        inner.metrics.key_failures.inc();
        inner.failures.record(ip, Instant::now());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_after_its_failures_until_the_window_ends() {
        let f = Failures::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(f.locked_for(ip, t0), None, "locked after {i} failures");
            f.record(ip, t0 + Duration::from_secs(1));
        }
        let wait = f.locked_for(ip, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(wait, WINDOW - Duration::from_secs(1));
        assert_eq!(
            f.locked_for(other, t0),
            None,
            "another address pays nothing"
        );
        // The window ends: a new count starts with the next failure.
        let later = t0 + Duration::from_secs(1) + WINDOW;
        assert_eq!(f.locked_for(ip, later), None);
        f.record(ip, later);
        assert_eq!(f.locked_for(ip, later), None);
    }

    #[test]
    fn what_it_remembers_is_bounded_and_expired_counts_go_first() {
        let f = Failures::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            f.record(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(f.tracked(), MAX_TRACKED);
        // A locked address stays locked while newcomers arrive within its window (the oldest goes instead).
        let guesser: IpAddr = "192.168.7.7".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            f.record(guesser, t0 + Duration::from_secs(5));
        }
        f.record("192.168.7.8".parse().unwrap(), t0 + Duration::from_secs(6));
        assert_eq!(f.tracked(), MAX_TRACKED);
        assert!(f.locked_for(guesser, t0 + Duration::from_secs(6)).is_some());
        // Past the first window every old count is dropped at once when room is needed.
        f.record(
            "192.168.7.9".parse().unwrap(),
            t0 + WINDOW + Duration::from_secs(1),
        );
        assert_eq!(f.tracked(), 3);
    }
}
