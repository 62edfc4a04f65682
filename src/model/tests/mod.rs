//! The model's unit tests, by area: the kernel's rules (one test per row
//! of DESIGN §5's errno table, then the finer rules), id maps, the file
//! system and fds, fault scripts, and worlds.

use std::path::Path;

use super::*;
use crate::config::Clock;

mod faults;
mod files;
mod maps;
mod rules;
mod world;

pub(crate) fn model(world: World) -> Model {
    Model::new(&world).expect("a valid world")
}

pub(crate) fn open(m: &mut Model, path: &str) -> ModelFd {
    m.open_ns(Path::new(path)).expect("path opens")
}

pub(crate) fn map(host_id: u32, size: u32) -> Vec<IdMapping> {
    vec![IdMapping {
        container_id: 0,
        host_id,
        size,
    }]
}

pub(crate) fn offset(secs: i64, nanosecs: u32) -> TimeOffset {
    TimeOffset {
        clock: Clock::Monotonic,
        secs,
        nanosecs,
    }
}

/// A rootless caller (uid 1000) and the namespaces a rootless runtime
/// made earlier: user namespace `u` (root in it is uid 1000) at
/// /run/u, and network namespace `n` owned by `u` at /run/n.
pub(crate) fn rootless() -> World {
    World::new()
        .caller(CallerSpec::unprivileged(1000, 1000))
        .namespace(
            NsSpec::new("u", Kind::User)
                .created_by(1000)
                .maps(map(1000, 1), map(1000, 1))
                .at("/run/u"),
        )
        .namespace(NsSpec::new("n", Kind::Network).owned_by("u").at("/run/n"))
}
