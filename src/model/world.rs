//! The world: what exists before a run (the caller, the namespaces
//! reachable by path, the other files), as JSON or built in code, and how
//! the model is made from it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fs::{normalize, slashes, FastHash, Node, Nodes};
use super::kernel::{
    check_map_lines, host_name, is_host, Ids, Kernel, NsId, Space, KTIME_SEC_MAX, MAX_PID_NS_LEVEL,
    MAX_USER_NS_PARENT_LEVEL,
};
use super::process::ProcessSpec;
use super::Model;
use crate::config::IdMapping;
use crate::kind::Kind;

/// What exists before a run: the caller, the namespaces reachable by path,
/// and the other files of the file system.
///
/// The eight host namespaces always exist, named `host:user`, `host:pid`,
/// `host:uts`, `host:ipc`, `host:network`, `host:cgroup`, `host:mount` and
/// `host:time` (all owned by `host:user`). `World::default()` is a root
/// caller in the host namespaces and nothing else.
///
/// A `namespaces` entry named like a host namespace (`host:network`, with
/// the matching `type`) adds `paths` to it and may set nothing else.
///
/// ```
/// use nsapply::Kind;
/// use nsapply::model::{CallerSpec, FileSpec, NsSpec, World};
/// let world = World::new()
///     .caller(CallerSpec::unprivileged(1000, 1000))
///     .namespace(NsSpec::new("u", Kind::User).created_by(1000).at("/run/userns/u"))
///     .namespace(NsSpec::new("n", Kind::Network).owned_by("u").at("/run/netns/n"))
///     .file("/etc/hostname", FileSpec::Regular);
/// assert_eq!(World::from_json(&world.to_json()).unwrap(), world);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// The process that runs the plan (and, as the runtime parent, writes
    /// the id maps).
    pub caller: CallerSpec,
    /// Namespaces besides the host ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NsSpec>,
    /// Files that are not namespaces. A path neither here nor a namespace
    /// path (nor an ancestor directory of one) is missing (ENOENT).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<PathBuf, FileSpec>,
    /// The current values of the clocks a time namespace offsets
    /// ([`Clocks::default`]: one day since boot, a day of which was awake).
    #[serde(skip_serializing_if = "Clocks::is_default")]
    pub clocks: Clocks,
    /// The namespace limits of the host user namespace,
    /// `/proc/sys/user/max_<kind>_namespaces` (a kind not named has no
    /// limit the model reaches).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: Limits,
    /// Processes besides the caller, the targets of an exec: reachable by
    /// `pidfd_open` and at `/proc/<pid>/ns/*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessSpec>,
    /// Whether setns(2) takes a pidfd (Linux 5.8 and later): `None` is
    /// yes; `Some(false)` is an older kernel, which answers EINVAL (a pidfd
    /// is not a namespace file there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidfd_setns: Option<bool>,
    /// Whether the kernel's `mntns_install` tests the caller's own
    /// fs_struct, so that a caller sharing it (threads, `CLONE_FS`) cannot
    /// join a mount namespace through a pidfd even with other kinds
    /// (EINVAL): Linux 6.12.117 and later 6.12 releases
    /// ([`KernelVersion::mntns_checks_caller_fs`](super::KernelVersion::mntns_checks_caller_fs)).
    /// `None` is no, as Linux 6.18 answers: it tests the private copy
    /// `prepare_nsset` makes when `CLONE_NEWNS` comes with another flag,
    /// and lets the join through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mntns_checks_caller_fs: Option<bool>,
}

/// `max_<kind>_namespaces` per kind (the `user.max_*_namespaces` sysctls of
/// one user namespace): how many namespaces of that kind may exist in it
/// and below it. JSON: `{"network": 0}`.
pub type Limits = BTreeMap<Kind, u64>;

/// The value of a clock: seconds and nanoseconds since its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockValue {
    /// Seconds.
    pub secs: i64,
    /// Nanoseconds (below 10⁹).
    #[serde(default)]
    pub nanosecs: u32,
}

/// The clocks a time namespace can offset, at the start of a run: the
/// kernel refuses (ERANGE) an offset that would take `now + offset` below 0
/// or above `KTIME_SEC_MAX / 2` seconds (`proc_timens_set_offset`), so
/// whether a negative offset works depends on the host's uptime.
///
/// The default world has been up for one day (86400 s on both clocks);
/// `nsapply simulate --world host` reads this machine's clocks instead
/// ([`crate::simulate::host_world`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clocks {
    /// `CLOCK_MONOTONIC` (does not count suspend).
    pub monotonic: ClockValue,
    /// `CLOCK_BOOTTIME` (counts suspend).
    pub boottime: ClockValue,
}

impl Clocks {
    /// One day of uptime on both clocks.
    pub const DEFAULT: Clocks = Clocks {
        monotonic: ClockValue {
            secs: 86_400,
            nanosecs: 0,
        },
        boottime: ClockValue {
            secs: 86_400,
            nanosecs: 0,
        },
    };

    fn is_default(&self) -> bool {
        *self == Clocks::DEFAULT
    }
}

impl Default for Clocks {
    fn default() -> Self {
        Clocks::DEFAULT
    }
}

/// The calling process at the start of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerSpec {
    /// Effective (and real, saved) uid, in host terms (the kuid).
    pub uid: u32,
    /// Effective (and real, saved) gid, in host terms (the kgid).
    pub gid: u32,
    /// Number of threads (at least 1).
    pub threads: usize,
    /// Whether the caller has its capabilities effective in its user
    /// namespace; default: `uid == 0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caps: Option<bool>,
    /// The namespace the caller starts in, per kind (default: the host one).
    /// For pid it is the active pid namespace, which is also
    /// `pid_for_children`; for time also `time_for_children`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<Kind, String>,
    /// Whether the caller shares its file-system state (root, cwd, umask)
    /// with another process: it was made with `CLONE_FS`. Its threads
    /// share it too, so more than one thread implies it. setns(user) and
    /// setns(mount) then fail EINVAL.
    #[serde(skip_serializing_if = "super::is_false")]
    pub fs_shared: bool,
    /// Whether the caller is chrooted (its root is not the root of its
    /// mount namespace): unshare(user) then fails EPERM, and `/` is no
    /// mount point whose propagation could change (EINVAL). Joining a
    /// mount namespace ends it (the caller's root becomes that
    /// namespace's root); unshare(mount) does not.
    #[serde(skip_serializing_if = "super::is_false")]
    pub chroot: bool,
}

impl Default for CallerSpec {
    fn default() -> Self {
        CallerSpec::root()
    }
}

impl CallerSpec {
    /// Root with all capabilities in the host namespaces, single-threaded.
    pub fn root() -> Self {
        CallerSpec {
            uid: 0,
            gid: 0,
            threads: 1,
            caps: None,
            namespaces: BTreeMap::new(),
            fs_shared: false,
            chroot: false,
        }
    }

    /// An unprivileged user (no capabilities) in the host namespaces.
    pub fn unprivileged(uid: u32, gid: u32) -> Self {
        CallerSpec {
            uid,
            gid,
            caps: Some(false),
            ..CallerSpec::root()
        }
    }

    /// The same caller with `n` threads.
    #[must_use]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// The same caller with capabilities effective (`true`) or not in its
    /// user namespace.
    #[must_use]
    pub fn with_caps(mut self, caps: bool) -> Self {
        self.caps = Some(caps);
        self
    }

    /// The same caller starting in the namespace `name` of `kind`.
    #[must_use]
    pub fn in_ns(mut self, kind: Kind, name: impl Into<String>) -> Self {
        self.namespaces.insert(kind, name.into());
        self
    }

    /// The same caller sharing its file-system state with another process
    /// (`CLONE_FS`).
    #[must_use]
    pub fn sharing_fs(mut self) -> Self {
        self.fs_shared = true;
        self
    }

    /// The same caller in a chroot.
    #[must_use]
    pub fn chrooted(mut self) -> Self {
        self.chroot = true;
        self
    }
}

/// One namespace of the world, besides the host ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsSpec {
    /// Unique name (not `host:*`, not `new:*`).
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The owning user namespace; for a user namespace, its parent.
    /// Default `host:user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Pid namespaces only: the parent pid namespace. Default `host:pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// User namespaces only: the euid (kuid) of its creator. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_uid: Option<u32>,
    /// User namespaces only: the uid map already written, host ids in the
    /// parent's terms (`None`: not written yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_map: Option<Vec<IdMapping>>,
    /// User namespaces only: the gid map already written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid_map: Option<Vec<IdMapping>>,
    /// Time namespaces only: whether a process entered it already (its
    /// offsets are then frozen: writing them fails EACCES). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered: Option<bool>,
    /// Where it is reachable: bind mounts, or `/proc/<pid>/ns/*` of a helper.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
    /// User namespaces only: its `max_<kind>_namespaces` limits (a kind
    /// not named has no limit the model reaches).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: Limits,
}

impl NsSpec {
    /// A namespace named `name` of `kind`, with every field at its default.
    pub fn new(name: impl Into<String>, kind: Kind) -> NsSpec {
        NsSpec {
            name: name.into(),
            kind,
            owner: None,
            parent: None,
            creator_uid: None,
            uid_map: None,
            gid_map: None,
            entered: None,
            paths: Vec::new(),
            limits: Limits::new(),
        }
    }

    /// Owned by the user namespace `user_ns` (for a user namespace: its parent).
    #[must_use]
    pub fn owned_by(mut self, user_ns: impl Into<String>) -> NsSpec {
        self.owner = Some(user_ns.into());
        self
    }

    /// A pid namespace whose parent is the pid namespace `pid_parent`.
    #[must_use]
    pub fn child_of(mut self, pid_parent: impl Into<String>) -> NsSpec {
        self.parent = Some(pid_parent.into());
        self
    }

    /// A user namespace created by a process whose euid (kuid) was `uid`.
    #[must_use]
    pub fn created_by(mut self, uid: u32) -> NsSpec {
        self.creator_uid = Some(uid);
        self
    }

    /// A user namespace whose uid and gid maps are written already.
    #[must_use]
    pub fn maps(mut self, uid_map: Vec<IdMapping>, gid_map: Vec<IdMapping>) -> NsSpec {
        self.uid_map = Some(uid_map);
        self.gid_map = Some(gid_map);
        self
    }

    /// A time namespace that a process has (`true`) or has not entered.
    #[must_use]
    pub fn entered(mut self, entered: bool) -> NsSpec {
        self.entered = Some(entered);
        self
    }

    /// Reachable at `path` too.
    #[must_use]
    pub fn at(mut self, path: impl Into<PathBuf>) -> NsSpec {
        self.paths.push(path.into());
        self
    }
}

/// A file of the world that is not a namespace.
///
/// Every kind opens as nsapply opens a namespace path (a reference only,
/// `O_PATH`: no permission on the file is needed, a FIFO does not block, a
/// device's driver is not called) and is then refused by NS_GET_NSTYPE
/// with ENOTTY (`not-a-namespace`). Only a directory differs: a path can
/// go through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSpec {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A regular file with no permission bits (mode 000): an `O_PATH` open
    /// needs none, so it is refused like any other non-namespace file.
    Unreadable,
    /// A path whose lookup the kernel refuses this caller with EACCES:
    /// the `/proc/<pid>/ns/*` link of a process the caller may not ptrace
    /// (`proc_ns_get_link` checks `PTRACE_MODE_READ_FSCREDS` even for an
    /// `O_PATH` open), or a file below a directory it may not search.
    Forbidden,
    /// A FIFO (named pipe): a plain open(2) would block until a writer came.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device: a plain open(2) would run its driver.
    Device,
}

/// A world that cannot exist: malformed JSON or inconsistent references.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// The document is not JSON, or not a world.
    #[error("world is malformed at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A name that is empty or reserved (`new:*`, or a `host:*` entry that
    /// does more than add paths to that host namespace).
    #[error("namespace name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// Two namespaces with one name.
    #[error("namespace {name:?} is defined twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// One path given twice (two namespaces, a namespace and a file, or
    /// two spellings of one file).
    #[error("path {path:?} is given twice")]
    DuplicatePath {
        /// The path.
        path: PathBuf,
    },
    /// A path that is not absolute, is `/`, or lies under `/proc/self`
    /// (which the model resolves itself).
    #[error("path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A reference to a namespace that does not exist.
    #[error("{name}: {field} names unknown namespace {target:?}")]
    UnknownReference {
        /// The namespace (or `caller`) holding the reference.
        name: String,
        /// The field (`owner`, `parent`, `caller.namespaces.pid`).
        field: String,
        /// The name referred to.
        target: String,
    },
    /// A reference to a namespace of the wrong kind (an owner that is not a
    /// user namespace, a pid parent that is not a pid namespace, ...).
    #[error(
        "{name}: {field} must name a {expected} namespace, but {target:?} is a {found} namespace"
    )]
    WrongKind {
        /// The namespace (or `caller`) holding the reference.
        name: String,
        /// The field.
        field: String,
        /// The name referred to.
        target: String,
        /// The kind the field needs.
        expected: Kind,
        /// The kind it has.
        found: Kind,
    },
    /// A field set on a namespace of a kind it does not apply to.
    #[error("namespace {name:?} ({kind}): field {field} applies only to {applies_to} namespaces")]
    FieldOnWrongKind {
        /// The namespace.
        name: String,
        /// Its kind.
        kind: Kind,
        /// The field.
        field: &'static str,
        /// The kind the field is for.
        applies_to: Kind,
    },
    /// Parents that form a cycle.
    #[error("namespace {name:?}: its chain of parents is a cycle")]
    Cycle {
        /// A namespace on the cycle.
        name: String,
    },
    /// Nesting deeper than the kernel allows.
    #[error("namespace {name:?} ({kind}): nesting level {level} is deeper than the kernel allows ({max})")]
    TooDeep {
        /// The namespace.
        name: String,
        /// Its kind.
        kind: Kind,
        /// Its level (the host namespace is 0).
        level: u32,
        /// The deepest level allowed.
        max: u32,
    },
    /// An id map the kernel would not have accepted.
    #[error("namespace {name:?}: {which}: {reason}")]
    InvalidMap {
        /// The user namespace.
        name: String,
        /// `uid_map` or `gid_map`.
        which: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A caller that cannot exist.
    #[error("caller: {reason}")]
    InvalidCaller {
        /// Why it is refused.
        reason: String,
    },
    /// A process that cannot exist (a pid that is not positive, or given
    /// twice).
    #[error("process {pid}: {reason}")]
    InvalidProcess {
        /// Its pid.
        pid: i32,
        /// Why it is refused.
        reason: String,
    },
    /// A clock value that cannot be.
    #[error("clocks.{clock}: {reason}")]
    InvalidClock {
        /// `monotonic` or `boottime`.
        clock: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

impl World {
    /// The default world: a root caller in the host namespaces.
    pub fn new() -> World {
        World::default()
    }

    /// The same world with `caller`.
    #[must_use]
    pub fn caller(mut self, caller: CallerSpec) -> World {
        self.caller = caller;
        self
    }

    /// The same world with one more namespace.
    #[must_use]
    pub fn namespace(mut self, ns: NsSpec) -> World {
        self.namespaces.push(ns);
        self
    }

    /// The same world with one more process.
    #[must_use]
    pub fn process(mut self, process: ProcessSpec) -> World {
        self.processes.push(process);
        self
    }

    /// The same world with a file at `path`.
    #[must_use]
    pub fn file(mut self, path: impl Into<PathBuf>, spec: FileSpec) -> World {
        self.files.insert(path.into(), spec);
        self
    }

    /// Parses and checks a world document.
    ///
    /// # Errors
    ///
    /// [`WorldError::Json`] for malformed JSON or unknown fields, and the
    /// other variants for a world that cannot exist (see [`World::check`]).
    pub fn from_json(json: &str) -> Result<World, WorldError> {
        let world: World = serde_json::from_str(json).map_err(|e| {
            let text = e.to_string();
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m)
                .to_owned();
            WorldError::Json {
                line: e.line(),
                column: e.column(),
                message,
            }
        })?;
        world.check()?;
        Ok(world)
    }

    /// The world as pretty JSON (what [`World::from_json`] reads back).
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks that the world can exist: every reference resolves to a
    /// namespace of the right kind, names and paths are unique, nesting
    /// is within the kernel's limits and written id maps are valid.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`WorldError`].
    pub fn check(&self) -> Result<(), WorldError> {
        Model::new(self).map(|_| ())
    }
}

impl Model {
    /// A model of `world` before any call.
    ///
    /// # Errors
    ///
    /// A [`WorldError`] when the world cannot exist.
    pub fn new(world: &World) -> Result<Model, WorldError> {
        // Room for the world's namespaces and for one run creating every kind.
        let mut kernel = Kernel::host(world.namespaces.len() + Kind::ALL.len());
        kernel.spaces[Kind::User.index()].limits = limits_of(&world.limits);
        kernel.clocks =
            [world.clocks.monotonic, world.clocks.boottime].map(|c| (c.secs, c.nanosecs));
        // A world of the host namespaces alone (the default world, and
        // `nsapply simulate` without a world file) has no entries to pass over.
        let (names, nodes) = if world.namespaces.is_empty() && world.files.is_empty() {
            (Names::default(), Nodes::default())
        } else {
            let (names, ids) = add_objects(&mut kernel, world)?;
            link(&mut kernel, world, &names, &ids)?;
            set_levels(&mut kernel)?;
            count_existing(&mut kernel);
            write_maps(&mut kernel, world, &ids)?;
            let nodes = file_system(&mut kernel, world, &ids)?;
            (names, nodes)
        };
        place_caller(&mut kernel, &world.caller, &names)?;
        super::process::place_processes(&mut kernel, world, &names)?;
        kernel.pidfd_setns = world.pidfd_setns.unwrap_or(true);
        kernel.mntns_checks_caller_fs = world.mntns_checks_caller_fs.unwrap_or(false);
        kernel.pids_from = kernel.caller.ns[Kind::Pid.index()];
        Ok(Model::start(kernel, nodes))
    }
}

/// The world's namespace names and their objects.
pub(super) type Names<'w> = HashMap<&'w str, NsId, FastHash>;

/// Pass 1: one namespace object per world entry (references are resolved
/// in [`link`]); a `host:*` entry only gives paths to that host namespace.
/// Returns the world's names and each entry's object, in world order.
fn add_objects<'w>(
    kernel: &mut Kernel,
    world: &'w World,
) -> Result<(Names<'w>, Vec<NsId>), WorldError> {
    // The world's names (the host ones are looked up by `host_name`).
    let mut names = Names::with_capacity_and_hasher(world.namespaces.len(), FastHash::default());
    // The host namespaces the world gives paths to.
    let mut host_refs = [false; 8];
    let mut ids = Vec::with_capacity(world.namespaces.len());
    for spec in &world.namespaces {
        check_fields(spec)?;
        let name = spec.name.as_str();
        if name.is_empty() {
            return Err(WorldError::InvalidName {
                name: name.to_owned(),
                reason: "a name cannot be empty".to_owned(),
            });
        }
        if name.starts_with("new:") {
            return Err(WorldError::InvalidName {
                name: name.to_owned(),
                reason: "new:* names are for namespaces the run creates".to_owned(),
            });
        }
        if name.starts_with("host:") {
            let id = spec.kind.index();
            let plain = NsSpec {
                paths: spec.paths.clone(),
                ..NsSpec::new(name, spec.kind)
            };
            if kernel.spaces[id].name != name || *spec != plain {
                return Err(WorldError::InvalidName {
                    name: name.to_owned(),
                    reason: format!(
                        "an entry for a host namespace must be named host:{} with that type, and may only add paths",
                        spec.kind.spec_name()
                    ),
                });
            }
            if std::mem::replace(&mut host_refs[id], true) {
                return Err(WorldError::DuplicateName {
                    name: name.to_owned(),
                });
            }
            ids.push(id);
            continue;
        }
        if names.contains_key(name) {
            return Err(WorldError::DuplicateName {
                name: name.to_owned(),
            });
        }
        let mut space = Space::new(Cow::Owned(name.to_owned()), spec.kind, None);
        space.creator = spec.creator_uid.unwrap_or(0);
        // A creator that was root in the host had CAP_SETFCAP there.
        space.parent_could_setfcap = space.creator == 0;
        space.entered = spec.entered.unwrap_or(true);
        space.limits = limits_of(&spec.limits);
        kernel.spaces.push(space);
        let id = kernel.spaces.len() - 1;
        names.insert(name, id);
        ids.push(id);
    }
    Ok((names, ids))
}

/// Pass 2: each namespace's owner (a user namespace) and, for pid, its
/// parent, by name.
fn link(
    kernel: &mut Kernel,
    world: &World,
    names: &Names<'_>,
    ids: &[NsId],
) -> Result<(), WorldError> {
    for (spec, &id) in world.namespaces.iter().zip(ids) {
        if is_host(id) {
            continue;
        }
        let resolve = |field: &str, target: &str, expected: Kind| {
            let (tid, t) = lookup(names, &kernel.spaces, target).ok_or_else(|| {
                WorldError::UnknownReference {
                    name: spec.name.clone(),
                    field: field.to_owned(),
                    target: target.to_owned(),
                }
            })?;
            if t.kind != expected {
                return Err(WorldError::WrongKind {
                    name: spec.name.clone(),
                    field: field.to_owned(),
                    target: target.to_owned(),
                    expected,
                    found: t.kind,
                });
            }
            Ok(tid)
        };
        let owner = resolve(
            "owner",
            spec.owner.as_deref().unwrap_or("host:user"),
            Kind::User,
        )?;
        let parent = match spec.kind {
            Kind::Pid => Some(resolve(
                "parent",
                spec.parent.as_deref().unwrap_or("host:pid"),
                Kind::Pid,
            )?),
            _ => None,
        };
        kernel.spaces[id].owner = Some(owner);
        kernel.spaces[id].parent = parent;
    }
    Ok(())
}

/// The nesting levels of user and pid namespaces, refusing cycles and
/// nesting the kernel would not allow.
fn set_levels(kernel: &mut Kernel) -> Result<(), WorldError> {
    let user_parent = |s: &Space| if s.kind == Kind::User { s.owner } else { None };
    let pid_parent = |s: &Space| s.parent;
    for id in Kind::ALL.len()..kernel.spaces.len() {
        let s = &kernel.spaces[id];
        let (level, max) = match s.kind {
            Kind::User => (
                chain_level(&kernel.spaces, id, user_parent),
                MAX_USER_NS_PARENT_LEVEL + 1,
            ),
            Kind::Pid => (
                chain_level(&kernel.spaces, id, pid_parent),
                MAX_PID_NS_LEVEL,
            ),
            _ => continue,
        };
        let level = level.ok_or_else(|| WorldError::Cycle {
            name: s.name.to_string(),
        })?;
        if level > max {
            return Err(WorldError::TooDeep {
                name: s.name.to_string(),
                kind: s.kind,
                level,
                max,
            });
        }
        kernel.spaces[id].level = level;
    }
    Ok(())
}

/// The maps the world's user namespaces have, parents before children
/// (a child's host ids must be mapped in its parent), checked as
/// `map_write` would.
fn write_maps(kernel: &mut Kernel, world: &World, ids: &[NsId]) -> Result<(), WorldError> {
    let mut users: Vec<(NsId, &NsSpec)> = world
        .namespaces
        .iter()
        .zip(ids)
        .filter(|(s, id)| s.kind == Kind::User && !is_host(**id))
        .map(|(s, id)| (*id, s))
        .collect();
    users.sort_by_key(|(id, _)| kernel.spaces[*id].level);
    for (id, spec) in users {
        for (ids_kind, lines) in [(Ids::Uid, &spec.uid_map), (Ids::Gid, &spec.gid_map)] {
            let Some(lines) = lines else { continue };
            let invalid = |reason: &str| WorldError::InvalidMap {
                name: spec.name.clone(),
                which: ids_kind.file(),
                reason: reason.to_owned(),
            };
            check_map_lines(lines).map_err(invalid)?;
            let parent = kernel.owner_of(id);
            if !lines
                .iter()
                .all(|l| kernel.range_mapped(parent, ids_kind, l.host_id, l.size))
            {
                return Err(invalid(
                    "host ids are not mapped in the parent user namespace",
                ));
            }
            let lines = Some(Cow::Owned(lines.clone()));
            match ids_kind {
                Ids::Uid => kernel.spaces[id].uid_map = lines,
                Ids::Gid => kernel.spaces[id].gid_map = lines,
            }
        }
    }
    Ok(())
}

/// The file system: every namespace path and file of the world, and the
/// directories above them.
fn file_system(kernel: &mut Kernel, world: &World, ids: &[NsId]) -> Result<Nodes, WorldError> {
    let paths = world
        .namespaces
        .iter()
        .map(|s| s.paths.len())
        .sum::<usize>();
    // Each path, and usually few directories besides.
    let mut nodes = Nodes::with_capacity_and_hasher(paths + world.files.len(), FastHash::default());
    let mut add = |path: String, node: Node| match nodes.entry(path.into()) {
        std::collections::hash_map::Entry::Occupied(e) => Err(WorldError::DuplicatePath {
            path: PathBuf::from(&**e.key()),
        }),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(node);
            Ok(())
        }
    };
    for (spec, &id) in world.namespaces.iter().zip(ids) {
        for p in &spec.paths {
            let p = world_path(p)?;
            kernel.spaces[id].paths.push(PathBuf::from(&p));
            add(p, Node::Ns(id))?;
        }
    }
    for (p, spec) in &world.files {
        let node = match spec {
            FileSpec::Directory => Node::Dir,
            FileSpec::Forbidden => Node::Forbidden,
            FileSpec::Regular
            | FileSpec::Unreadable
            | FileSpec::Fifo
            | FileSpec::Socket
            | FileSpec::Device => Node::File,
        };
        add(world_path(p)?, node)?;
    }
    // Every ancestor of a world path is a directory, unless the world
    // says otherwise (a file there makes the path below it ENOTDIR).
    // (The missing ones are gathered first, so the world's paths are not
    // copied to walk them while the map grows.)
    let mut dirs: Vec<Box<str>> = Vec::new();
    for p in nodes.keys() {
        for end in slashes(p).skip(1) {
            let dir = &p[..end];
            if !nodes.contains_key(dir) && !dirs.iter().any(|d| &**d == dir) {
                dirs.push(dir.into());
            }
        }
    }
    for d in dirs {
        nodes.insert(d, Node::Dir);
    }
    Ok(nodes)
}

/// The caller: its namespaces (by name), credentials and threads.
fn place_caller(kernel: &mut Kernel, c: &CallerSpec, names: &Names<'_>) -> Result<(), WorldError> {
    if c.threads == 0 {
        return Err(WorldError::InvalidCaller {
            reason: "a process has at least one thread".to_owned(),
        });
    }
    for (name, clock) in [
        ("monotonic", kernel.clocks[0]),
        ("boottime", kernel.clocks[1]),
    ] {
        // At most KTIME_SEC_MAX / 2 s: the uptime proc_timens_set_offset
        // assumes (and `now + offset` in the model cannot overflow then).
        if !(0..=KTIME_SEC_MAX / 2).contains(&clock.0) || clock.1 > 999_999_999 {
            return Err(WorldError::InvalidClock {
                clock: name,
                reason: format!(
                    "it reads {}.{:09} s: a clock is at least 0 and at most {} s (KTIME_SEC_MAX / 2), with nanoseconds below 10^9",
                    clock.0,
                    clock.1,
                    KTIME_SEC_MAX / 2
                ),
            });
        }
    }
    for (&kind, name) in &c.namespaces {
        let field = format!("namespaces.{}", kind.spec_name());
        let (id, s) =
            lookup(names, &kernel.spaces, name).ok_or_else(|| WorldError::UnknownReference {
                name: "caller".to_owned(),
                field: field.clone(),
                target: name.clone(),
            })?;
        if s.kind != kind {
            return Err(WorldError::WrongKind {
                name: "caller".to_owned(),
                field,
                target: name.clone(),
                expected: kind,
                found: s.kind,
            });
        }
        if kind == Kind::Time && !s.entered {
            return Err(WorldError::InvalidCaller {
                reason: format!("it is in time namespace {name:?}, so that namespace is entered"),
            });
        }
        kernel.caller.ns[kind.index()] = id;
    }
    let caller = &mut kernel.caller;
    caller.pid_for_children = caller.ns[Kind::Pid.index()];
    caller.time_for_children = caller.ns[Kind::Time.index()];
    caller.euid = c.uid;
    caller.egid = c.gid;
    caller.caps = c.caps.unwrap_or(c.uid == 0);
    caller.threads = c.threads;
    // Threads share the fs_struct of their process.
    caller.fs_shared = c.fs_shared || c.threads > 1;
    caller.chroot = c.chroot;
    Ok(())
}

/// A world's limits as the kernel keeps them: one per kind, no limit where
/// none is named.
fn limits_of(limits: &Limits) -> [u32; 8] {
    let mut out = [u32::MAX; 8];
    for (kind, max) in limits {
        out[kind.index()] = u32::try_from(*max).unwrap_or(u32::MAX);
    }
    out
}

/// The namespaces that exist count in the ucounts of the user namespace
/// that owns each (and of its ancestors), as they did when they were made.
fn count_existing(kernel: &mut Kernel) {
    for id in Kind::ALL.len()..kernel.spaces.len() {
        let kind = kernel.spaces[id].kind.index();
        let mut at = kernel.spaces[id].owner;
        while let Some(n) = at {
            kernel.spaces[n].counts[kind] += 1;
            at = kernel.spaces[n].owner;
        }
    }
}

/// The namespace named `name`: a host one, or one of the world's (`names`).
pub(super) fn lookup<'a>(
    names: &Names<'_>,
    spaces: &'a [Space],
    name: &str,
) -> Option<(NsId, &'a Space)> {
    let host = Kind::ALL.into_iter().find(|k| host_name(*k) == name);
    host.map(Kind::index)
        .or_else(|| names.get(name).copied())
        .map(|id| (id, &spaces[id]))
}

/// Depth of `id` along `up`, or `None` when the chain loops.
fn chain_level(spaces: &[Space], id: NsId, up: impl Fn(&Space) -> Option<NsId>) -> Option<u32> {
    // A chain without a loop visits each namespace at most once.
    let mut at = id;
    for level in 0..=spaces.len() {
        match up(&spaces[at]) {
            None => return u32::try_from(level).ok(),
            Some(next) => at = next,
        }
    }
    None
}

/// Refuses fields set on a kind they do not apply to.
fn check_fields(spec: &NsSpec) -> Result<(), WorldError> {
    let wrong = |field: &'static str, applies_to: Kind| WorldError::FieldOnWrongKind {
        name: spec.name.clone(),
        kind: spec.kind,
        field,
        applies_to,
    };
    let only = |set: bool, field: &'static str, applies_to: Kind| {
        if set && spec.kind != applies_to {
            Err(wrong(field, applies_to))
        } else {
            Ok(())
        }
    };
    only(spec.parent.is_some(), "parent", Kind::Pid)?;
    only(spec.creator_uid.is_some(), "creator_uid", Kind::User)?;
    only(spec.uid_map.is_some(), "uid_map", Kind::User)?;
    only(spec.gid_map.is_some(), "gid_map", Kind::User)?;
    only(spec.entered.is_some(), "entered", Kind::Time)?;
    only(!spec.limits.is_empty(), "limits", Kind::User)
}

/// The normal form of a world path, or why it is refused.
fn world_path(path: &Path) -> Result<String, WorldError> {
    let invalid = |reason: &str| WorldError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.is_absolute() {
        return Err(invalid("must be absolute"));
    }
    let (norm, _) = normalize(path);
    let mut parts = norm.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (None, _) => Err(invalid("cannot be the root directory")),
        (Some("proc"), None | Some("self" | "thread-self")) => Err(invalid(
            "/proc and /proc/self belong to the model (it resolves /proc/self/ns itself)",
        )),
        _ => Ok(norm.into_owned()),
    }
}
