//! The end-to-end case table: `cases/<case>/` folders (request, settings,
//! kwctl replay session, expected answer) run against the compiled
//! `policy.wasm` by the tests, the runner and the kwctl bats suite.

pub mod cases;
