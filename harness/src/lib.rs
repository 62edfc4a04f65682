//! nsapply's test harness (not published): everything the tests, fuzz
//! targets, VM guest and benches share, apart from the engine.
//!
//! * [`realize`]: builds a model world on the real kernel (namespaces held
//!   by helper processes, bind-mounted paths) and applies a plan there;
//! * [`differential`]: the corpus of scenarios run on the model and on the
//!   kernel, each expected to give the same answers;
//! * [`testing`]: proptest generators of configs, worlds, fault scripts and
//!   phase splits;
//! * [`oracles`] and [`fuzzing`]: the properties the property tests and the
//!   fuzz targets check, and the fuzz targets' `arbitrary` inputs;
//! * [`host`]: test-only process helpers (namespace inodes, the fd table,
//!   bind mounts, FIFOs and devices, becoming another user, fork with a
//!   closure).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod differential;
pub mod external;
pub mod external_kernel;
pub mod fuzzing;
pub mod host;
pub mod oracles;
pub mod realize;
pub mod testing;
pub mod vm;
