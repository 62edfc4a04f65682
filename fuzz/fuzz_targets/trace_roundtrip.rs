//! Trace JSON -> serde -> JSON is a fixed point; malformed JSON is an error.
//! The oracle is `nsapply_harness::fuzzing::FuzzTarget::TraceRoundtrip` (also run by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| nsapply_harness::fuzzing::FuzzTarget::TraceRoundtrip.fuzz(data)
);
