//! Where the time of guest calls goes: into the policy's own code, or into
//! the host's answers to its host calls (a cluster model building a list,
//! say). A replay over a large snapshot reports the two apart, so that the
//! policy's share is the floor the host side is measured against.

use std::time::Duration;

/// Totals since the module was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTimes {
    /// Guest function calls (`validate`, `validate_settings`, ...).
    pub guest_calls: u64,
    /// Wall time inside them, host calls included.
    pub in_guest_calls: Duration,
    /// CPU time of the calling thread inside them, host calls included:
    /// what a loaded machine does not inflate.
    pub cpu_in_guest_calls: Duration,
    /// `kubewarden`/`kubernetes` host calls made by the guest.
    pub host_calls: u64,
    /// Wall time the responder took to answer them.
    pub in_host_calls: Duration,
    /// CPU time the responder took to answer them.
    pub cpu_in_host_calls: Duration,
}

impl CallTimes {
    /// Time inside guest calls but not in the responder: the policy's code,
    /// with waPC copying payloads in and out of its memory.
    pub fn policy(&self) -> Duration {
        self.in_guest_calls.saturating_sub(self.in_host_calls)
    }

    /// The same in CPU time.
    pub fn policy_cpu(&self) -> Duration {
        self.cpu_in_guest_calls
            .saturating_sub(self.cpu_in_host_calls)
    }
}

/// A start of wall and thread CPU time.
pub(crate) struct Stopwatch {
    wall: std::time::Instant,
    cpu: Duration,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch {
            wall: std::time::Instant::now(),
            cpu: thread_cpu(),
        }
    }

    /// Wall and CPU time since the start.
    pub fn read(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), thread_cpu().saturating_sub(self.cpu))
    }
}

/// CPU time of the calling thread (zero where the clock is unavailable).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_time_excludes_host_calls() {
        let t = CallTimes {
            guest_calls: 2,
            in_guest_calls: Duration::from_millis(30),
            cpu_in_guest_calls: Duration::from_millis(20),
            host_calls: 5,
            in_host_calls: Duration::from_millis(12),
            cpu_in_host_calls: Duration::from_millis(8),
        };
        assert_eq!(t.policy(), Duration::from_millis(18));
        assert_eq!(t.policy_cpu(), Duration::from_millis(12));
        assert_eq!(CallTimes::default().policy(), Duration::ZERO);
    }

    #[test]
    fn the_stopwatch_counts_this_threads_cpu() {
        let watch = Stopwatch::start();
        let mut x = 0u64;
        while watch.read().1 < Duration::from_millis(5) && x < 10_000_000_000 {
            x = std::hint::black_box(x + 1);
        }
        let (wall, cpu) = watch.read();
        assert!(cpu >= Duration::from_millis(5), "{cpu:?} after {x} loops");
        assert!(wall >= cpu / 2, "{wall:?} of wall for {cpu:?} of CPU");
    }
}
