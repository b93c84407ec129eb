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
    /// `kubewarden`/`kubernetes` host calls made by the guest.
    pub host_calls: u64,
    /// Wall time the responder took to answer them.
    pub in_host_calls: Duration,
}

impl CallTimes {
    /// Time inside guest calls but not in the responder: the policy's code,
    /// with waPC copying payloads in and out of its memory.
    pub fn policy(&self) -> Duration {
        self.in_guest_calls.saturating_sub(self.in_host_calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_time_excludes_host_calls() {
        let t = CallTimes {
            guest_calls: 2,
            in_guest_calls: Duration::from_millis(30),
            host_calls: 5,
            in_host_calls: Duration::from_millis(12),
        };
        assert_eq!(t.policy(), Duration::from_millis(18));
        assert_eq!(CallTimes::default().policy(), Duration::ZERO);
    }
}
