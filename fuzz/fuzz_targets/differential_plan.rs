//! The engine's plan against the naive planner of DESIGN §4, step by step.
//! The oracle is `nsapply_harness::fuzzing::FuzzTarget::DifferentialPlan` (also run by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| nsapply_harness::fuzzing::FuzzTarget::DifferentialPlan.fuzz(data)
);
