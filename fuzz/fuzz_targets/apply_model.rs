//! Arbitrary config + world + fault script + phase split -> apply on the model.
//! The oracle is `nsapply_harness::fuzzing::FuzzTarget::ApplyModel` (also run by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| nsapply_harness::fuzzing::FuzzTarget::ApplyModel.fuzz(data)
);
