//! # nsapply: the Linux namespace apply engine for OCI containers
//!
//! An OCI runtime reads `linux.namespaces` from `config.json` and must create
//! new namespaces (unshare(2)) or join existing ones (setns(2)) in an order
//! the kernel accepts. nsapply does that in three pure-then-effectful stages:
//!
//! ```text
//! config.json ─parse─▶ Spec ─validate─▶ NsConfig ─plan─▶ Plan ─apply(backend)─▶ Trace | ApplyError
//! ```
//!
//! * [`NsConfig::from_json`] validates (DESIGN §3) before any syscall;
//! * [`plan()`] orders the steps (DESIGN §4), [`Plan::only`] splits phases;
//! * [`apply()`] walks a plan against a [`Syscall`] backend: [`linux::Linux`]
//!   for the real kernel, [`model::Model`] for the recorded-syscall model of
//!   the kernel's rules. Both produce the same [`Trace`] for one scenario.
//!
//! ```
//! use nsapply::{apply, plan, NsConfig, model::{Model, World}, simulate::ModelParent};
//!
//! let cfg = NsConfig::from_json(r#"{"ociVersion":"1.2.0","linux":{
//!     "namespaces":[{"type":"user"},{"type":"pid"},{"type":"network"}],
//!     "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
//!     "gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}"#)?;
//! let plan = plan(&cfg);
//! let mut model = Model::new(&World::default())?;
//! let run = apply(&plan, &mut model, &mut ModelParent::default());
//! assert!(run.error().is_none());
//! assert_eq!(model.open_fd_count(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod apply;
pub mod config;
pub mod error;
pub mod exec;
pub mod kind;
pub mod model;
pub mod plan;
pub mod propagation;
pub mod run;
pub mod simulate;
pub mod sync;
pub mod syscall;
pub mod trace;

pub use apply::{apply, Applied, ApplyError, NoSync, SyncHooks, SyncRequest};
pub use config::{
    validate, AbsPath, Action, Clock, ConfigError, Entry, IdMapping, NsConfig, RawLinux, TimeOffset,
};
pub use error::{Errno, ErrorCode, MapFile, SyncError};
pub use kind::{Kind, KindSet};
pub use plan::{plan, Plan, Step, SyncPoint};
pub use syscall::{linux, Forked, Syscall, ThreadCountError};
pub use trace::{Outcome, Trace, TraceError, TraceStep, Unjoined};
