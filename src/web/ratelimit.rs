//! Rate limits (see docs/reference.md, Rate limits): fixed windows per key, in
//! memory.
//!
//! Every request is charged to its caller's general budget (merchant, user,
//! or client IP for public calls) and every answer carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset`. Failed logins, password
//! reset requests, support tickets and claim-code lookups that miss have
//! small budgets of their own, per client IP and per target (the account,
//! the address or the caller), so guessing a password or a claim code is
//! impractical and nobody's mailbox can be flooded through the shop.

use crate::domain::time;
use crate::error::ApiError;
use std::collections::HashMap;
use std::sync::Mutex;

/// Budgets, each as (requests, window in seconds); 0 requests = unlimited.
#[derive(Debug, Clone)]
pub struct Budgets {
    pub enabled: bool,
    pub merchant: (u32, i64),
    pub user: (u32, i64),
    pub ip: (u32, i64),
    pub login_per_ip: (u32, i64),
    pub login_per_account: (u32, i64),
    pub reset_per_ip: (u32, i64),
    pub reset_per_account: (u32, i64),
    pub code_miss_per_ip: (u32, i64),
    pub code_miss_per_caller: (u32, i64),
    pub ticket_per_ip: (u32, i64),
    pub ticket_per_address: (u32, i64),
}

impl Budgets {
    /// The defaults: generous for a busy till, tight for guessing.
    pub fn defaults(merchant: u32, user: u32, ip: u32) -> Budgets {
        Budgets {
            enabled: true,
            merchant: (merchant, 60),
            user: (user, 60),
            ip: (ip, 60),
            login_per_ip: (20, 900),
            login_per_account: (10, 900),
            reset_per_ip: (10, 3600),
            reset_per_account: (3, 3600),
            // Codes carry 75 random bits: even 200 misses per ten minutes
            // leave a guess at odds of about one in 10^16.
            code_miss_per_ip: (200, 600),
            code_miss_per_caller: (100, 600),
            // Each support ticket mails its address: enough for a customer
            // with a problem, too few to flood a stranger's mailbox.
            ticket_per_ip: (10, 3600),
            ticket_per_address: (3, 3600),
        }
    }
}

/// What `take` charged: (key, start of its window) pairs.
#[derive(Debug)]
#[must_use = "a charge is kept unless refunded"]
pub struct Taken(Vec<(String, i64)>);

/// Where a key stands in its window.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset: i64,
    pub exceeded: bool,
}

impl Standing {
    /// The three `RateLimit-*` headers.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            ("RateLimit-Reset", self.reset.to_string()),
        ]
    }

    /// The 429 answer for this standing, with its `RateLimit-*` headers
    /// (`web::handle` adds the general budget's only to answers without
    /// them, so a refusal describes the budget that refused).
    pub fn refusal(&self, details: &str) -> ApiError {
        let [limit, remaining, reset] = self.headers();
        ApiError::new(429, "Too Many Requests", details)
            .with_header("Retry-After", self.reset.max(1).to_string())
            .with_header(limit.0, limit.1)
            .with_header(remaining.0, remaining.1)
            .with_header(reset.0, reset.1)
    }
}

struct Window {
    start: i64,
    count: u32,
    len: i64,
}

/// The limiter: one map of windows, keyed by budget and caller.
pub struct Limiter {
    pub budgets: Budgets,
    windows: Mutex<HashMap<String, Window>>,
}

/// Windows kept before expired ones are swept out.
const SWEEP_AT: usize = 50_000;

impl Limiter {
    /// A limiter with these budgets.
    pub fn new(budgets: Budgets) -> Limiter {
        Limiter {
            budgets,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn touch(&self, key: &str, (limit, len): (u32, i64), charge: bool) -> Standing {
        let now = time::now();
        let unlimited = Standing {
            limit,
            remaining: limit,
            reset: len,
            exceeded: false,
        };
        if !self.budgets.enabled || limit == 0 {
            return unlimited;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return unlimited;
        };
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, w| w.start + w.len > now);
        }
        let w = windows.entry(key.to_string()).or_insert(Window {
            start: now,
            count: 0,
            len,
        });
        if now >= w.start + w.len {
            *w = Window {
                start: now,
                count: 0,
                len,
            };
        }
        if charge {
            w.count = w.count.saturating_add(1);
        }
        Standing {
            limit,
            remaining: limit.saturating_sub(w.count),
            reset: (w.start + w.len - now).max(0),
            exceeded: w.count > limit || (!charge && w.count >= limit),
        }
    }

    /// Charges one request to `key`'s budget.
    pub fn hit(&self, key: &str, budget: (u32, i64)) -> Standing {
        self.touch(key, budget, true)
    }

    /// Where `key` stands, without charging it; `exceeded` when spent.
    pub fn peek(&self, key: &str, budget: (u32, i64)) -> Standing {
        self.touch(key, budget, false)
    }

    /// Checks and charges in one step, under the limiter's lock: 429 (with
    /// the headers of the budget that refused) when any of the (key, budget)
    /// pairs is spent, otherwise one event charged to every pair. Guessing
    /// budgets are taken before the work (an Argon2 check, a lookup), so
    /// concurrent attempts cannot all pass a check made before any of them
    /// is counted; `refund` gives the charge back when the attempt was not
    /// a failure.
    pub fn take(&self, checks: &[(String, (u32, i64))], details: &str) -> Result<Taken, ApiError> {
        let mut taken = Taken(Vec::new());
        if !self.budgets.enabled {
            return Ok(taken);
        }
        let now = time::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(taken);
        };
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, w| w.start + w.len > now);
        }
        let live = |windows: &mut HashMap<String, Window>, key: &str, len: i64| {
            let w = windows.entry(key.to_string()).or_insert(Window {
                start: now,
                count: 0,
                len,
            });
            if now >= w.start + w.len {
                *w = Window {
                    start: now,
                    count: 0,
                    len,
                };
            }
            (w.start, w.count)
        };
        for (key, (limit, len)) in checks {
            if *limit == 0 {
                continue;
            }
            let (start, count) = live(&mut windows, key, *len);
            if count >= *limit {
                let spent = Standing {
                    limit: *limit,
                    remaining: 0,
                    reset: (start + len - now).max(0),
                    exceeded: true,
                };
                return Err(spent.refusal(details));
            }
        }
        for (key, (limit, _)) in checks {
            if *limit == 0 {
                continue;
            }
            if let Some(w) = windows.get_mut(key) {
                w.count = w.count.saturating_add(1);
                taken.0.push((key.clone(), w.start));
            }
        }
        Ok(taken)
    }

    /// Gives back a charge made by `take` (in windows that have not reset
    /// since).
    pub fn refund(&self, taken: Taken) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        for (key, start) in taken.0 {
            if let Some(w) = windows.get_mut(&key) {
                if w.start == start {
                    w.count = w.count.saturating_sub(1);
                }
            }
        }
    }

    /// The failed-login budgets of a client IP and a target account.
    pub fn logins(&self, ip: &str, email: &str) -> Vec<(String, (u32, i64))> {
        vec![
            (format!("login-ip:{ip}"), self.budgets.login_per_ip),
            (
                format!("login-account:{}", email.to_lowercase()),
                self.budgets.login_per_account,
            ),
        ]
    }

    /// The password-reset budgets of a client IP and a target account.
    pub fn resets(&self, ip: &str, email: &str) -> Vec<(String, (u32, i64))> {
        vec![
            (format!("reset-ip:{ip}"), self.budgets.reset_per_ip),
            (
                format!("reset-account:{}", email.to_lowercase()),
                self.budgets.reset_per_account,
            ),
        ]
    }

    /// The support-ticket budgets of a client IP and a named address.
    pub fn tickets(&self, ip: &str, email: &str) -> Vec<(String, (u32, i64))> {
        vec![
            (format!("ticket-ip:{ip}"), self.budgets.ticket_per_ip),
            (
                format!("ticket-address:{}", email.to_lowercase()),
                self.budgets.ticket_per_address,
            ),
        ]
    }

    /// The claim-code-miss budgets of a client IP and a caller.
    pub fn code_misses(&self, ip: &str, caller: &str) -> Vec<(String, (u32, i64))> {
        vec![
            (format!("code-ip:{ip}"), self.budgets.code_miss_per_ip),
            (
                format!("code-caller:{caller}"),
                self.budgets.code_miss_per_caller,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_refuses_over_budget() {
        let l = Limiter::new(Budgets::defaults(3, 3, 3));
        let a = l.hit("k", (3, 60));
        assert_eq!((a.limit, a.remaining, a.exceeded), (3, 2, false));
        l.hit("k", (3, 60));
        let c = l.hit("k", (3, 60));
        assert_eq!((c.remaining, c.exceeded), (0, false));
        assert!(l.peek("k", (3, 60)).exceeded);
        let d = l.hit("k", (3, 60));
        assert!(d.exceeded);
        assert!(d.reset > 0 && d.reset <= 60);
        assert!(!l.hit("other", (3, 60)).exceeded);
    }

    #[test]
    fn disabled_or_zero_is_unlimited() {
        let mut b = Budgets::defaults(1, 1, 1);
        b.enabled = false;
        let l = Limiter::new(b);
        for _ in 0..10 {
            assert!(!l.hit("k", (1, 60)).exceeded);
        }
        let l = Limiter::new(Budgets::defaults(1, 1, 1));
        for _ in 0..10 {
            assert!(!l.hit("k", (0, 60)).exceeded);
        }
    }

    #[test]
    fn take_checks_and_charges_every_budget_and_refunds() {
        let l = Limiter::new(Budgets::defaults(1, 1, 1));
        let both = |a: &str| vec![(a.to_string(), (2, 60)), ("shared".to_string(), (3, 60))];
        let t1 = l.take(&both("a"), "x").unwrap();
        let _t2 = l.take(&both("a"), "x").unwrap();
        // "a" is spent: refused, and "shared" is not charged for it.
        let e = l.take(&both("a"), "x").unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.headers.contains(&("RateLimit-Limit", "2".to_string())));
        assert!(e
            .headers
            .contains(&("RateLimit-Remaining", "0".to_string())));
        assert_eq!(l.peek("shared", (3, 60)).remaining, 1);
        l.refund(t1);
        assert_eq!(l.peek("a", (2, 60)).remaining, 1);
        assert_eq!(l.peek("shared", (3, 60)).remaining, 2);
        let _t3 = l.take(&both("b"), "x").unwrap();
        let _t4 = l.take(&both("b"), "x").unwrap();
        // "shared" is spent now, whatever the other key.
        let e = l.take(&both("c"), "x").unwrap_err();
        assert!(e.headers.contains(&("RateLimit-Limit", "3".to_string())));
    }
}
