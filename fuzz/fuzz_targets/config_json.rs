//! Bytes as config.json -> validate -> plan -> simulate on the default world.
//! The oracle is `nsapply_harness::fuzzing::FuzzTarget::ConfigJson` (also run by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| nsapply_harness::fuzzing::FuzzTarget::ConfigJson.fuzz(data)
);
