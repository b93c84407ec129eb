#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pod_deletion_cost_policy_fuzz::simulator::snapshot(data);
});
