//! Running a plan on the kernel model: [`simulate`], with [`ModelParent`]
//! at the sync points. It lives above both the engine ([`apply`]) and the
//! model, so the model (a backend) never imports the engine that drives it.

use crate::apply::{apply, Applied, SyncHooks, SyncRequest};
use crate::error::SyncError;
use crate::kind::Kind;
use std::path::{Path, PathBuf};

use crate::model::{CallerSpec, ClockValue, Clocks, FileSpec, Limits, Model, World};
use crate::plan::Plan;

/// The runtime parent for the model: at `id-mapping` it writes the maps
/// with [`Model::parent_write_id_maps`]; `cgroup-placed` needs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelParent;

impl SyncHooks<Model> for ModelParent {
    fn sync(&mut self, request: SyncRequest<'_>, sys: &mut Model) -> Result<(), SyncError> {
        match request {
            SyncRequest::IdMapping { uid, gid } => sys
                .write_id_maps_as_parent(uid, gid)
                .map_err(|(file, errno)| SyncError::MapWrite { file, errno }),
            SyncRequest::CgroupPlaced => Ok(()),
        }
    }
}

/// Applies `plan` to `model` with [`ModelParent`] at the sync points.
///
/// ```
/// use nsapply::{plan, NsConfig};
/// use nsapply::model::{Model, World};
/// use nsapply::simulate::simulate;
/// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#).unwrap();
/// let mut model = Model::new(&World::default()).unwrap();
/// let run = simulate(&plan(&cfg), &mut model);
/// assert!(run.result.is_ok());
/// assert_eq!(model.current(nsapply::Kind::Pid), "new:pid:1");
/// ```
pub fn simulate(plan: &Plan, model: &mut Model) -> Applied {
    // One allocation for the calls of a usual run: a step is one call,
    // an open two, and the thread checks a few more.
    model.expect_calls(2 * plan.steps().len());
    apply(plan, model, &mut ModelParent)
}

/// The world of this machine, as `nsapply run` would meet it: the calling
/// process (its uid and gid; capabilities when it is root), the clocks'
/// current values and the namespace limits of its user namespace
/// (`/proc/sys/user/max_<kind>_namespaces`), so a plan simulated in it
/// ends as a run here would (`nsapply simulate --world host`).
///
/// What it does not observe: namespaces reachable by path (joins need a
/// world file naming them), the files along them (see [`observe_paths`],
/// which `nsapply simulate --world host` adds for the config's paths), the
/// namespaces that already count against the limits (the kernel does not
/// show them), a chroot, and other threads (the CLI has one).
///
/// # Errors
///
/// A clock or a limit could not be read.
pub fn host_world() -> std::io::Result<World> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let caller = if uid == 0 {
        CallerSpec::root()
    } else {
        CallerSpec::unprivileged(uid, gid)
    };
    let mut world = World::new().caller(caller);
    world.clocks = host_clocks()?;
    world.limits = host_limits()?;
    Ok(world)
}

/// Adds to `world` what this machine's file system has along each of
/// `paths` (the namespace paths of a plan), so that looking them up in the
/// model ends as looking them up here would: each existing directory on
/// the way, and the file at the end when it is not a namespace (a regular
/// file, a FIFO, a socket, a device). It stops at what does not exist, at a
/// name the kernel refuses (too long: the model refuses it the same way),
/// at a symbolic link (the model has none), and at a namespace file, which
/// only a world file can describe (its kind, owner and permissions).
pub fn observe_paths<'a>(world: &mut World, paths: impl IntoIterator<Item = &'a Path>) {
    use std::os::unix::fs::FileTypeExt;
    for path in paths {
        let mut prefix = PathBuf::from("/");
        for part in path.components().skip(1) {
            prefix.push(part);
            let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
                break;
            };
            let t = meta.file_type();
            let spec = if t.is_dir() {
                FileSpec::Directory
            } else if t.is_file() {
                FileSpec::Regular
            } else if t.is_fifo() {
                FileSpec::Fifo
            } else if t.is_socket() {
                FileSpec::Socket
            } else if t.is_char_device() || t.is_block_device() {
                FileSpec::Device
            } else {
                break;
            };
            // A namespace bind mount is a regular file to lstat(2) but on
            // nsfs: leave it to a world file.
            if spec == FileSpec::Regular && is_nsfs(&prefix) {
                break;
            }
            let stop = spec != FileSpec::Directory;
            world.files.entry(prefix.clone()).or_insert(spec);
            if stop {
                break;
            }
        }
    }
}

fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` now (clock_gettime(2)).
///
/// # Errors
///
/// clock_gettime(2) failed.
pub fn host_clocks() -> std::io::Result<Clocks> {
    use nix::time::{clock_gettime, ClockId};
    let read = |id: ClockId| -> std::io::Result<ClockValue> {
        let t = clock_gettime(id).map_err(std::io::Error::from)?;
        Ok(ClockValue {
            secs: t.tv_sec(),
            nanosecs: u32::try_from(t.tv_nsec()).unwrap_or(0),
        })
    };
    Ok(Clocks {
        monotonic: read(ClockId::CLOCK_MONOTONIC)?,
        boottime: read(ClockId::CLOCK_BOOTTIME)?,
    })
}

/// The `user.max_<kind>_namespaces` sysctls of the caller's user namespace
/// (`/proc/sys/user/max_mnt_namespaces`, ...): a kind whose file is missing
/// (a kernel without that kind) is left unlimited.
///
/// # Errors
///
/// A file exists but cannot be read, or does not hold a number.
pub fn host_limits() -> std::io::Result<Limits> {
    limits_in(Path::new("/proc/sys/user"))
}

/// [`host_limits`] from the `max_<kind>_namespaces` files of `dir`.
fn limits_in(dir: &Path) -> std::io::Result<Limits> {
    let mut limits = Limits::new();
    for kind in Kind::ALL {
        let path = dir.join(format!("max_{}_namespaces", kind.proc_name()));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let max = text.trim().parse::<u64>().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        limits.insert(kind, max);
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NsConfig;
    use crate::error::{Errno, ErrorCode};
    use crate::kind::Kind;
    use crate::model::tests::{offset, rootless};
    use crate::model::{CallOp, CallerSpec, FaultScript, NsSpec, World};
    use crate::plan::plan;
    use crate::syscall::Forked;

    fn model(world: World) -> Model {
        Model::new(&world).expect("a valid world")
    }

    fn config(json: &str) -> Plan {
        plan(&NsConfig::from_json(json).expect("a valid config"))
    }

    #[test]
    fn simulate_closes_every_fd_on_success() {
        let world = World::new()
            .namespace(NsSpec::new("n", Kind::Network).at("/run/netns/a"))
            .namespace(NsSpec::new("m", Kind::Mount).at("/run/mnt"));
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"network","path":"/run/netns/a"},{"type":"mount","path":"/run/mnt"},{"type":"uts"},{"type":"pid"}]}}"#,
        );
        let mut m = model(world);
        let run = simulate(&p, &mut m);
        assert!(run.error().is_none(), "{}", run.trace());
        assert_eq!(run.result, Ok(Some(Forked::Child)));
        assert_eq!((m.open_fd_count(), m.bad_closes()), (0, 0));
        assert_eq!(m.current(Kind::Network), "n");
        assert_eq!(m.current(Kind::Mount), "m");
        assert_eq!(m.current(Kind::Pid), "new:pid:1");
        assert_eq!(run.trace(), p.expected_trace());
    }

    #[test]
    fn simulate_closes_every_fd_on_a_fault() {
        let world = World::new()
            .namespace(NsSpec::new("n", Kind::Network).at("/run/netns/a"))
            .namespace(NsSpec::new("i", Kind::Ipc).at("/run/ipc"));
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"network","path":"/run/netns/a"},{"type":"ipc","path":"/run/ipc"},{"type":"uts"}]}}"#,
        );
        for rule in [
            "1=EIO",
            "2=ENOMEM",
            "3=EIO",
            "setns:network=EINVAL",
            "unshare=EPERM",
            "open:network=EACCES",
        ] {
            let mut m = model(world.clone());
            m.set_faults(FaultScript::parse(rule).unwrap());
            let run = simulate(&p, &mut m);
            assert!(run.error().is_some(), "{rule}");
            assert_eq!((m.open_fd_count(), m.bad_closes()), (0, 0), "{rule}");
        }
    }

    #[test]
    fn simulate_of_a_rootless_plan_with_its_own_id_succeeds() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"user"},{"type":"network"},{"type":"pid"}],
               "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
               "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        );
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
        let run = simulate(&p, &mut m);
        assert!(run.error().is_none(), "{}", run.trace());
        assert_eq!(
            m.namespace("new:network:1").unwrap().owner.as_deref(),
            Some("new:user:1")
        );
        assert_eq!(m.euid(), 1000);
    }

    #[test]
    fn simulate_of_a_rootless_plan_mapping_a_range_fails_writing_uid_map() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"user"}],
               "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
               "gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}"#,
        );
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
        let run = simulate(&p, &mut m);
        let error = run.error().expect("the map write fails");
        assert_eq!(error.code, ErrorCode::SyncFailed);
        // The write's errno is the error's, not only words in the message.
        assert_eq!(error.errno, Some(Errno::EPERM));
        assert!(
            error
                .message
                .contains("writing uid_map of the child failed: EPERM (Operation not permitted)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn simulate_joins_deferred_namespaces_after_the_user_namespace() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"user","path":"/run/u"},{"type":"network","path":"/run/n"}]}}"#,
        );
        let mut m = model(rootless());
        let run = simulate(&p, &mut m);
        assert!(run.error().is_none(), "{}", run.trace());
        let setns: Vec<String> = m
            .calls()
            .iter()
            .filter(|c| c.op == CallOp::Setns)
            .map(|c| format!("{}:{}", c.kind.unwrap(), c.result))
            .collect();
        assert_eq!(setns, ["network:EPERM", "user:ok", "network:ok"]);
        assert_eq!(m.current(Kind::Network), "n");
        assert_eq!(m.open_fd_count(), 0);
    }

    #[test]
    fn simulate_with_time_offsets_writes_them_before_the_child_enters() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"time"}],
               "timeOffsets":{"monotonic":{"secs":86400,"nanosecs":0}}}}"#,
        );
        let mut m = model(World::new());
        let run = simulate(&p, &mut m);
        assert!(run.error().is_none(), "{}", run.trace());
        let view = m.namespace(m.current(Kind::Time)).unwrap();
        assert_eq!(view.offsets, [offset(86_400, 0)]);
        assert_eq!(view.entered, Some(true));
    }

    #[test]
    fn observed_paths_give_the_model_this_machines_directories_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let missing = dir.path().join("missing/ns");
        let long = dir.path().join("a".repeat(300));
        let mut world = World::new();
        observe_paths(
            &mut world,
            [fifo.as_path(), missing.as_path(), long.as_path()],
        );
        assert_eq!(world.files.get(dir.path()), Some(&FileSpec::Directory));
        assert_eq!(world.files.get(&fifo), Some(&FileSpec::Fifo));
        assert!(!world.files.contains_key(&missing));
        // A character device (a block device alike) is a device file; a
        // regular file not on nsfs is a regular file.
        let regular = dir.path().join("regular");
        std::fs::write(&regular, b"").unwrap();
        let mut more = World::new();
        observe_paths(&mut more, [Path::new("/dev/null"), regular.as_path()]);
        assert_eq!(
            more.files.get(Path::new("/dev/null")),
            Some(&FileSpec::Device)
        );
        assert_eq!(more.files.get(&regular), Some(&FileSpec::Regular));
        let mut m = model(world);
        let open = |m: &mut Model, p: &Path| {
            use crate::syscall::Syscall;
            m.open_ns(p).map(|fd| m.close(fd)).err()
        };
        assert_eq!(open(&mut m, &missing), Some(Errno::ENOENT));
        assert_eq!(open(&mut m, &long), Some(Errno::ENAMETOOLONG));
        assert_eq!(open(&mut m, &fifo), None, "a reference to the FIFO");
    }

    /// The sysctl files of a directory: a number is the kind's limit, a
    /// missing file leaves the kind unlimited, and any other failure to
    /// read one is an error, not an unlimited kind (cargo-mutants, the
    /// full run's shard 14: the NotFound guard replaced by `true` passed
    /// every test, as /proc/sys/user here has every file).
    #[test]
    fn limits_are_the_numbers_of_the_files_present_and_a_file_unread_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = |kind: Kind| {
            dir.path()
                .join(format!("max_{}_namespaces", kind.proc_name()))
        };
        std::fs::write(file(Kind::User), "7\n").unwrap();
        std::fs::write(file(Kind::Time), "0").unwrap();
        let limits = limits_in(dir.path()).unwrap();
        assert_eq!(limits, Limits::from([(Kind::User, 7), (Kind::Time, 0)]));

        // A directory where a file should be: read(2) fails with EISDIR.
        std::fs::create_dir(file(Kind::Network)).unwrap();
        let e = limits_in(dir.path()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "{e}");
        std::fs::remove_dir(file(Kind::Network)).unwrap();

        std::fs::write(file(Kind::Pid), "many").unwrap();
        let e = limits_in(dir.path()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("max_pid_namespaces"), "{e}");
    }

    #[test]
    fn host_world_is_this_caller_with_this_machines_clocks_and_limits() {
        use nix::time::{clock_gettime, ClockId};
        let now = |id| {
            let t = clock_gettime(id).unwrap();
            (t.tv_sec(), u32::try_from(t.tv_nsec()).unwrap())
        };
        let before = [now(ClockId::CLOCK_MONOTONIC), now(ClockId::CLOCK_BOOTTIME)];
        let world = host_world().unwrap();
        let after = [now(ClockId::CLOCK_MONOTONIC), now(ClockId::CLOCK_BOOTTIME)];
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        // Root has its capabilities; anyone else is unprivileged.
        let caller = if uid == 0 {
            CallerSpec::root()
        } else {
            CallerSpec::unprivileged(uid, gid)
        };
        assert_eq!(world.caller, caller);
        assert_eq!(world.caller.caps, (uid != 0).then_some(false));
        assert_eq!(world.limits, host_limits().unwrap());
        assert!(
            !world.limits.is_empty(),
            "this kernel has the max_*_namespaces sysctls"
        );
        // The clocks were read then, between `before` and `after`.
        let t = |c: ClockValue| (c.secs, c.nanosecs);
        let read = [t(world.clocks.monotonic), t(world.clocks.boottime)];
        for ((b, r), a) in before.iter().zip(&read).zip(&after) {
            assert!(b <= r && r <= a, "{b:?} <= {r:?} <= {a:?}");
        }
    }

    #[test]
    fn a_namespace_file_is_on_nsfs_and_a_regular_file_is_not() {
        // statfs follows the magic link to the namespace's nsfs inode.
        assert!(is_nsfs(Path::new("/proc/self/ns/net")));
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(!is_nsfs(file.path()));
        assert!(!is_nsfs(Path::new("/nonexistent/ns")));
    }
}
