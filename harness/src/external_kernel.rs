//! The external-expectations corpus (`tests/data/external/`) on the running
//! kernel, live (issue 14): each row's world and caller are built on this
//! kernel as the corpus README says ("How the rows were realized on the
//! kernel"), and its ops run through [`KernelCaller`], the
//! [`Backend`] whose calls are the engine's own ([`Linux`]: `open_ns`,
//! `setns`, `unshare`, `set_root_ids`, `write_time_offsets`,
//! `ns_get_nstype`, `fork`, `pidfd_open`, `setns_pidfd`). The test `harness/tests/external.rs` requires
//! these answers to equal the model's ([`external::run_on_model`]).
//!
//! * [`kernel_support`]: whether a row's world can be built here, without
//!   building it; each refusal says why ([`Unsupported`]).
//! * [`run_on_kernel`]: builds the row's world, runs its ops in a caller
//!   process, and tears everything down again.
//!
//! # The processes of a row
//!
//! ```text
//! T  run_on_kernel's process: a child subreaper; reads the report, then kills and reaps everything
//! └─ R  the row process, leader of its own process group (which every process below inherits)
//!    ├─ holders: one per world namespace, and one for the host:<kind> targets (see below)
//!    ├─ short-lived writers: id maps and /proc/sys/user limits, from inside the owner user namespace
//!    ├─ world processes: the targets of setns through a pidfd, each in its namespaces
//!    └─ C  the caller: enters its starting state, then runs the ops and reports their answers (JSON, one line)
//! ```
//!
//! * **Holders** (forked by R, `PR_SET_PDEATHSIG`): open what they join while
//!   still root, become the creator's uid (then `PR_SET_DUMPABLE 1`), join
//!   the owner user namespace and the parent pid namespace (then fork, so
//!   the child is in it), `unshare` the kind, and for pid (and time, unless
//!   `entered: false`) fork once more so that a process is inside. The
//!   namespace is `/proc/<pid>/ns/<kind>` of the last process
//!   (`time_for_children` of a time namespace nobody entered). Maps are
//!   written from R's child (or, under a nested owner, from a child that
//!   joined that owner), one write per file. Limits are written after
//!   every holder exists, by a child that joined the user namespace and
//!   checked it is not the host's: never on the host.
//! * **World processes** (the pidfd rows' targets): each enters its world
//!   namespaces as the caller does (below) and sleeps; R takes a pidfd of
//!   it with the engine's `pidfd_open` while it runs, as the rows were
//!   measured, and then, for an `exited` target, kills it and leaves it a
//!   zombie (`waitid(WNOWAIT)`), for a `reaped` one reaps it. The caller
//!   inherits the pidfds; `self` is opened at the op.
//! * **The host holder**: a process of the caller's uid (dumpable) that
//!   stays in the initial namespaces, so `host:<kind>` targets are
//!   `/proc/<pid>/ns/<kind>` that the caller may open from wherever it is.
//! * **The caller**: first, as root, a private mount namespace when the row
//!   needs one (a tmpfs over `/tmp` holding the world's missing files, the
//!   bind mounts, the chroot directory; nothing of it reaches the host);
//!   the chroot (`/proc` bind-mounted inside, so the engine's checked procfs
//!   is there); the joins of every kind but user (fds opened as root); the
//!   drop to its uid (`setgroups(0)`, `setresgid`, `setresuid`, then
//!   `PR_SET_DUMPABLE 1`); the user namespace join; a fork after a pid join
//!   (the child is the caller); the nesting chains (user: `unshare` and a
//!   self-map `0 <euid> 1` per level; pid: `unshare` and a fork per level);
//!   a sleeping companion made with `clone(CLONE_FS)` (`fs_shared`); and
//!   last, after every fork, the sleeping extra threads.
//! * **Paths**: a world namespace (and a `host:<kind>` target) is
//!   `/proc/<holder>/ns/<kind>` when the kernel lets the caller open that
//!   link (the ptrace check: root, or the holder's uid, from the initial
//!   user namespace); otherwise a bind mount of it in the caller's private
//!   mount namespace, opened like the model's plain path.
//! * **Teardown**: T kills R's process group, and reaps every process until
//!   none is left (orphans come to T, the subreaper); the caller's mount
//!   namespace goes with its last process, so nothing stays mounted and no
//!   file is left on the host.

use crate::realize::{fork_and_continue, self_pid_in_proc, sleep_forever};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use nsapply::config::{id_map_text, Clock, IdMapping, TimeOffset};
use nsapply::error::{Errno, MapFile};
use nsapply::kind::{Kind, KindSet};
use nsapply::syscall::linux::{self, Linux};
use nsapply::syscall::process::{self, exit_now};
use nsapply::syscall::{Forked, Syscall};

use crate::external::{
    self, check_row, kind, model_world, run_ops, Answer, Backend, Entry, ModelCaller, Offset, Op,
    Row, Unsupported,
};
use crate::host;

/// How long [`run_on_kernel`] waits for a row's report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the teardown may take to reap every process of a row.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the caller's private tmpfs puts bind mounts and the chroot.
const SCRATCH: &str = "/tmp/nsapply-external";
/// The `/proc/<pid>` a row's path names its holder by (`/proc/HOLDER/ns/net`).
const HOLDER_PREFIX: &str = "/proc/HOLDER/";

/// Why a row gave no answers on the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// Its world cannot be built on this machine (the reason is listed).
    Unsupported(Unsupported),
    /// Building or running it failed: a bug of the row or of this module.
    Failed(String),
}

impl From<Unsupported> for KernelError {
    fn from(u: Unsupported) -> KernelError {
        KernelError::Unsupported(u)
    }
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelError::Unsupported(u) => write!(f, "cannot realize on this kernel: {u}"),
            KernelError::Failed(m) => f.write_str(m),
        }
    }
}

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// An answer as one string (`ok`, an errno name, `returned <value>`), for
/// reports between processes; [`decode_answer`] reads it back.
pub fn encode_answer(answer: &Answer) -> String {
    match answer {
        Answer::Ok => "ok".to_owned(),
        Answer::Err(e) => e.name().into_owned(),
        Answer::Returned(v) => format!("returned {v}"),
    }
}

/// The answer [`encode_answer`] wrote.
///
/// # Errors
///
/// The text is not one it writes.
pub fn decode_answer(text: &str) -> Result<Answer, String> {
    match text.strip_prefix("returned ") {
        Some(v) => v
            .parse()
            .map(Answer::Returned)
            .map_err(|e| format!("{text:?}: {e}")),
        None => Answer::parse(text),
    }
}

// ---------------------------------------------------------------------------
// The plan: what a row needs, decided before anything is forked.
// ---------------------------------------------------------------------------

/// One world namespace and the process that holds it.
#[derive(Clone, Debug)]
struct HolderPlan {
    name: String,
    /// `None`: the host holder (no unshare).
    kind: Option<Kind>,
    /// The uid (and gid) it runs as.
    run_as: u32,
    /// The user namespace it joins first (a world name).
    owner: Option<String>,
    /// The pid namespace it joins first (a world name).
    pid_parent: Option<String>,
    /// Fork after unshare, so that a process is inside.
    enter: bool,
    /// Its `/proc/<pid>/ns/` entry.
    entry: &'static str,
    uid_map: Option<Vec<IdMapping>>,
    gid_map: Option<Vec<IdMapping>>,
    limits: Vec<(Kind, u64)>,
}

/// The caller's starting state.
#[derive(Clone, Debug, Default)]
struct CallerPlan {
    uid: u32,
    /// World namespaces it starts in, user last.
    joins: Vec<(Kind, String)>,
    nest_user: u32,
    nest_pid: u32,
    fs_shared: bool,
    chroot: bool,
    threads: usize,
    /// Missing world files to make in the private tmpfs (`true`: a directory).
    make: Vec<(PathBuf, bool)>,
    /// World namespaces the caller reaches through a bind mount.
    binds: Vec<String>,
}

impl CallerPlan {
    fn needs_mount_ns(&self) -> bool {
        self.chroot || !self.make.is_empty() || !self.binds.is_empty()
    }
}

/// A process of the world (a target of setns through a pidfd).
#[derive(Clone, Debug)]
struct ProcessPlan {
    name: String,
    uid: u32,
    state: TargetState,
    /// The world namespaces it is in, user last.
    joins: Vec<(Kind, String)>,
}

/// What has become of a world process by the time the ops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetState {
    Running,
    /// A zombie nobody waited for.
    Exited,
    /// Waited for: its pid is gone.
    Reaped,
}

#[derive(Clone, Debug)]
struct RowPlan {
    holders: Vec<HolderPlan>,
    /// World processes other than the caller (`self`).
    processes: Vec<ProcessPlan>,
    caller: CallerPlan,
    /// The proc name of each `/proc/HOLDER/ns/<name>` an op or file names,
    /// with the world namespace it stands for.
    holder_links: BTreeMap<String, String>,
}

/// The name of the host holder in a plan.
const HOST_HOLDER: &str = "host";

/// Whether a row's world and caller can be built on this kernel, without
/// building them: the row's ops must be the engine's calls
/// ([`external::check_row`]), and every part of its world one that this
/// module realizes. Reads the host (which files exist, the clocks).
///
/// # Errors
///
/// Why the row cannot run here.
pub fn kernel_support(row: &Row) -> Result<(), Unsupported> {
    plan_row(row)?;
    clock_check(row)
}

fn plan_row(row: &Row) -> Result<RowPlan, Unsupported> {
    check_row(row)?;
    let c = &row.caller;
    if !c.caps_dropped.is_empty() {
        return unsupported(
            "capabilities removed one by one: the caller is root with all of them or a user without any",
        );
    }
    if c.threads == 0 {
        return unsupported("a caller without threads");
    }
    let mut holders: Vec<HolderPlan> = Vec::new();
    let mut unreadable: Vec<&Path> = Vec::new();
    let mut make = Vec::new();
    let mut process_entries = Vec::new();
    for entry in &row.world {
        match entry {
            Entry::Namespace(ns) => {
                let h = holder_plan(ns, &holders)?;
                holders.push(h);
            }
            Entry::File(f) => match f.file.as_str() {
                "regular" | "directory" => {
                    let dir = f.file == "directory";
                    match fs::symlink_metadata(&f.path) {
                        Ok(m) if m.is_dir() == dir && (dir || m.is_file()) => {}
                        Ok(_) => {
                            return unsupported(format!(
                                "{} exists on this host and is not a {} file",
                                f.path.display(),
                                f.file
                            ))
                        }
                        Err(_) if f.path.starts_with("/tmp/") && f.path.is_absolute() => {
                            make.push((f.path.clone(), dir));
                        }
                        Err(_) => {
                            return unsupported(format!(
                                "{} is missing, and only files under /tmp are made (in the caller's private tmpfs)",
                                f.path.display()
                            ))
                        }
                    }
                }
                "unreadable" => unreadable.push(&f.path),
                other => return unsupported(format!("a world file of kind {other:?}")),
            },
            Entry::Process(p) => process_entries.push(p),
            // Checked against this machine's clocks by clock_check.
            Entry::Clock(_) => {}
        }
    }
    let find = |name: &str| holders.iter().find(|h| h.name == name);

    // The caller's joins and nesting.
    let joins = plan_joins("the caller", &c.namespaces, &holders)?;
    let joins_user = joins.iter().any(|(k, _)| *k == Kind::User);
    let joins_pid = joins.iter().any(|(k, _)| *k == Kind::Pid);
    if joins_user && c.nesting.user > 0 || joins_pid && c.nesting.pid > 0 {
        return unsupported("a caller both nested and in a world namespace of the same kind");
    }
    let in_user_ns = joins_user || c.nesting.user > 0;
    let realized_caps = c.uid == 0 || in_user_ns;
    if realized_caps != c.caps {
        return unsupported(format!(
            "uid {} with caps {} in its user namespace: a caller here has its capabilities exactly when it is root or in a user namespace of its own",
            c.uid, c.caps
        ));
    }

    // Targets: world namespaces through /proc or a bind mount, host kinds
    // through the host holder, /proc/HOLDER/ links.
    let mut targets = BTreeSet::new();
    let mut host_kinds = KindSet::EMPTY;
    let mut holder_paths: Vec<&Path> = unreadable.clone();
    for op in &row.ops {
        match op {
            Op::Open {
                target: Some(t), ..
            } => {
                if let Some(k) = t.strip_prefix("host:") {
                    host_kinds.insert(kind(k)?);
                } else if !t.contains(':') {
                    targets.insert(t.clone());
                }
            }
            Op::Open { path: Some(p), .. } if p.starts_with(HOLDER_PREFIX) => {
                holder_paths.push(p);
            }
            Op::UidMap { target, .. }
            | Op::GidMap { target, .. }
            | Op::Setgroups { target, .. }
                if target != "self" && find(target).and_then(|h| h.kind) != Some(Kind::User) =>
            {
                return unsupported(format!(
                    "a map write to {target:?}, not a world user namespace"
                ));
            }
            _ => {}
        }
        if let Op::UidMap {
            lines,
            text_bytes: Some(n),
            ..
        }
        | Op::GidMap {
            lines,
            text_bytes: Some(n),
            ..
        } = op
        {
            let len = id_map_text(&lines.mappings()).len();
            if len != *n {
                return unsupported(format!("the map text is {len} bytes, the row says {n}"));
            }
        }
    }
    let mut holder_links = BTreeMap::new();
    for p in holder_paths {
        let link = p
            .strip_prefix(HOLDER_PREFIX)
            .ok()
            .and_then(|rest| rest.strip_prefix("ns").ok())
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Unsupported(format!(
                    "{}: not a /proc/HOLDER/ns/<kind> link",
                    p.display()
                ))
            })?;
        let k = Kind::ALL
            .into_iter()
            .find(|k| k.proc_name() == link)
            .ok_or_else(|| Unsupported(format!("{}: no such namespace link", p.display())))?;
        let mut of_kind = holders.iter().filter(|h| h.kind == Some(k));
        let (Some(h), None) = (of_kind.next(), of_kind.next()) else {
            return unsupported(format!(
                "{}: HOLDER must name the world's only {k} namespace",
                p.display()
            ));
        };
        holder_links.insert(link.to_owned(), h.name.clone());
    }
    for p in unreadable {
        let link = p
            .strip_prefix(HOLDER_PREFIX)
            .ok()
            .and_then(|rest| rest.strip_prefix("ns").ok())
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let holder = holder_links.get(link).and_then(|n| find(n));
        if c.uid == 0 || holder.is_none_or(|h| h.run_as == c.uid) {
            return unsupported(format!(
                "{}: unreadable only as another user's /proc/PID/ns link, for an unprivileged caller",
                p.display()
            ));
        }
    }
    // The kernel lets a process open another's /proc/PID/ns links when
    // ptrace would be allowed: root in the initial user namespace always;
    // a user of the same uid only from the initial user namespace (from
    // inside a user namespace, cap_ptrace_access_check wants
    // CAP_SYS_PTRACE over the target's). Other targets are bind-mounted.
    let may_open_proc = |run_as: u32| !in_user_ns && (c.uid == 0 || run_as == c.uid);
    let mut binds = Vec::new();
    for t in &targets {
        let Some(h) = find(t) else {
            return unsupported(format!("the target {t:?} is not a world namespace"));
        };
        if !may_open_proc(h.run_as) {
            if t.contains('/') || t.starts_with('.') {
                return unsupported(format!("the namespace name {t:?} is not a file name"));
            }
            binds.push(t.clone());
        }
    }
    // The host holder runs as the caller's uid.
    if !may_open_proc(c.uid) {
        binds.extend(host_kinds.iter().map(|k| format!("host:{}", k.spec_name())));
    }
    if !host_kinds.is_empty() {
        holders.push(HolderPlan {
            name: HOST_HOLDER.to_owned(),
            kind: None,
            run_as: c.uid,
            owner: None,
            pid_parent: None,
            enter: false,
            entry: "",
            uid_map: None,
            gid_map: None,
            limits: Vec::new(),
        });
    }
    let mut processes = Vec::new();
    for p in process_entries {
        let state = match p.state.as_str() {
            "running" => TargetState::Running,
            "exited" => TargetState::Exited,
            "reaped" => TargetState::Reaped,
            other => return unsupported(format!("a process in state {other:?}")),
        };
        if p.process == "self" {
            // The caller itself, opened at the op (its own pid is always
            // visible to it); its uid and namespaces are the caller's.
            if p.uid != c.uid || state != TargetState::Running || !p.namespaces.is_empty() {
                return unsupported(
                    "a process `self` that is not the caller as the row describes it",
                );
            }
            continue;
        }
        let joins = plan_joins(&format!("process {:?}", p.process), &p.namespaces, &holders)?;
        if state != TargetState::Running && joins.iter().any(|(k, _)| *k == Kind::Pid) {
            return unsupported(format!(
                "process {:?} ends in a pid namespace it joined (its zombie would be its holder's, not this row's)",
                p.process
            ));
        }
        processes.push(ProcessPlan {
            name: p.process.clone(),
            uid: p.uid,
            state,
            joins,
        });
    }
    // caller.nesting.pid is a level counted from the initial pid
    // namespace; from a nested one (a container, the mutants' sandbox) the
    // level reached is not known.
    // The same for user namespaces.
    if c.nesting.pid > 0
        && !host::in_initial_pid_ns()
            .map_err(|e| Unsupported(format!("the pid namespace here: {e}")))?
    {
        return unsupported(
            "a caller at a pid namespace level counted from the initial one: this process is in a nested pid namespace, whose level it cannot see",
        );
    }
    if c.nesting.user > 0
        && !host::in_initial_user_ns()
            .map_err(|e| Unsupported(format!("the user namespace here: {e}")))?
    {
        return unsupported(
            "a caller at a user namespace level counted from the initial one: this process is in a nested user namespace",
        );
    }
    let caller = CallerPlan {
        uid: c.uid,
        joins,
        nest_user: c.nesting.user,
        nest_pid: c.nesting.pid,
        fs_shared: c.fs_shared,
        chroot: c.chroot,
        threads: c.threads,
        make,
        binds,
    };
    if caller.chroot && (!caller.make.is_empty() || !caller.binds.is_empty()) {
        return unsupported("a chrooted caller with world files or bind-mounted namespaces");
    }
    if caller.needs_mount_ns() && caller.joins.iter().any(|(k, _)| *k == Kind::Mount) {
        return unsupported(
            "a caller in a world mount namespace that also needs a private one (files, bind mounts, chroot)",
        );
    }
    Ok(RowPlan {
        holders,
        processes,
        caller,
        holder_links,
    })
}

/// The world namespaces a process starts in (`{kind: name}`; `host:<kind>`
/// is where it is anyway), user last: the other joins are made as root,
/// before the drop to the process's uid.
fn plan_joins(
    who: &str,
    namespaces: &BTreeMap<String, String>,
    holders: &[HolderPlan],
) -> Result<Vec<(Kind, String)>, Unsupported> {
    let mut joins = Vec::new();
    for (k, name) in namespaces {
        let Some(k) = Kind::from_spec_name(k) else {
            return unsupported(format!(
                "{who} has a {k} namespace: only its active namespaces are realized"
            ));
        };
        if name.strip_prefix("host:") == Some(k.spec_name()) {
            continue;
        }
        match holders.iter().find(|h| h.name == *name) {
            Some(h) if h.kind == Some(k) => joins.push((k, name.clone())),
            _ => {
                return unsupported(format!(
                    "{who} starts in {name:?}, which is not a {k} namespace of the world"
                ))
            }
        }
    }
    joins.sort_by_key(|(k, _)| *k == Kind::User);
    Ok(joins)
}

fn holder_plan(ns: &external::NsEntry, before: &[HolderPlan]) -> Result<HolderPlan, Unsupported> {
    let k = kind(&ns.kind)?;
    let earlier = |name: &str, of: Kind| -> Result<&HolderPlan, Unsupported> {
        before
            .iter()
            .find(|h| h.name == name && h.kind == Some(of))
            .ok_or_else(|| {
                Unsupported(format!(
                    "namespace {:?} refers to {name:?}, which must be a {of} namespace listed before it",
                    ns.name
                ))
            })
    };
    if ns.name.starts_with("host:") || ns.name == HOST_HOLDER {
        return unsupported(format!("a world namespace named {:?}", ns.name));
    }
    let owner = match ns.owner.as_deref() {
        None | Some("host:user") => None,
        Some(o) => Some(earlier(o, Kind::User)?),
    };
    let pid_parent = match ns.parent.as_deref() {
        None | Some("host:pid") => None,
        Some(p) => Some(earlier(p, Kind::Pid)?.name.clone()),
    };
    if k != Kind::Pid && ns.parent.is_some() {
        return unsupported(format!("a parent for {} namespace {:?}", k, ns.name));
    }
    let run_as = if k == Kind::User {
        ns.creator_uid.unwrap_or(0)
    } else {
        if ns.creator_uid.is_some() {
            return unsupported(format!("a creator for {} namespace {:?}", k, ns.name));
        }
        // The owner's creator made the namespaces its user namespace owns.
        owner.map_or(0, |o| o.run_as)
    };
    if k != Kind::User && (ns.uid_map.is_some() || ns.gid_map.is_some() || !ns.limits.is_empty()) {
        return unsupported(format!("maps or limits for {} namespace {:?}", k, ns.name));
    }
    if k != Kind::Time && ns.entered.is_some() {
        return unsupported(format!("`entered` for {} namespace {:?}", k, ns.name));
    }
    let enter = k == Kind::Pid || k == Kind::Time && ns.entered != Some(false);
    let entry = if k == Kind::Time && !enter {
        k.proc_name_for_children()
    } else {
        k.proc_name()
    };
    let lines = |v: &Vec<[u32; 3]>| external::Lines::List(v.clone()).mappings();
    let mut limits = Vec::new();
    for (name, &value) in &ns.limits {
        let limited = name
            .strip_prefix("max_")
            .and_then(|n| n.strip_suffix("_namespaces"))
            .and_then(|n| Kind::ALL.into_iter().find(|k| k.proc_name() == n))
            .ok_or_else(|| Unsupported(format!("limit {name:?}")))?;
        limits.push((limited, value));
    }
    Ok(HolderPlan {
        name: ns.name.clone(),
        kind: Some(k),
        run_as,
        owner: owner.map(|o| o.name.clone()),
        pid_parent,
        enter,
        entry,
        uid_map: ns.uid_map.as_ref().map(lines),
        gid_map: ns.gid_map.as_ref().map(lines),
        limits,
    })
}

/// A row whose world states a clock value (`{"clock": ..., "secs": ...}`)
/// runs here only when the model gives the same answers with this
/// machine's clocks as with the row's: the kernel judges offsets by the
/// clock it has (the corpus README: such rows hold while the clock is on
/// one side of a boundary).
fn clock_check(row: &Row) -> Result<(), Unsupported> {
    let stated: Vec<&external::ClockEntry> = row
        .world
        .iter()
        .filter_map(|e| match e {
            Entry::Clock(c) => Some(c),
            _ => None,
        })
        .collect();
    if stated.is_empty() {
        return Ok(());
    }
    let Ok(as_stated) = external::run_on_model(row) else {
        // The model cannot run the row: nothing to compare with.
        return Ok(());
    };
    let live = nsapply::simulate::host_clocks()
        .map_err(|e| Unsupported(format!("reading this machine's clocks: {e}")))?;
    let mut world = model_world(row)?;
    let mut said = Vec::new();
    for c in &stated {
        let (value, name) = match c.clock.as_str() {
            "monotonic" => (live.monotonic, "monotonic"),
            "boottime" => (live.boottime, "boottime"),
            other => return unsupported(format!("a clock named {other:?}")),
        };
        match name {
            "monotonic" => world.clocks.monotonic = value,
            _ => world.clocks.boottime = value,
        }
        said.push(format!(
            "{name} is {} s here, the row says {} s",
            value.secs, c.secs
        ));
    }
    let here = run_ops(row, &mut ModelCaller::new(&world)?)?;
    if here == as_stated {
        Ok(())
    } else {
        unsupported(format!(
            "its answer depends on the clock ({}): with this machine's clock the model answers {}, with the row's {}",
            said.join("; "),
            answers_text(&here),
            answers_text(&as_stated)
        ))
    }
}

fn answers_text(answers: &[Answer]) -> String {
    answers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// The caller's backend.
// ---------------------------------------------------------------------------

/// A row's caller on the running kernel: each [`Backend`] call is the
/// engine's own ([`Linux`]) where the engine makes it, and the plain system
/// call otherwise (a map write to `/proc/<pid>/...` in one write(2), a fork
/// whose child exits at once).
#[derive(Debug, Default)]
pub struct KernelCaller {
    /// What an op's target names: world namespaces and `host:<kind>`.
    targets: BTreeMap<String, PathBuf>,
    /// Per world user namespace, a process inside it (its map files).
    map_pids: BTreeMap<String, i32>,
    /// Per `/proc/HOLDER/ns/<name>`, the pid that stands for HOLDER.
    holder_links: BTreeMap<String, i32>,
    /// Per world process, a pidfd taken while it was alive.
    processes: BTreeMap<String, OwnedFd>,
    /// What went wrong outside the answers (a short write, a lost child).
    fault: Option<String>,
}

impl KernelCaller {
    /// A caller that reaches each target (a world namespace name or
    /// `host:<kind>`) at the path given, writes the map files of each world
    /// user namespace through `/proc/<pid>/` of the pid given, and reads
    /// `/proc/HOLDER/ns/<name>` as `/proc/<pid>/ns/<name>` of the pid given
    /// per `<name>`.
    pub fn new(
        targets: BTreeMap<String, PathBuf>,
        map_pids: BTreeMap<String, i32>,
        holder_links: BTreeMap<String, i32>,
    ) -> KernelCaller {
        KernelCaller {
            targets,
            map_pids,
            holder_links,
            processes: BTreeMap::new(),
            fault: None,
        }
    }

    /// The same caller, with a pidfd per world process (by name): taken
    /// while the process was alive, as the corpus's rows were measured, so
    /// that a setns through it meets the process as the row states it
    /// (running, exited, reaped). `self` needs none: the caller opens its
    /// own at the op.
    pub fn with_processes(mut self, processes: BTreeMap<String, OwnedFd>) -> KernelCaller {
        self.processes = processes;
        self
    }

    /// What went wrong that no answer can say (a short write of a map
    /// file, a forked child that could not be waited for): such a run
    /// must not count.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        let Ok(rest) = path.strip_prefix(HOLDER_PREFIX) else {
            return path.to_owned();
        };
        let link = rest
            .strip_prefix("ns")
            .ok()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match self.holder_links.get(link) {
            Some(pid) => Path::new("/proc").join(pid.to_string()).join(rest),
            None => path.to_owned(),
        }
    }

    /// One write(2) of `text` to `path`: the kernel takes map files whole
    /// or not at all.
    fn write_once(&mut self, path: &Path, text: &str) -> Result<(), Errno> {
        match write_file_once(path, text.as_bytes()) {
            Ok(()) => Ok(()),
            Err(WriteOnce::Errno(e)) => Err(e),
            Err(WriteOnce::Short(n)) => {
                self.fault = Some(format!(
                    "{}: write(2) took {n} of {} bytes",
                    path.display(),
                    text.len()
                ));
                Ok(())
            }
        }
    }
}

enum WriteOnce {
    Errno(Errno),
    Short(usize),
}

fn write_file_once(path: &Path, data: &[u8]) -> Result<(), WriteOnce> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| WriteOnce::Errno(Errno::from(e)))?;
    loop {
        match nix::unistd::write(&fd, data) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(n) => return Err(WriteOnce::Short(n)),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(WriteOnce::Errno(Errno::from(e))),
        }
    }
}

impl Backend for KernelCaller {
    type Fd = OwnedFd;

    fn open(&mut self, path: &Path) -> Result<OwnedFd, Errno> {
        Linux.open_ns(&self.resolve(path))
    }

    fn close(&mut self, fd: OwnedFd) {
        Linux.close(fd);
    }

    fn setns(&mut self, fd: &OwnedFd, kind: Kind) -> Result<(), Errno> {
        Linux.setns(fd, kind)
    }

    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        Linux.unshare(kinds)
    }

    /// The engine's fork; the child exits at once, the parent reaps it and
    /// goes on. Like the engine, it refuses (EBUSY) in a multithreaded
    /// caller, whose child could only make async-signal-safe calls; no
    /// row forks with more than one thread.
    fn fork(&mut self) -> Result<(), Errno> {
        match Linux.fork()? {
            Forked::Child => exit_now(0),
            Forked::Parent { child } => {
                if let Err(e) = process::wait(child) {
                    self.fault = Some(format!("waiting for the forked child {child}: {e}"));
                }
                Ok(())
            }
        }
    }

    /// `secs_from_now` lines are resolved against `clock_gettime` of their
    /// clock, read while its nanoseconds are below 0.9 s, so the kernel's
    /// own reading a moment later falls in the same second.
    fn time_offsets(&mut self, lines: &[(Clock, Offset, u32)]) -> Result<(), Errno> {
        let from_now = |c: Clock| {
            lines
                .iter()
                .any(|(clock, o, _)| *clock == c && matches!(o, Offset::FromNow(_)))
        };
        let now =
            match clocks_early_in_a_second(from_now(Clock::Monotonic), from_now(Clock::Boottime)) {
                Ok(c) => c,
                Err(e) => {
                    self.fault = Some(format!("clock_gettime: {e}"));
                    return Ok(());
                }
            };
        let offsets: Vec<TimeOffset> = lines
            .iter()
            .map(|&(clock, secs, nanosecs)| TimeOffset {
                clock,
                secs: match secs {
                    Offset::Secs(s) => s,
                    Offset::FromNow(x) => match clock {
                        Clock::Monotonic => x - now.0,
                        Clock::Boottime => x - now.1,
                    },
                },
                nanosecs,
            })
            .collect();
        Linux.write_time_offsets(&offsets)
    }

    fn write_map(
        &mut self,
        target: &str,
        file: MapFile,
        lines: &[IdMapping],
        allow: bool,
    ) -> Result<(), Errno> {
        let dir = if target == "self" {
            PathBuf::from("/proc/self")
        } else {
            match self.map_pids.get(target) {
                Some(pid) => PathBuf::from(format!("/proc/{pid}")),
                None => {
                    self.fault = Some(format!("no process in user namespace {target:?}"));
                    return Ok(());
                }
            }
        };
        let text = match file {
            MapFile::Setgroups if allow => "allow".to_owned(),
            MapFile::Setgroups => "deny".to_owned(),
            MapFile::UidMap | MapFile::GidMap => id_map_text(lines),
        };
        self.write_once(&dir.join(file.name()), &text)
    }

    fn setresid(&mut self) -> Result<(), Errno> {
        Linux.set_root_ids()
    }

    fn nstype(&mut self, fd: &OwnedFd) -> Result<i32, Errno> {
        Linux.ns_get_nstype(fd)
    }

    /// The engine's `setns_pidfd` through the pidfd of the world process
    /// (taken when the world was built), or, for `self`, through the
    /// engine's `pidfd_open` of the caller's own pid, closed after.
    fn setns_process(&mut self, process: &str, kinds: KindSet) -> Option<Result<(), Errno>> {
        if process == "self" {
            let own = Linux.pidfd_open(nix::unistd::getpid().as_raw());
            return Some(own.and_then(|fd| {
                let r = Linux.setns_pidfd(&fd, kinds);
                Linux.close(fd);
                r
            }));
        }
        match self.processes.get(process) {
            Some(fd) => Some(Linux.setns_pidfd(fd, kinds)),
            None => {
                self.fault = Some(format!("no pidfd of process {process:?}"));
                Some(Ok(()))
            }
        }
    }

    fn path_of(&self, target: &str) -> Result<PathBuf, Unsupported> {
        if let Some(k) = target.strip_prefix("proc-self:") {
            return Ok(Path::new("/proc/self/ns").join(kind(k)?.proc_name()));
        }
        if let Some(k) = target.strip_prefix("for-children:") {
            return Ok(Path::new("/proc/self/ns").join(kind(k)?.proc_name_for_children()));
        }
        if target.starts_with('/') {
            return Ok(PathBuf::from(target));
        }
        self.targets
            .get(target)
            .cloned()
            .ok_or_else(|| Unsupported(format!("no path for the target {target:?}")))
    }
}

/// `(monotonic, boottime)` seconds, read when the nanoseconds of each
/// clock asked for are below 0.9 s (waiting for the next second
/// otherwise); a clock not asked for reads 0.
fn clocks_early_in_a_second(monotonic: bool, boottime: bool) -> Result<(i64, i64), Errno> {
    use nix::time::{clock_gettime, ClockId};
    let read = |wanted: bool, id: ClockId| -> Result<(i64, i64), Errno> {
        if !wanted {
            return Ok((0, 0));
        }
        let t = clock_gettime(id).map_err(Errno::from)?;
        Ok((t.tv_sec(), t.tv_nsec()))
    };
    loop {
        let m = read(monotonic, ClockId::CLOCK_MONOTONIC)?;
        let b = read(boottime, ClockId::CLOCK_BOOTTIME)?;
        let late = m.1.max(b.1);
        if late < 900_000_000 {
            return Ok((m.0, b.0));
        }
        let rest = u64::try_from(1_000_000_000 - late).unwrap_or(0);
        std::thread::sleep(Duration::from_nanos(rest + 1_000_000));
    }
}

// ---------------------------------------------------------------------------
// Running a row.
// ---------------------------------------------------------------------------

/// What the row process reports to [`run_on_kernel`]: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Report {
    /// Each op's answer ([`encode_answer`]).
    Answers(Vec<String>),
    /// Building the world or the caller failed.
    Failed(String),
}

/// Runs one row on this kernel: builds its world and caller (see the
/// module docs), runs its ops in the caller through [`KernelCaller`], and
/// tears everything down (every process killed and reaped, nothing left
/// mounted, no file left). Each op's answer, in order.
///
/// Must be called as root from a single-threaded process that has no
/// other children (it forks, becomes a child subreaper, and reaps every
/// child it has); the test re-executes itself per row for this.
///
/// # Errors
///
/// [`KernelError::Unsupported`] when [`kernel_support`] refuses the row;
/// [`KernelError::Failed`] when building or running it failed.
pub fn run_on_kernel(row: &Row) -> Result<Vec<Answer>, KernelError> {
    let plan = plan_row(row)?;
    clock_check(row)?;
    if host::euid() != 0 {
        return Err(KernelError::Failed(format!(
            "needs root (euid {})",
            host::euid()
        )));
    }
    match linux::thread_count() {
        Ok(1) => {}
        other => {
            return Err(KernelError::Failed(format!(
                "must run in a single-threaded process (thread count: {other:?})"
            )))
        }
    }
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: Errno| KernelError::Failed(format!("{what}: {e}"))
    };
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| KernelError::Failed(format!("PR_SET_CHILD_SUBREAPER: {e}")))?;
    let (report_r, report_w) = process::pipe().map_err(failed("pipe"))?;
    let top = nix::unistd::getpid().as_raw();
    let row_pid = host::fork_with(move || row_process(row, &plan, report_w, top))
        .map_err(failed("fork of the row process"))?;
    // Also here, so the group exists before the first kill whatever the
    // child has done by then (EACCES once it has been made by the child).
    let _ = nix::unistd::setpgid(
        nix::unistd::Pid::from_raw(row_pid),
        nix::unistd::Pid::from_raw(row_pid),
    );
    let report = read_report(report_r, REPORT_TIMEOUT);
    let teardown = kill_and_reap_group(row_pid, TEARDOWN_TIMEOUT);
    let report = report?;
    teardown.map_err(KernelError::Failed)?;
    match report {
        Report::Answers(texts) => texts
            .iter()
            .map(|t| decode_answer(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(KernelError::Failed),
        Report::Failed(m) => Err(KernelError::Failed(m)),
    }
}

/// Reads the first line of the report pipe, giving up after `timeout`.
fn read_report(pipe: File, timeout: Duration) -> Result<Report, KernelError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while !text.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(KernelError::Failed(format!(
                "no report from the row process within {timeout:?} (so far: {:?})",
                String::from_utf8_lossy(&text)
            )));
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(KernelError::Failed(format!("poll of the report pipe: {e}"))),
        }
        match nix::unistd::read(&pipe, &mut buf) {
            Ok(0) => {
                return Err(KernelError::Failed(format!(
                    "the row's processes ended without a report (so far: {:?})",
                    String::from_utf8_lossy(&text)
                )))
            }
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(KernelError::Failed(format!("reading the report: {e}"))),
        }
    }
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    serde_json::from_slice(line).map_err(|e| {
        KernelError::Failed(format!(
            "bad report {:?}: {e}",
            String::from_utf8_lossy(line)
        ))
    })
}

/// Kills the process group `group` and reaps every child until none is
/// left (the caller is a subreaper: every orphan of the group comes to it).
fn kill_and_reap_group(group: i32, timeout: Duration) -> Result<(), String> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + timeout;
    let pgrp = nix::unistd::Pid::from_raw(group);
    loop {
        let _ = nix::sys::signal::killpg(pgrp, nix::sys::signal::Signal::SIGKILL);
        match waitpid(None::<nix::unistd::Pid>, Some(WaitPidFlag::WNOHANG)) {
            Err(nix::errno::Errno::ECHILD) => return Ok(()),
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() > deadline {
                    return Err(format!(
                        "processes of the row were still alive {timeout:?} after SIGKILL"
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(_) | Err(_) => {}
        }
    }
}

/// Writes one report line; a failure to write is the row process's end.
fn send(report: &mut File, r: &Report) {
    let mut line = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"failed\":\"{e}\"}}"));
    line.push('\n');
    let _ = report.write_all(line.as_bytes());
}

/// R: builds the world, forks the caller, and waits to be killed.
fn row_process(row: &Row, plan: &RowPlan, mut report: File, top: i32) -> i32 {
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    if let Err(e) = linux::die_with_parent(top) {
        send(
            &mut report,
            &Report::Failed(format!("PR_SET_PDEATHSIG: {e}")),
        );
        return 1;
    }
    if let Err(m) = build_and_call(row, plan, &mut report) {
        send(&mut report, &Report::Failed(m));
    }
    sleep_forever()
}

/// The world as built: per namespace name, the pid holding it.
#[derive(Default)]
struct Built {
    pids: BTreeMap<String, i32>,
    entries: BTreeMap<String, &'static str>,
}

impl Built {
    fn proc_path(&self, name: &str) -> Result<PathBuf, String> {
        match (self.pids.get(name), self.entries.get(name)) {
            (Some(pid), Some(entry)) => Ok(PathBuf::from(format!("/proc/{pid}/ns/{entry}"))),
            _ => Err(format!("namespace {name:?} was not built")),
        }
    }
}

fn build_and_call(row: &Row, plan: &RowPlan, report: &mut File) -> Result<(), String> {
    let me = nix::unistd::getpid().as_raw();
    let mut built = Built::default();
    for h in &plan.holders {
        let pid = spawn_holder(h, &built, me)?;
        built.pids.insert(h.name.clone(), pid);
        built.entries.insert(h.name.clone(), h.entry);
        if h.uid_map.is_some() || h.gid_map.is_some() {
            let owner = h.owner.as_deref().map(|o| built.proc_path(o)).transpose()?;
            let (uid, gid) = (h.uid_map.clone(), h.gid_map.clone());
            in_child(
                &format!("writing the maps of {:?}", h.name),
                me,
                move || {
                    if let Some(p) = &owner {
                        join(p, Kind::User)?;
                    }
                    for (file, lines) in [(MapFile::UidMap, &uid), (MapFile::GidMap, &gid)] {
                        if let Some(lines) = lines {
                            let path = PathBuf::from(format!("/proc/{pid}/{}", file.name()));
                            write_text(&path, &id_map_text(lines))?;
                        }
                    }
                    Ok(())
                },
            )?;
        }
    }
    let host_user = host::ns_inode(None, "user").map_err(|e| format!("/proc/self/ns/user: {e}"))?;
    for h in plan.holders.iter().filter(|h| !h.limits.is_empty()) {
        let ns = built.proc_path(&h.name)?;
        let limits = h.limits.clone();
        in_child(
            &format!("writing the limits of {:?}", h.name),
            me,
            move || {
                join(&ns, Kind::User)?;
                // Never the host's table.
                let now =
                    host::ns_inode(None, "user").map_err(|e| format!("/proc/self/ns/user: {e}"))?;
                if now == host_user {
                    return Err("still in the host's user namespace".to_owned());
                }
                for (k, value) in &limits {
                    let path =
                        PathBuf::from(format!("/proc/sys/user/max_{}_namespaces", k.proc_name()));
                    write_text(&path, &format!("{value}\n"))?;
                }
                Ok(())
            },
        )?;
    }

    // The world's processes, each with a pidfd taken while it runs.
    let mut processes = BTreeMap::new();
    for p in &plan.processes {
        let joins = p
            .joins
            .iter()
            .map(|(k, name)| built.proc_path(name).map(|path| (*k, path)))
            .collect::<Result<Vec<_>, _>>()?;
        let pid = spawn_process(&p.name, joins, p.uid, me)?;
        let pidfd = Linux
            .pidfd_open(pid)
            .map_err(|e| format!("pidfd_open of process {:?}: {e}", p.name))?;
        end_process(&p.name, pid, p.state)?;
        processes.insert(p.name.clone(), pidfd);
    }

    // The caller's paths.
    let c = &plan.caller;
    let mut targets = BTreeMap::new();
    let mut binds = Vec::new();
    for h in &plan.holders {
        match h.kind {
            None => {
                for k in Kind::ALL {
                    let pid = built.pids[&h.name];
                    let target = format!("host:{}", k.spec_name());
                    let src = PathBuf::from(format!("/proc/{pid}/ns/{}", k.proc_name()));
                    if c.binds.contains(&target) {
                        let dst = Path::new(SCRATCH).join("ns").join(&target);
                        binds.push((src, dst.clone()));
                        targets.insert(target, dst);
                    } else {
                        targets.insert(target, src);
                    }
                }
            }
            Some(_) if c.binds.contains(&h.name) => {
                let dst = Path::new(SCRATCH).join("ns").join(&h.name);
                binds.push((built.proc_path(&h.name)?, dst.clone()));
                targets.insert(h.name.clone(), dst);
            }
            Some(_) => {
                targets.insert(h.name.clone(), built.proc_path(&h.name)?);
            }
        }
    }
    let map_pids: BTreeMap<String, i32> = plan
        .holders
        .iter()
        .filter(|h| h.kind == Some(Kind::User))
        .map(|h| (h.name.clone(), built.pids[&h.name]))
        .collect();
    let holder_links: BTreeMap<String, i32> = plan
        .holder_links
        .iter()
        .map(|(link, name)| (link.clone(), built.pids[name]))
        .collect();
    let joins = c
        .joins
        .iter()
        .map(|(k, name)| built.proc_path(name).map(|p| (*k, p)))
        .collect::<Result<Vec<_>, _>>()?;
    let job = CallerJob {
        plan: c.clone(),
        joins,
        binds,
        backend: KernelCaller::new(targets, map_pids, holder_links).with_processes(processes),
    };
    let caller = host::fork_with(move || caller_main(row, job, report, me))
        .map_err(|e| format!("fork of the caller: {e}"))?;
    match process::wait(caller) {
        Ok(process::Exit::Code(0)) => Ok(()),
        Ok(exit) => Err(format!("the caller ended ({exit:?}) without answers")),
        Err(e) => Err(format!("waiting for the caller: {e}")),
    }
}

/// Opens `path` and joins it with the engine's calls.
fn join(path: &Path, kind: Kind) -> Result<(), String> {
    let fd = Linux
        .open_ns(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    Linux
        .setns(&fd, kind)
        .map_err(|e| format!("setns({kind}) {}: {e}", path.display()))
}

/// One write of `text` to a proc file (a map, a limit).
fn write_text(path: &Path, text: &str) -> Result<(), String> {
    match write_file_once(path, text.as_bytes()) {
        Ok(()) => Ok(()),
        Err(WriteOnce::Errno(e)) => Err(format!("writing {text:?} to {}: {e}", path.display())),
        Err(WriteOnce::Short(n)) => Err(format!(
            "writing {text:?} to {}: only {n} bytes taken",
            path.display()
        )),
    }
}

/// Runs `job` in a forked child of `parent` (this process) and waits for
/// it; its error comes back through a pipe.
fn in_child(
    what: &str,
    parent: i32,
    job: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let (mut r, mut w) = process::pipe().map_err(|e| format!("{what}: pipe: {e}"))?;
    let pid = host::fork_with(move || {
        let result = linux::die_with_parent(parent)
            .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))
            .and_then(|()| job());
        match result {
            Ok(()) => 0,
            Err(m) => {
                let _ = w.write_all(m.as_bytes());
                1
            }
        }
    })
    .map_err(|e| format!("{what}: fork: {e}"))?;
    let exit = process::wait(pid).map_err(|e| format!("{what}: wait: {e}"))?;
    let mut message = String::new();
    let _ = r.read_to_string(&mut message);
    match exit {
        process::Exit::Code(0) => Ok(()),
        other => Err(format!("{what}: {message} ({other:?})")),
    }
}

/// Forks a world process that enters `joins` as `uid` (as the caller
/// enters its own, [`enter`]) and waits for its `ready <pid>`.
fn spawn_process(
    name: &str,
    joins: Vec<(Kind, PathBuf)>,
    uid: u32,
    parent: i32,
) -> Result<i32, String> {
    let (ready_r, ready_w) = process::pipe().map_err(|e| format!("pipe: {e}"))?;
    host::fork_with(move || {
        let mut ready = Some(ready_w);
        let result = linux::die_with_parent(parent)
            .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))
            .and_then(|()| enter(&joins, uid, parent))
            .and_then(|entered| {
                if entered.joined_pid {
                    fork_and_continue(&mut ready)?;
                }
                Ok(())
            });
        report_ready(ready, result)
    })
    .map_err(|e| format!("fork of process {name:?}: {e}"))?;
    read_ready(ready_r, &format!("process {name:?}"))
}

/// Brings a world process, a child of this one, to the state the row says
/// it is in when the ops run: exited (killed, left a zombie) or reaped.
fn end_process(name: &str, pid: i32, state: TargetState) -> Result<(), String> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    if state == TargetState::Running {
        return Ok(());
    }
    let p = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("ending process {name:?}: {e}"))?;
    if state == TargetState::Exited {
        // Wait until it is a zombie, and leave it one (WNOWAIT).
        loop {
            match waitid(Id::Pid(p), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("waiting for process {name:?} to exit: {e}")),
            }
        }
    }
    process::wait(pid)
        .map(drop)
        .map_err(|e| format!("reaping process {name:?}: {e}"))
}

/// Writes `ready <pid>` (this process's pid in the mounted `/proc`) or
/// `error <message>` on the ready pipe, if it still has it, then sleeps
/// until it is killed.
fn report_ready(ready: Option<File>, result: Result<(), String>) -> ! {
    if let Some(mut w) = ready {
        let line = match result {
            Ok(()) => format!("ready {}\n", self_pid_in_proc()),
            Err(m) => format!("error {m}\n"),
        };
        let _ = w.write_all(line.as_bytes());
    }
    sleep_forever()
}

/// Reads the `ready <pid>` of a holder or world process.
fn read_ready(ready: File, what: &str) -> Result<i32, String> {
    let mut line = String::new();
    BufReader::new(ready)
        .read_line(&mut line)
        .map_err(|e| format!("reading the report of {what}: {e}"))?;
    let line = line.trim();
    match line.strip_prefix("ready ").map(str::parse::<i32>) {
        Some(Ok(pid)) => Ok(pid),
        _ => Err(format!(
            "{what}: {}",
            if line.is_empty() {
                "ended without a report"
            } else {
                line
            }
        )),
    }
}

/// What one holder does, with the paths of what it joins.
struct HolderJob {
    kind: Option<Kind>,
    run_as: u32,
    owner: Option<PathBuf>,
    pid_parent: Option<PathBuf>,
    enter: bool,
}

/// Forks the holder of `h` and waits for its `ready <pid>`: the pid
/// (in this `/proc`) whose `/proc/<pid>/ns/` shows the namespace.
fn spawn_holder(h: &HolderPlan, built: &Built, parent: i32) -> Result<i32, String> {
    let job = HolderJob {
        kind: h.kind,
        run_as: h.run_as,
        owner: h.owner.as_deref().map(|o| built.proc_path(o)).transpose()?,
        pid_parent: h
            .pid_parent
            .as_deref()
            .map(|p| built.proc_path(p))
            .transpose()?,
        enter: h.enter,
    };
    let (ready_r, ready_w) = process::pipe().map_err(|e| format!("pipe: {e}"))?;
    host::fork_with(move || {
        let mut ready = Some(ready_w);
        let result = make_holder(&job, &mut ready, parent);
        report_ready(ready, result)
    })
    .map_err(|e| format!("fork of the holder of {:?}: {e}", h.name))?;
    read_ready(ready_r, &format!("the holder of {:?}", h.name))
}

fn make_holder(job: &HolderJob, ready: &mut Option<File>, parent: i32) -> Result<(), String> {
    let pdeathsig = |e: Errno| format!("PR_SET_PDEATHSIG: {e}");
    linux::die_with_parent(parent).map_err(pdeathsig)?;
    // Opened as root: root may open every /proc/PID/ns link.
    let open = |p: &PathBuf| {
        Linux
            .open_ns(p)
            .map_err(|e| format!("open {}: {e}", p.display()))
    };
    let owner = job.owner.as_ref().map(open).transpose()?;
    let pid_parent = job.pid_parent.as_ref().map(open).transpose()?;
    if job.run_as != 0 {
        become_uid(job.run_as)?;
        linux::die_with_parent(parent).map_err(pdeathsig)?;
    }
    if let Some(fd) = owner {
        Linux
            .setns(&fd, Kind::User)
            .map_err(|e| format!("setns(user) into the owner: {e}"))?;
    }
    if let Some(fd) = pid_parent {
        Linux
            .setns(&fd, Kind::Pid)
            .map_err(|e| format!("setns(pid) into the parent: {e}"))?;
        // unshare(CLONE_NEWPID) makes a child of the active pid namespace:
        // go on in a child, which is in the parent.
        fork_and_continue(ready)?;
    }
    if let Some(k) = job.kind {
        Linux
            .unshare(KindSet::one(k))
            .map_err(|e| format!("unshare({k}): {e}"))?;
        if job.enter {
            fork_and_continue(ready)?;
        }
    }
    Ok(())
}

/// Becomes `uid` (gid = uid) for good, then dumpable again (a credential
/// change clears it; others of that uid must open its /proc files).
fn become_uid(uid: u32) -> Result<(), String> {
    host::become_user(uid, uid).map_err(|e| format!("becoming uid {uid}: {e}"))?;
    linux::set_dumpable(true).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))
}

/// What the caller process needs.
struct CallerJob {
    plan: CallerPlan,
    /// Paths of the namespaces it starts in, user last.
    joins: Vec<(Kind, PathBuf)>,
    /// `(source, destination)` of each bind mount.
    binds: Vec<(PathBuf, PathBuf)>,
    backend: KernelCaller,
}

/// C: enters the row's starting state, runs the ops and reports.
fn caller_main(row: &Row, job: CallerJob, report: &mut File, parent: i32) -> i32 {
    let CallerJob {
        plan,
        joins,
        binds,
        mut backend,
    } = job;
    if let Err(m) = prepare_caller(&plan, &joins, &binds, parent) {
        send(
            report,
            &Report::Failed(format!("preparing the caller: {m}")),
        );
        return 1;
    }
    let r = match run_ops(row, &mut backend) {
        Ok(answers) => match backend.fault() {
            None => Report::Answers(answers.iter().map(encode_answer).collect()),
            Some(f) => Report::Failed(f.to_owned()),
        },
        Err(u) => Report::Failed(format!("an op the backend cannot make: {u}")),
    };
    send(report, &r);
    0
}

fn prepare_caller(
    plan: &CallerPlan,
    joins: &[(Kind, PathBuf)],
    binds: &[(PathBuf, PathBuf)],
    parent: i32,
) -> Result<(), String> {
    let pdeathsig = |e: Errno| format!("PR_SET_PDEATHSIG: {e}");
    linux::die_with_parent(parent).map_err(pdeathsig)?;
    if plan.needs_mount_ns() {
        private_mounts(plan, binds)?;
    }
    let entered = enter(joins, plan.uid, parent)?;
    if entered.joined_pid {
        continue_in_child()?;
    }
    for level in 1..=plan.nest_user {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        Linux
            .unshare(KindSet::one(Kind::User))
            .map_err(|e| format!("unshare(user) at nesting level {level}: {e}"))?;
        write_text(Path::new("/proc/self/uid_map"), &format!("0 {uid} 1\n"))?;
        write_text(Path::new("/proc/self/setgroups"), "deny")?;
        write_text(Path::new("/proc/self/gid_map"), &format!("0 {gid} 1\n"))?;
    }
    for level in 1..=plan.nest_pid {
        Linux
            .unshare(KindSet::one(Kind::Pid))
            .map_err(|e| format!("unshare(pid) at nesting level {level}: {e}"))?;
        continue_in_child()?;
    }
    if plan.fs_shared {
        fs_companion()?;
    }
    for _ in 1..plan.threads {
        std::thread::Builder::new()
            .spawn(|| loop {
                std::thread::park();
            })
            .map_err(|e| format!("starting a thread: {e}"))?;
    }
    // The state reached is the one planned.
    for (k, ino, p) in entered.inodes {
        let now = host::ns_inode(None, k.proc_name())
            .map_err(|e| format!("/proc/self/ns/{}: {e}", k.proc_name()))?;
        if now != ino {
            return Err(format!(
                "the caller is not in {} ({k}: inode {now}, not {ino})",
                p.display()
            ));
        }
    }
    match linux::thread_count() {
        Ok(n) if n == plan.threads => Ok(()),
        other => Err(format!(
            "the caller has {other:?} threads, not {}",
            plan.threads
        )),
    }
}

/// What [`enter`] did.
struct Entered {
    /// A pid namespace was joined: the process must fork, and its child
    /// goes on in it.
    joined_pid: bool,
    /// The kind, inode and path of each namespace joined.
    inodes: Vec<(Kind, u64, PathBuf)>,
}

/// Enters the namespaces `joins` (user last) and becomes `uid`: every fd
/// is opened as root, every join but user is made as root too (root has
/// CAP_SYS_ADMIN over every owner), then the uid drop (`setgroups(0)`,
/// `setresgid`, `setresuid`, `PR_SET_DUMPABLE 1`), then the user namespace.
/// Must run in a root process of the initial namespaces.
fn enter(joins: &[(Kind, PathBuf)], uid: u32, parent: i32) -> Result<Entered, String> {
    let mut fds = Vec::new();
    let mut inodes = Vec::new();
    for (k, p) in joins {
        let fd = Linux
            .open_ns(p)
            .map_err(|e| format!("open {}: {e}", p.display()))?;
        let ino = nix::sys::stat::fstat(&fd)
            .map_err(|e| format!("fstat {}: {e}", p.display()))?
            .st_ino;
        inodes.push((*k, ino, p.clone()));
        fds.push((*k, fd, p));
    }
    let mut user = None;
    let mut joined_pid = false;
    for (k, fd, p) in fds {
        if k == Kind::User {
            user = Some((fd, p));
            continue;
        }
        Linux
            .setns(&fd, k)
            .map_err(|e| format!("setns({k}) {}: {e}", p.display()))?;
        joined_pid |= k == Kind::Pid;
    }
    if uid != 0 {
        become_uid(uid)?;
        linux::die_with_parent(parent).map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    }
    if let Some((fd, p)) = user {
        Linux
            .setns(&fd, Kind::User)
            .map_err(|e| format!("setns(user) {}: {e}", p.display()))?;
    }
    Ok(Entered { joined_pid, inodes })
}

/// The caller's private mount namespace: a tmpfs over `/tmp` holding the
/// missing world files, the bind mounts, and the chroot.
fn private_mounts(plan: &CallerPlan, binds: &[(PathBuf, PathBuf)]) -> Result<(), String> {
    let sys = |what: String| move |e: Errno| format!("{what}: {e}");
    let io = |what: String| move |e: std::io::Error| format!("{what}: {e}");
    Linux
        .unshare(KindSet::one(Kind::Mount))
        .map_err(sys("unshare(mount) for a private tmpfs".into()))?;
    host::make_mounts_private().map_err(sys("making mounts private".into()))?;
    host::mount_tmpfs(Path::new("/tmp")).map_err(sys("mounting a tmpfs on /tmp".into()))?;
    for (path, dir) in &plan.make {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        if *dir {
            fs::create_dir(path).map_err(io(format!("creating {}", path.display())))?;
        } else {
            File::create(path).map_err(io(format!("creating {}", path.display())))?;
        }
    }
    for (src, dst) in binds {
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        File::create(dst).map_err(io(format!("creating {}", dst.display())))?;
        host::bind_mount(src, dst).map_err(sys(format!(
            "bind-mounting {} on {}",
            src.display(),
            dst.display()
        )))?;
    }
    if plan.chroot {
        // /proc inside, so the engine's checked procfs is there.
        let root = Path::new(SCRATCH).join("root");
        let proc = root.join("proc");
        fs::create_dir_all(&proc).map_err(io(format!("creating {}", proc.display())))?;
        host::bind_mount(Path::new("/proc"), &proc).map_err(sys("bind-mounting /proc".into()))?;
        nix::unistd::chroot(&root).map_err(|e| format!("chroot {}: {e}", root.display()))?;
        nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    }
    Ok(())
}

/// Forks; the parent waits for the child and ends with its status, the
/// child goes on (in the pid namespace for children).
fn continue_in_child() -> Result<(), String> {
    match Linux.fork().map_err(|e| format!("fork: {e}"))? {
        Forked::Parent { child } => {
            let code = process::wait(child).map_or(1, process::Exit::status);
            exit_now(code)
        }
        Forked::Child => {
            linux::set_parent_death_signal().map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))
        }
    }
}

/// Makes a process that shares this one's fs_struct (`clone(CLONE_FS |
/// SIGCHLD)`) and sleeps until it is killed: this process is then a caller
/// whose fs_struct is shared.
fn fs_companion() -> Result<(), String> {
    // SAFETY: clone(2) without CLONE_VM and without a new stack behaves as
    // fork(2): the child runs on its own copy of this process's memory. The
    // child makes nothing but system calls (prctl, pause) that need no
    // state of the C library and are async-signal-safe, and never returns
    // from this block, so it is sound whatever the state of the parent.
    let r = unsafe {
        let r = libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::try_from(libc::CLONE_FS | libc::SIGCHLD).unwrap_or(0),
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if r == 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            loop {
                libc::pause();
            }
        }
        r
    };
    if r < 0 {
        return Err(format!("clone(CLONE_FS): {}", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external::Corpus;

    #[test]
    fn answers_round_trip_through_their_text() {
        for a in [
            Answer::Ok,
            Answer::Err(Errno::EPERM),
            Answer::Err(Errno(4095)),
            Answer::Returned(0x4000_0000),
            Answer::Returned(-1),
        ] {
            assert_eq!(decode_answer(&encode_answer(&a)), Ok(a), "{a}");
        }
        assert!(decode_answer("maybe").is_err());
    }

    #[test]
    fn every_row_the_model_runs_is_planned_or_refused_with_a_reason() {
        let corpus = Corpus::load().unwrap();
        for row in &corpus.rows {
            if row.left_out.is_some() || external::run_on_model(row).is_err() {
                continue;
            }
            if let Err(u) = plan_row(row) {
                assert!(!u.0.is_empty(), "{}", row.id);
            }
        }
    }

    #[test]
    fn holder_paths_are_resolved_and_other_paths_kept() {
        let caller = KernelCaller::new(
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::from([("net".to_owned(), 42)]),
        );
        assert_eq!(
            caller.resolve(Path::new("/proc/HOLDER/ns/net")),
            PathBuf::from("/proc/42/ns/net")
        );
        assert_eq!(
            caller.resolve(Path::new("/proc/HOLDER/ns/uts")),
            PathBuf::from("/proc/HOLDER/ns/uts")
        );
        assert_eq!(caller.resolve(Path::new("/tmp/x")), PathBuf::from("/tmp/x"));
    }
}
