//! The external-expectations corpus (`tests/data/external/`): situations
//! taken from LTP, the kernel selftests, the man pages and (where they are
//! silent) the kernel source, each with the errno its source expects and
//! the errno the kernel returned. The corpus was written from those
//! sources, not from the model: it checks the model against expectations
//! nobody here wrote.
//!
//! * [`Corpus`], [`Row`], [`Op`]: the data, as the corpus README describes
//!   it (row format, `caller`, `world`, `ops`).
//! * [`run_on_model`]: one row on the model: the row's caller and world
//!   become a [`World`], its ops calls on the [`Model`], and the answer is
//!   each op's [`Outcome`](nsapply::Outcome).
//! * [`Unsupported`]: a row whose situation the engine's calls cannot
//!   express (a raw nstype, a realtime clock, an ioctl the engine never
//!   makes); each says why, and the test lists them.
//!
//! The same rows run on the kernel, as root, through the same [`Backend`]
//! interface; the test `harness/tests/external.rs` requires the model's
//! answers to equal the kernel's.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use nsapply::config::{Clock, IdMapping, TimeOffset};
use nsapply::error::{Errno, MapFile};
use nsapply::kind::{Kind, KindSet};
use nsapply::model::{
    CallerSpec, ClockValue, FileSpec, KernelVersion, Model, ModelFd, NsSpec, ProcessSpec,
    ProcessState, World,
};
use nsapply::syscall::Syscall;

/// The corpus, embedded at build time.
pub const CORPUS_JSON: &str = include_str!("../../tests/data/external/expectations.json");

/// The whole table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    /// The format version (1).
    pub version: u32,
    /// The kernel the `kernel` column was measured on.
    pub kernel: String,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Corpus {
    /// The embedded corpus.
    ///
    /// # Errors
    ///
    /// The JSON does not match the row format.
    pub fn load() -> Result<Corpus, serde_json::Error> {
        serde_json::from_str(CORPUS_JSON)
    }
}

/// One situation, its source, and the answers expected.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Stable name.
    pub id: String,
    /// The area (setns, unshare, timens, idmap, ...).
    pub area: String,
    /// Where the expectation comes from.
    pub source: Source,
    /// More sources that say the same.
    #[serde(default)]
    pub also_sources: Vec<Source>,
    /// The process that makes the calls.
    pub caller: Caller,
    /// What exists before the ops.
    #[serde(default)]
    pub world: Vec<Entry>,
    /// The calls, in order; every one but the last must succeed.
    pub ops: Vec<Op>,
    /// What the source expects of the last op (`ok` or an errno name).
    pub expect: String,
    /// What the kernel returned for the last op (`ok` or an errno name).
    pub kernel: String,
    /// Kernels that answer the last op otherwise than [`Row::kernel`], by
    /// version range (the model knows them: [`World::on_kernel`]).
    #[serde(default)]
    pub kernels: Vec<KernelAnswer>,
    /// Remarks.
    #[serde(default)]
    pub notes: Option<String>,
    /// Why the model does not cover this row, when it does not.
    #[serde(default)]
    pub left_out: Option<String>,
    /// How the row was produced on the kernel.
    pub realize: String,
}

/// What a range of kernel versions answers for a row's last op, where it
/// differs from the corpus's kernel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelAnswer {
    /// The first version that answers so (`6.12.117`).
    pub from: String,
    /// The first version past the range (`6.13`): it answers as
    /// [`Row::kernel`] again.
    pub before: String,
    /// The answer (`ok` or an errno name).
    pub kernel: String,
    /// Where the range was read and measured.
    pub evidence: String,
}

impl KernelAnswer {
    /// `from` and `before` as versions.
    ///
    /// # Errors
    ///
    /// One of them is not a version.
    pub fn range(&self) -> Result<(KernelVersion, KernelVersion), String> {
        let v = |t: &str| KernelVersion::parse(t).ok_or_else(|| format!("{t:?} is not a version"));
        Ok((v(&self.from)?, v(&self.before)?))
    }
}

/// A source of an expectation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `man`, `ltp`, `selftest` or `kernel`.
    pub kind: String,
    /// Where, with lines and version.
    #[serde(rename = "ref")]
    pub reference: String,
    /// What it says, in short.
    pub says: String,
}

/// The calling process at the start of a row.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Effective, real and saved uid (gid = uid), in host terms.
    pub uid: u32,
    /// Whether it has its capabilities in its own user namespace.
    pub caps: bool,
    /// Its threads.
    pub threads: usize,
    /// `{kind: name}` of the namespaces it is in (default: the initial ones).
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// It shares its fs_struct (made with CLONE_FS).
    #[serde(default)]
    pub fs_shared: bool,
    /// It is chrooted.
    #[serde(default)]
    pub chroot: bool,
    /// The depth of its user and active pid namespaces below the initial
    /// ones (the namespaces in between are not in `world`).
    #[serde(default)]
    pub nesting: Nesting,
    /// Capabilities removed (a left-out row).
    #[serde(default)]
    pub caps_dropped: Vec<String>,
}

/// Nesting depths.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nesting {
    /// User namespaces between the initial one and the caller's.
    #[serde(default)]
    pub user: u32,
    /// Pid namespaces between the initial one and the caller's active one.
    #[serde(default)]
    pub pid: u32,
}

/// One entry of a row's world.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A namespace.
    Namespace(NsEntry),
    /// A file that is not a namespace.
    File(FileEntry),
    /// A process (pidfd rows).
    Process(ProcessEntry),
    /// A clock's current value.
    Clock(ClockEntry),
}

/// A namespace of a row's world (the model's [`NsSpec`] fields).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsEntry {
    /// Its name in the row.
    pub name: String,
    /// Its kind (spec name).
    #[serde(rename = "type")]
    pub kind: String,
    /// The owning user namespace (for a user namespace, its parent).
    #[serde(default)]
    pub owner: Option<String>,
    /// Pid: the parent pid namespace.
    #[serde(default)]
    pub parent: Option<String>,
    /// User: the creator's euid.
    #[serde(default)]
    pub creator_uid: Option<u32>,
    /// User: the uid map written, `[inside, outside, count]` lines.
    #[serde(default)]
    pub uid_map: Option<Vec<[u32; 3]>>,
    /// User: the gid map written.
    #[serde(default)]
    pub gid_map: Option<Vec<[u32; 3]>>,
    /// Time: a process has entered it.
    #[serde(default)]
    pub entered: Option<bool>,
    /// User: `max_<kind>_namespaces` set in it.
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
}

/// A file of a row's world.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its path.
    pub path: PathBuf,
    /// `regular`, `directory` or `unreadable`.
    pub file: String,
}

/// A process of a row's world (for setns through a pidfd).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessEntry {
    /// Its name (`self` is the caller).
    pub process: String,
    /// Its uid.
    pub uid: u32,
    /// `running`, `exited` or `reaped`.
    pub state: String,
    /// `{kind: name}` of its namespaces.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
}

/// A clock's current value.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockEntry {
    /// `monotonic` or `boottime`.
    pub clock: String,
    /// Seconds.
    pub secs: i64,
}

/// One call of a row.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// `open(O_RDONLY|O_CLOEXEC)` of a namespace or a path.
    Open {
        /// A world namespace, `host:<kind>`, `proc-self:<kind>` or
        /// `for-children:<pid|time>`.
        #[serde(default)]
        target: Option<String>,
        /// A path.
        #[serde(default)]
        path: Option<PathBuf>,
        /// With `component_len`: a missing absolute path of this length.
        #[serde(default)]
        path_len: Option<usize>,
        /// The length of each component of that path.
        #[serde(default)]
        component_len: Option<usize>,
    },
    /// Close an fd opened before.
    Close {
        /// The target or path it was opened as.
        target: String,
    },
    /// `setns(fd, flag)`.
    Setns {
        /// The fd's target.
        target: String,
        /// A kind, or a raw nstype.
        #[serde(rename = "type")]
        kind: serde_json::Value,
    },
    /// `setns(pidfd, flags)`.
    SetnsPidfd {
        /// The process.
        target_process: String,
        /// The kinds of the flags.
        #[serde(default)]
        types: Vec<String>,
        /// Raw flags (a left-out row).
        #[serde(default)]
        flags_raw: Option<serde_json::Value>,
    },
    /// One `unshare` of the kinds' flags.
    Unshare {
        /// The kinds.
        #[serde(default)]
        types: Vec<String>,
        /// Raw flags (a left-out row).
        #[serde(default)]
        flags_raw: Option<serde_json::Value>,
    },
    /// `clone` (left-out rows).
    Clone {
        /// The kinds.
        types: Vec<String>,
        /// What is shared.
        share: Vec<String>,
    },
    /// The caller forks; the child enters the for-children namespaces.
    Fork,
    /// One write of all lines to `timens_offsets`.
    TimeOffsets {
        /// Another process's file (not the engine's call).
        #[serde(default)]
        target_process: Option<String>,
        /// The lines.
        #[serde(default)]
        offsets: Vec<OffsetLine>,
        /// Raw text (left-out rows).
        #[serde(default)]
        raw: Option<String>,
    },
    /// One write of `uid_map`.
    UidMap {
        /// A world user namespace, or `self`.
        target: String,
        /// The lines.
        lines: Lines,
        /// The text's length, as the source counted it.
        #[serde(default)]
        text_bytes: Option<usize>,
    },
    /// One write of `gid_map`.
    GidMap {
        /// A world user namespace, or `self`.
        target: String,
        /// The lines.
        lines: Lines,
        /// The text's length.
        #[serde(default)]
        text_bytes: Option<usize>,
    },
    /// A write to `setgroups`.
    Setgroups {
        /// A world user namespace, or `self`.
        target: String,
        /// `deny` or `allow`.
        value: String,
    },
    /// `setresgid(0,0,0)` then `setresuid(0,0,0)`.
    Setresid,
    /// `ioctl(fd, NS_GET_*)`.
    Ioctl {
        /// The fd's target or path.
        target: String,
        /// The request.
        request: String,
        /// What it returns (a namespace or a value).
        #[serde(default)]
        returns: Option<serde_json::Value>,
    },
}

/// One line of a `timens_offsets` write.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetLine {
    /// `monotonic`, `boottime`, `realtime`, or a clock id.
    pub clock: serde_json::Value,
    /// The offset.
    #[serde(default)]
    pub secs: Option<i64>,
    /// Instead of `secs`: the value `now + offset` must have.
    #[serde(default)]
    pub secs_from_now: Option<i64>,
    /// Nanoseconds.
    #[serde(default)]
    pub nanosecs: i64,
}

/// The lines of a map write.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Lines {
    /// `[[inside, outside, count], ...]`.
    List(Vec<[u32; 3]>),
    /// `n` lines `inside+i*stride outside+i*stride count`, then `then`.
    Series {
        /// The series.
        series: Series,
        /// Lines after it.
        #[serde(default)]
        then: Vec<[u32; 3]>,
    },
}

/// A series of map lines.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// How many.
    pub n: u32,
    /// The first inside id.
    pub inside: u32,
    /// The first outside id.
    pub outside: u32,
    /// The step.
    pub stride: u32,
    /// Each line's count.
    pub count: u32,
}

impl Lines {
    /// The lines as the engine's mappings.
    pub fn mappings(&self) -> Vec<IdMapping> {
        let line = |[container_id, host_id, size]: [u32; 3]| IdMapping {
            container_id,
            host_id,
            size,
        };
        match self {
            Lines::List(v) => v.iter().copied().map(line).collect(),
            Lines::Series { series: s, then } => (0..s.n)
                .map(|i| {
                    line([
                        s.inside.wrapping_add(i.wrapping_mul(s.stride)),
                        s.outside.wrapping_add(i.wrapping_mul(s.stride)),
                        s.count,
                    ])
                })
                .chain(then.iter().copied().map(line))
                .collect(),
        }
    }
}

/// The answer of one call: `ok` or an errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It succeeded (with the value the row names, if it names one).
    Ok,
    /// It failed with this errno.
    Err(Errno),
    /// It succeeded with another value than the row names (an ioctl).
    Returned(i64),
}

impl Answer {
    /// `ok` or an errno name, as the corpus writes it.
    ///
    /// # Errors
    ///
    /// Neither `ok` nor a known errno name.
    pub fn parse(text: &str) -> Result<Answer, String> {
        if text == "ok" {
            return Ok(Answer::Ok);
        }
        text.parse::<Errno>()
            .map(Answer::Err)
            .map_err(|_| format!("{text:?} is neither ok nor an errno name"))
    }

    fn of(r: Result<(), Errno>) -> Answer {
        match r {
            Ok(()) => Answer::Ok,
            Err(e) => Answer::Err(e),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Ok => f.write_str("ok"),
            Answer::Err(e) => f.write_str(&e.name()),
            Answer::Returned(v) => write!(f, "ok, returning {v:#x}"),
        }
    }
}

/// Why a row cannot be run through the engine's calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// A kind by its spec name.
///
/// # Errors
///
/// Not one of the eight names.
pub fn kind(name: &str) -> Result<Kind, Unsupported> {
    Kind::from_spec_name(name)
        .ok_or_else(|| Unsupported(format!("unknown namespace type {name:?}")))
}

/// The kinds of a list of spec names.
///
/// # Errors
///
/// A name that is not a kind.
pub fn kinds(names: &[String]) -> Result<KindSet, Unsupported> {
    let mut set = KindSet::EMPTY;
    for n in names {
        set.insert(kind(n)?);
    }
    Ok(set)
}

/// The clock of an offset line, as the engine names clocks.
///
/// # Errors
///
/// `realtime` (clock id 0) or another clock the engine cannot name:
/// validation refuses such a config (`invalid-time-offset`) before any
/// call, so no engine call carries it.
pub fn clock(value: &serde_json::Value) -> Result<Clock, Unsupported> {
    match value {
        serde_json::Value::String(s) if s == "monotonic" => Ok(Clock::Monotonic),
        serde_json::Value::String(s) if s == "boottime" => Ok(Clock::Boottime),
        serde_json::Value::Number(n) if n.as_u64() == Some(1) => Ok(Clock::Monotonic),
        serde_json::Value::Number(n) if n.as_u64() == Some(7) => Ok(Clock::Boottime),
        other => unsupported(format!(
            "clock {other}: the engine's Clock names monotonic and boottime only (validation refuses any other with invalid-time-offset)"
        )),
    }
}

/// The missing absolute path of `len` bytes made of `component`-byte
/// components (the last one shorter if it must be) that the `path_len` ops
/// open.
pub fn long_path(len: usize, component: usize) -> PathBuf {
    let mut s = String::with_capacity(len);
    while s.len() < len {
        let room = len - s.len() - 1;
        s.push('/');
        s.extend(std::iter::repeat_n(
            'a',
            component.clamp(1, room.max(1)).min(room),
        ));
        if room == 0 {
            break;
        }
    }
    PathBuf::from(s)
}

/// Where the model world makes the namespace `name` reachable.
fn ns_path(name: &str) -> PathBuf {
    Path::new("/nsapply-external/ns").join(name)
}

/// The path an op's `target` (or `path`) names, in the model's world.
fn target_path(target: &str) -> Result<PathBuf, Unsupported> {
    if let Some(k) = target.strip_prefix("proc-self:") {
        return Ok(Path::new("/proc/self/ns").join(kind(k)?.proc_name()));
    }
    if let Some(k) = target.strip_prefix("for-children:") {
        return Ok(Path::new("/proc/self/ns").join(kind(k)?.proc_name_for_children()));
    }
    if target.starts_with('/') {
        return Ok(PathBuf::from(target));
    }
    Ok(ns_path(target))
}

/// The model's world for a row: the caller, the world's namespaces (each
/// reachable at a path of its own), files and clocks; nested user and pid
/// namespaces for `caller.nesting`.
///
/// # Errors
///
/// What the model has no field for (processes, dropped capabilities).
pub fn model_world(row: &Row) -> Result<World, Unsupported> {
    let c = &row.caller;
    if !c.caps_dropped.is_empty() {
        return unsupported("the model's capabilities are all or nothing");
    }
    let mut caller = CallerSpec::unprivileged(c.uid, c.uid)
        .with_caps(c.caps)
        .threads(c.threads);
    caller.fs_shared = c.fs_shared;
    caller.chroot = c.chroot;
    // /tmp exists on every host the rows ran on.
    let mut world = World::new().file("/tmp", FileSpec::Directory);
    // Nesting: a chain of user namespaces, each mapping every id, and of
    // pid namespaces, the caller in the deepest.
    let full = vec![IdMapping {
        container_id: 0,
        host_id: 0,
        size: u32::MAX,
    }];
    let mut owner = "host:user".to_owned();
    for level in 1..=c.nesting.user {
        let name = format!("nest:user:{level}");
        world = world.namespace(
            NsSpec::new(&name, Kind::User)
                .owned_by(&owner)
                .created_by(c.uid)
                .maps(full.clone(), full.clone()),
        );
        owner = name;
    }
    if c.nesting.user > 0 {
        caller = caller.in_ns(Kind::User, &owner);
    }
    let mut parent = "host:pid".to_owned();
    for level in 1..=c.nesting.pid {
        let name = format!("nest:pid:{level}");
        world = world.namespace(NsSpec::new(&name, Kind::Pid).child_of(&parent));
        parent = name;
    }
    if c.nesting.pid > 0 {
        caller = caller.in_ns(Kind::Pid, &parent);
    }
    for (k, name) in &c.namespaces {
        caller = caller.in_ns(kind(k)?, name);
    }
    world = world.caller(caller);
    // The host namespaces the ops name get a path too.
    let mut host_targets = std::collections::BTreeSet::new();
    for op in &row.ops {
        let target = match op {
            Op::Open {
                target: Some(t), ..
            } => t,
            _ => continue,
        };
        if let Some(k) = target.strip_prefix("host:") {
            host_targets.insert(kind(k)?);
        }
    }
    for k in host_targets {
        let name = format!("host:{}", k.spec_name());
        world = world.namespace(NsSpec::new(&name, k).at(ns_path(&name)));
    }
    for entry in &row.world {
        match entry {
            Entry::Namespace(ns) => world = world.namespace(ns_spec(ns)?),
            Entry::File(f) => {
                let spec = match f.file.as_str() {
                    "regular" => FileSpec::Regular,
                    "directory" => FileSpec::Directory,
                    // A path whose open fails EACCES whoever opens it (the
                    // corpus uses it for another user's /proc/PID/ns/*).
                    "unreadable" => FileSpec::Forbidden,
                    other => return unsupported(format!("file kind {other:?}")),
                };
                world = world.file(&f.path, spec);
            }
            Entry::Clock(clk) => {
                let value = ClockValue {
                    secs: clk.secs,
                    nanosecs: 0,
                };
                match clock(&serde_json::Value::String(clk.clock.clone()))? {
                    Clock::Monotonic => world.clocks.monotonic = value,
                    Clock::Boottime => world.clocks.boottime = value,
                }
            }
            Entry::Process(proc) => world = world.process(process_spec(row, proc)?),
        }
    }
    Ok(world)
}

/// The pid a world process of a row gets in the model (rows name
/// processes, the model numbers them).
pub fn process_pid(row: &Row, name: &str) -> Option<i32> {
    row.world
        .iter()
        .filter_map(|e| match e {
            Entry::Process(p) => Some(p.process.as_str()),
            _ => None,
        })
        .position(|n| n == name)
        .and_then(|i| i32::try_from(i).ok())
        .map(|i| 1000 + i)
}

/// A row's process as a model process: `self` is one with the caller's
/// uid and starting namespaces (the rows that name it make one call).
fn process_spec(row: &Row, p: &ProcessEntry) -> Result<ProcessSpec, Unsupported> {
    let pid = process_pid(row, &p.process).ok_or_else(|| Unsupported("no pid".into()))?;
    let state = match p.state.as_str() {
        "running" => ProcessState::Running,
        "exited" => ProcessState::Exited,
        "reaped" => ProcessState::Reaped,
        other => return unsupported(format!("process state {other:?}")),
    };
    let mut spec = ProcessSpec::new(pid).uid(p.uid).state(state);
    let names = if p.process == "self" {
        &row.caller.namespaces
    } else {
        &p.namespaces
    };
    for (k, name) in names {
        if k == "time_for_children" {
            spec.time_for_children = Some(name.clone());
        } else if k == "pid_for_children" {
            return unsupported("a process whose pid_for_children differs from its pid namespace");
        } else {
            spec = spec.in_ns(kind(k)?, name);
        }
    }
    Ok(spec)
}

fn ns_spec(ns: &NsEntry) -> Result<NsSpec, Unsupported> {
    let k = kind(&ns.kind)?;
    let mut spec = NsSpec::new(&ns.name, k).at(ns_path(&ns.name));
    if let Some(o) = &ns.owner {
        spec = spec.owned_by(o);
    }
    if let Some(p) = &ns.parent {
        spec = spec.child_of(p);
    }
    if let Some(uid) = ns.creator_uid {
        spec = spec.created_by(uid);
    }
    let lines = |v: &Vec<[u32; 3]>| Lines::List(v.clone()).mappings();
    spec.uid_map = ns.uid_map.as_ref().map(lines);
    spec.gid_map = ns.gid_map.as_ref().map(lines);
    if let Some(e) = ns.entered {
        spec = spec.entered(e);
    }
    for (name, &value) in &ns.limits {
        let limited = name
            .strip_prefix("max_")
            .and_then(|n| n.strip_suffix("_namespaces"))
            .and_then(|n| Kind::ALL.into_iter().find(|k| k.proc_name() == n))
            .ok_or_else(|| Unsupported(format!("limit {name:?}")))?;
        spec.limits.insert(limited, value);
    }
    Ok(spec)
}

/// What the ops of a row ask of a backend, whichever it is: the calls the
/// engine makes ([`Syscall`]), plus the writes of another process's maps and
/// the type check with its value. [`run_ops`] drives it.
pub trait Backend {
    /// The backend's fd.
    type Fd;
    /// `open` of a namespace path, as the engine opens one.
    fn open(&mut self, path: &Path) -> Result<Self::Fd, Errno>;
    /// `close`.
    fn close(&mut self, fd: Self::Fd);
    /// `setns(fd, kind)`.
    fn setns(&mut self, fd: &Self::Fd, kind: Kind) -> Result<(), Errno>;
    /// `unshare(kinds)`.
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno>;
    /// `fork`: the caller goes on as the child.
    fn fork(&mut self) -> Result<(), Errno>;
    /// One write of `timens_offsets`; `secs_from_now` lines are resolved
    /// by the backend against its clock.
    fn time_offsets(&mut self, lines: &[(Clock, Offset, u32)]) -> Result<(), Errno>;
    /// The caller writes `file` of the user namespace `target` (`self`: its
    /// own); for `setgroups`, `allow` says which value.
    fn write_map(
        &mut self,
        target: &str,
        file: MapFile,
        lines: &[IdMapping],
        allow: bool,
    ) -> Result<(), Errno>;
    /// `setresgid(0,0,0)` then `setresuid(0,0,0)`.
    fn setresid(&mut self) -> Result<(), Errno>;
    /// `ioctl(fd, NS_GET_NSTYPE)`.
    fn nstype(&mut self, fd: &Self::Fd) -> Result<i32, Errno>;
    /// The path an op's target names.
    fn path_of(&self, target: &str) -> Result<PathBuf, Unsupported>;
    /// `pidfd_open` of the row's process `process`, then `setns` through
    /// it with the flags of `kinds`, then close: the first errno. `None`
    /// when this backend makes no such call.
    fn setns_process(&mut self, process: &str, kinds: KindSet) -> Option<Result<(), Errno>> {
        let _ = (process, kinds);
        None
    }
}

/// The seconds of an offset line: given, or the value `now + offset` must
/// have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset {
    /// The offset itself.
    Secs(i64),
    /// `now + offset` must be this.
    FromNow(i64),
}

/// Runs a row's ops on `backend`: each op's answer, in order. The fds the
/// ops open are closed at the end (a leak is not the row's question).
///
/// # Errors
///
/// An op the engine's calls cannot express.
pub fn run_ops<B: Backend>(row: &Row, backend: &mut B) -> Result<Vec<Answer>, Unsupported> {
    check_row(row)?;
    let mut fds: BTreeMap<String, B::Fd> = BTreeMap::new();
    let mut answers = Vec::new();
    for op in &row.ops {
        let answer = match op {
            Op::Open {
                target,
                path,
                path_len,
                component_len,
            } => {
                let (key, p) = match (target, path, path_len) {
                    (Some(t), _, _) => (t.clone(), backend.path_of(t)?),
                    (None, Some(p), _) => (p.display().to_string(), p.clone()),
                    (None, None, Some(len)) => {
                        let p = long_path(*len, component_len.unwrap_or(*len));
                        (p.display().to_string(), p)
                    }
                    (None, None, None) => return unsupported("open without a target"),
                };
                match backend.open(&p) {
                    Ok(fd) => {
                        if let Some(old) = fds.insert(key, fd) {
                            backend.close(old);
                        }
                        Answer::Ok
                    }
                    Err(e) => Answer::Err(e),
                }
            }
            Op::Close { target } => {
                // A later op on it finds no fd: EBADF, as the kernel answers
                // a closed fd number.
                if let Some(fd) = fds.remove(target) {
                    backend.close(fd);
                }
                Answer::Ok
            }
            Op::Setns { target, kind: k } => {
                let k = setns_kind(k)?;
                match fds.get(target) {
                    Some(fd) => Answer::of(backend.setns(fd, k)),
                    None => Answer::Err(Errno::EBADF),
                }
            }
            Op::Unshare { types, .. } => Answer::of(backend.unshare(kinds(types)?)),
            Op::Fork => Answer::of(backend.fork()),
            Op::TimeOffsets { offsets, .. } => {
                let mut lines = Vec::new();
                for l in offsets {
                    let secs = match (l.secs, l.secs_from_now) {
                        (_, Some(x)) => Offset::FromNow(x),
                        (Some(s), None) => Offset::Secs(s),
                        (None, None) => return unsupported("an offset without secs"),
                    };
                    let nanosecs = u32::try_from(l.nanosecs)
                        .map_err(|_| Unsupported("negative nanoseconds".into()))?;
                    lines.push((clock(&l.clock)?, secs, nanosecs));
                }
                Answer::of(backend.time_offsets(&lines))
            }
            Op::UidMap { target, lines, .. } => {
                Answer::of(backend.write_map(target, MapFile::UidMap, &lines.mappings(), false))
            }
            Op::GidMap { target, lines, .. } => {
                Answer::of(backend.write_map(target, MapFile::GidMap, &lines.mappings(), false))
            }
            Op::Setgroups { target, value } => {
                Answer::of(backend.write_map(target, MapFile::Setgroups, &[], value == "allow"))
            }
            Op::Setresid => Answer::of(backend.setresid()),
            Op::Ioctl {
                target, returns, ..
            } => match fds.get(target) {
                None => Answer::Err(Errno::EBADF),
                Some(fd) => match backend.nstype(fd) {
                    Err(e) => Answer::Err(e),
                    Ok(v) => {
                        let want = returns.as_ref().and_then(serde_json::Value::as_i64);
                        if want.is_some_and(|w| w != i64::from(v)) {
                            Answer::Returned(i64::from(v))
                        } else {
                            Answer::Ok
                        }
                    }
                },
            },
            Op::SetnsPidfd {
                target_process,
                types,
                ..
            } => match backend.setns_process(target_process, kinds(types)?) {
                Some(r) => Answer::of(r),
                None => return unsupported("setns through a pidfd: not on this backend"),
            },
            Op::Clone { .. } => unreachable!("refused by check_op"),
        };
        answers.push(answer);
    }
    for (_, fd) in fds {
        backend.close(fd);
    }
    Ok(answers)
}

fn setns_kind(value: &serde_json::Value) -> Result<Kind, Unsupported> {
    match value {
        serde_json::Value::String(s) if s != "0" => kind(s),
        other => unsupported(format!(
            "setns with nstype {other}: the engine always names the kind it joins"
        )),
    }
}

/// Whether the engine's calls can express every op of a row: a row runs
/// whole or not at all.
///
/// # Errors
///
/// Why not.
pub fn check_row(row: &Row) -> Result<(), Unsupported> {
    for op in &row.ops {
        check_op(op)?;
    }
    let files: Vec<&Path> = row
        .world
        .iter()
        .filter_map(|e| match e {
            Entry::File(f) => Some(f.path.as_path()),
            _ => None,
        })
        .collect();
    for op in &row.ops {
        if let Op::Setns { target, .. } = op {
            if files.contains(&Path::new(target)) {
                return unsupported(
                    "setns on a file that is not a namespace: the engine opens it as an O_PATH \
                     reference and refuses it at NS_GET_NSTYPE (not-a-namespace), so setns never \
                     sees it (setns on that reference would be EBADF, on a plain open EINVAL)",
                );
            }
        }
    }
    Ok(())
}

/// Whether the engine's calls can express an op.
///
/// # Errors
///
/// Why not.
pub fn check_op(op: &Op) -> Result<(), Unsupported> {
    match op {
        Op::Setns { kind: k, .. } => setns_kind(k).map(drop),
        Op::SetnsPidfd {
            flags_raw: Some(_), ..
        } => unsupported("setns through a pidfd with raw flags: the engine builds them from kinds"),
        Op::Unshare {
            flags_raw: Some(_), ..
        } => unsupported("unshare with raw flags: the engine builds them from kinds"),
        Op::Clone { .. } => unsupported("clone: the engine never calls it"),
        Op::TimeOffsets {
            target_process: Some(_),
            ..
        } => unsupported("another process's timens_offsets: the engine writes its own"),
        Op::TimeOffsets { raw: Some(_), .. } => {
            unsupported("raw offsets text: the engine formats the lines itself")
        }
        Op::TimeOffsets { offsets, .. } => {
            offsets.iter().try_for_each(|l| clock(&l.clock).map(drop))
        }
        Op::Ioctl { request, .. } if request != "NS_GET_NSTYPE" => unsupported(format!(
            "{request}: the engine makes no such call (it checks types with NS_GET_NSTYPE only)"
        )),
        _ => Ok(()),
    }
}

/// The model as a row's caller.
pub struct ModelCaller {
    model: Model,
    /// The pids the model gave the row's processes, by name.
    pids: BTreeMap<String, i32>,
}

impl ModelCaller {
    /// A model of `world`.
    ///
    /// # Errors
    ///
    /// The world is not valid for the model.
    pub fn new(world: &World) -> Result<ModelCaller, Unsupported> {
        Model::new(world)
            .map(|model| ModelCaller {
                model,
                pids: BTreeMap::new(),
            })
            .map_err(|e| Unsupported(format!("the model refuses the world: {e}")))
    }
}

impl Backend for ModelCaller {
    type Fd = ModelFd;
    fn open(&mut self, path: &Path) -> Result<ModelFd, Errno> {
        self.model.open_ns(path)
    }
    fn close(&mut self, fd: ModelFd) {
        self.model.close(fd);
    }
    fn setns(&mut self, fd: &ModelFd, kind: Kind) -> Result<(), Errno> {
        self.model.setns(fd, kind)
    }
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        self.model.unshare(kinds)
    }
    fn fork(&mut self) -> Result<(), Errno> {
        self.model.fork_child_exits()
    }
    fn time_offsets(&mut self, lines: &[(Clock, Offset, u32)]) -> Result<(), Errno> {
        let clocks = self.model.clocks();
        let offsets: Vec<TimeOffset> = lines
            .iter()
            .map(|&(clock, secs, nanosecs)| {
                let now = match clock {
                    Clock::Monotonic => clocks.monotonic.secs,
                    Clock::Boottime => clocks.boottime.secs,
                };
                let secs = match secs {
                    Offset::Secs(s) => s,
                    Offset::FromNow(x) => x - now,
                };
                TimeOffset {
                    clock,
                    secs,
                    nanosecs,
                }
            })
            .collect();
        self.model.write_time_offsets(&offsets)
    }
    fn write_map(
        &mut self,
        target: &str,
        file: MapFile,
        lines: &[IdMapping],
        allow: bool,
    ) -> Result<(), Errno> {
        if allow {
            self.model.caller_allow_setgroups(target)
        } else {
            self.model.caller_write_map(target, file, lines)
        }
    }
    fn setresid(&mut self) -> Result<(), Errno> {
        self.model.set_root_ids()
    }
    fn nstype(&mut self, fd: &ModelFd) -> Result<i32, Errno> {
        self.model.ns_get_nstype(fd)
    }
    fn path_of(&self, target: &str) -> Result<PathBuf, Unsupported> {
        target_path(target)
    }
    fn setns_process(&mut self, process: &str, kinds: KindSet) -> Option<Result<(), Errno>> {
        let pid = self.pids.get(process).copied()?;
        Some(self.model.pidfd_open(pid).and_then(|fd| {
            let r = self.model.setns_pidfd(&fd, kinds);
            self.model.close(fd);
            r
        }))
    }
}

/// Runs one row on the model: each op's answer. The model's kernel is
/// the one the corpus's `kernel` column was measured on (Linux 6.18, the
/// model's default world); [`run_on_model_on`] takes another.
///
/// # Errors
///
/// The row needs what the engine's calls or the model cannot express.
pub fn run_on_model(row: &Row) -> Result<Vec<Answer>, Unsupported> {
    run_world(row, model_world(row)?)
}

/// Runs one row on the model of kernel `kernel` ([`World::on_kernel`]):
/// what a live run of the row on that kernel must answer.
///
/// # Errors
///
/// As [`run_on_model`].
pub fn run_on_model_on(row: &Row, kernel: KernelVersion) -> Result<Vec<Answer>, Unsupported> {
    run_world(row, model_world(row)?.on_kernel(kernel))
}

fn run_world(row: &Row, world: World) -> Result<Vec<Answer>, Unsupported> {
    let mut caller = ModelCaller::new(&world)?;
    for e in &row.world {
        if let Entry::Process(p) = e {
            if let Some(pid) = process_pid(row, &p.process) {
                caller.pids.insert(p.process.clone(), pid);
            }
        }
    }
    run_ops(row, &mut caller)
}

/// How a row's answers compare with what is expected of its last op (every
/// earlier op must succeed): `None` when they agree, else what differs.
pub fn judge(row: &Row, answers: &[Answer], want: Answer) -> Option<String> {
    let Some((last, before)) = answers.split_last() else {
        return Some("no op ran".to_owned());
    };
    if let Some((i, a)) = before.iter().enumerate().find(|(_, a)| **a != Answer::Ok) {
        return Some(format!(
            "op {} ({}) failed with {a}; only the last op may fail",
            i + 1,
            op_name(&row.ops[i])
        ));
    }
    (*last != want).then(|| format!("the last op answered {last}, expected {want}"))
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Open { .. } => "open",
        Op::Close { .. } => "close",
        Op::Setns { .. } => "setns",
        Op::SetnsPidfd { .. } => "setns-pidfd",
        Op::Unshare { .. } => "unshare",
        Op::Clone { .. } => "clone",
        Op::Fork => "fork",
        Op::TimeOffsets { .. } => "time-offsets",
        Op::UidMap { .. } => "uid-map",
        Op::GidMap { .. } => "gid-map",
        Op::Setgroups { .. } => "setgroups",
        Op::Setresid => "setresid",
        Op::Ioctl { .. } => "ioctl",
    }
}
