//! End-to-end tests support: the case table (`cases/<case>/` folders with
//! request, settings, kwctl replay session and expected answer). The real
//! policy-server and control plane the tests run against are
//! `control_plane`'s.

pub mod cases;

/// A small deterministic generator for the scenario stories, so that every
/// run tells the same story.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number below `bound` (which must not be 0).
    pub fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}
