//! Arbitrary config + world + fault script + phase split -> apply on the model.
//! The oracle is `nsapply::fuzzing::Target::ApplyModel` (also run by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nsapply::fuzzing::Target::ApplyModel.fuzz(data));
