//! What a runtime did, at the level nsapply compares: from the decoded
//! [`Event`]s of its trace and the lines the container printed.
//!
//! The raw sequences differ in structure between runtimes (runc creates in
//! a grandchild of a re-executed `runc init`, crun in a child of itself,
//! with clone(2) or unshare(2)); what is kept is what matters: which kinds
//! were created and in which call, which paths were joined as which type
//! and whether their fds were close-on-exec, which process's namespaces
//! were joined through a pidfd (`setns(pidfd, flags)`, an exec), what was
//! written to the id maps, `setgroups` and `timens_offsets`, and the
//! namespaces and fds the container process itself saw.

use std::collections::{BTreeMap, BTreeSet};

use super::strace::{Event, Ret, O_CLOEXEC};
use nsapply::kind::{Kind, KindSet};

/// The `CLONE_NEW*` kinds in a set of clone/unshare flags.
pub fn kinds_of_flags(flags: u64) -> KindSet {
    let mut set = KindSet::EMPTY;
    for k in Kind::ALL {
        // Namespace flags are positive bits below 2^31.
        if flags & u64::from(k.clone_flag().unsigned_abs()) != 0 {
            set.insert(k);
        }
    }
    set
}

/// One successful call that created namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creation {
    /// The kinds it created (one call may create several).
    pub kinds: KindSet,
    /// `unshare` or `clone`.
    pub call: &'static str,
}

/// One setns(2) call on a namespace fd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// The calling process.
    pub pid: i32,
    /// The path the fd was opened from (or `-yy`'s decoding of it).
    pub path: String,
    /// The `nstype` argument: `None` for 0 (any type accepted).
    pub nstype: Option<Kind>,
    /// The namespace type of the fd as `-yy` printed it (`mnt:[4026532180]`),
    /// whatever `nstype` says.
    pub fd_kind: Option<Kind>,
    /// Whether the fd had `O_CLOEXEC` when opened (`None`: open not traced).
    pub cloexec: Option<bool>,
    /// The result.
    pub ret: Ret,
    /// Position among the namespace calls (creations and joins) of the run.
    pub seq: usize,
}

/// One setns(2) call on a pidfd: the namespaces of `kinds` of process
/// `target` joined at once, all or none (Linux 5.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidfdJoin {
    /// The calling process.
    pub pid: i32,
    /// The process the pidfd refers to.
    pub target: i32,
    /// The kinds of the `nstype` argument (the flags).
    pub kinds: KindSet,
    /// The result.
    pub ret: Ret,
    /// Position among the namespace calls of the run (as [`Join::seq`]).
    pub seq: usize,
}

/// An open of a namespace file by the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsOpen {
    /// The calling process.
    pub pid: i32,
    /// The path.
    pub path: String,
    /// The namespace type of the resulting fd as `-yy` printed it.
    pub kind: Option<Kind>,
    /// How many namespace calls (creations, joins) the run had made before
    /// it: an open with `seq > j.seq` came after the join `j`.
    pub seq: usize,
    /// Whether `O_CLOEXEC` was given.
    pub cloexec: bool,
    /// The result.
    pub ret: Ret,
}

/// A write to one of the files that set up a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsWrite {
    /// `uid_map`, `gid_map`, `setgroups` or `timens_offsets`.
    pub file: String,
    /// The bytes, NUL bytes removed (runc writes a trailing NUL).
    pub text: String,
    /// The result.
    pub ret: Ret,
}

/// The runtime's namespace activity, from its trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Successful namespace creations, with their position.
    pub creations: Vec<(usize, Creation)>,
    /// Failed creations (unshare/clone with `CLONE_NEW*` that failed).
    pub failed_creations: Vec<(KindSet, Ret)>,
    /// setns calls, in order, but for [`Activity::own_joins`].
    pub joins: Vec<Join>,
    /// setns calls into a namespace of one of the run's own processes
    /// (`/proc/<pid>/ns/*` of a traced process): the runtime reaching into
    /// the container it is making (runc 1.2 and later join the container's
    /// mount namespace from a thread of `runc run` to open mount sources).
    /// Not a config join, so not judged as one.
    pub own_joins: Vec<Join>,
    /// setns calls on a pidfd, in order.
    pub pidfd_joins: Vec<PidfdJoin>,
    /// Opens of namespace files (the config's paths, `/proc/<pid>/ns/*`,
    /// any file whose fd `-yy` shows as a namespace, or fds later joined).
    pub ns_opens: Vec<NsOpen>,
    /// Writes to id maps, `setgroups` and `timens_offsets`.
    pub writes: Vec<NsWrite>,
    /// Whether a process executed the container's program.
    pub container_started: bool,
    /// The process that executed the container's program first.
    pub container_pid: Option<i32>,
}

impl Activity {
    /// Every kind created.
    pub fn created(&self) -> KindSet {
        self.creations.iter().fold(KindSet::EMPTY, |acc, (_, c)| {
            KindSet::from_bits(acc.bits() | c.kinds.bits())
        })
    }

    /// The position of the call that created the user namespace.
    pub fn user_created_at(&self) -> Option<usize> {
        self.creations
            .iter()
            .find(|(_, c)| c.kinds.contains(Kind::User))
            .map(|(s, _)| *s)
    }

    /// Whether any namespace was created or joined successfully.
    pub fn touched_namespaces(&self) -> bool {
        !self.creations.is_empty()
            || self.joins.iter().any(|j| j.ret.is_ok())
            || self.pidfd_joins.iter().any(|j| j.ret.is_ok())
    }

    /// The text of the last successful write to `file`.
    pub fn written(&self, file: &str) -> Option<&str> {
        self.writes
            .iter()
            .rev()
            .find(|w| w.file == file && w.ret.is_ok())
            .map(|w| w.text.as_str())
    }
}

/// What an fd of a traced process refers to.
#[derive(Clone, Debug)]
struct OpenFile {
    path: String,
    cloexec: bool,
    /// For a pidfd: the process it refers to.
    pidfd: Option<i32>,
}

/// Builds the [`Activity`] of a runtime from its trace. `program` is the
/// container's executable (`/bin/busybox`): a process that executed it is
/// the container, and its later calls and those of its children are not
/// the runtime's. `ns_paths` are the namespace paths of the config.
pub fn activity(events: &[Event], program: &str, ns_paths: &BTreeSet<String>) -> Activity {
    let mut out = Activity::default();
    let traced = traced_pids(events);
    let mut fds: BTreeMap<i32, BTreeMap<i32, OpenFile>> = BTreeMap::new();
    let mut container: BTreeSet<i32> = BTreeSet::new();
    let mut seq = 0usize;
    for e in events {
        let pid = e.pid();
        if container.contains(&pid) {
            if let Event::Clone {
                ret: Ret::Ok(c), ..
            } = e
            {
                container.insert(i32::try_from(*c).unwrap_or(-1));
            }
            continue;
        }
        match e {
            Event::Execve { path, ret, .. } if ret.is_ok() && path == program => {
                container.insert(pid);
                out.container_started = true;
                out.container_pid.get_or_insert(pid);
            }
            Event::Execve { .. } => {}
            Event::Clone { flags, ret, .. } => {
                let kinds = kinds_of_flags(*flags);
                match ret {
                    Ret::Ok(child) => {
                        let table = fds.get(&pid).cloned().unwrap_or_default();
                        fds.insert(i32::try_from(*child).unwrap_or(-1), table);
                        if !kinds.is_empty() {
                            out.creations.push((
                                seq,
                                Creation {
                                    kinds,
                                    call: "clone",
                                },
                            ));
                            seq += 1;
                        }
                    }
                    other if !kinds.is_empty() => out.failed_creations.push((kinds, other.clone())),
                    _ => {}
                }
            }
            Event::Unshare { flags, ret, .. } => {
                let kinds = kinds_of_flags(*flags);
                if kinds.is_empty() {
                    continue;
                }
                if ret.is_ok() {
                    out.creations.push((
                        seq,
                        Creation {
                            kinds,
                            call: "unshare",
                        },
                    ));
                    seq += 1;
                } else {
                    out.failed_creations.push((kinds, ret.clone()));
                }
            }
            Event::Open {
                path,
                flags,
                ret,
                fd_path,
                ..
            } => {
                let cloexec = flags & O_CLOEXEC != 0;
                let kind = fd_path.as_deref().and_then(ns_link_kind);
                // crun 1.28 opens `<pid>/ns/<name>` relative to a procfs
                // fd: the path alone does not tell, the fd's type does.
                let is_ns = ns_paths.contains(path) || is_proc_ns_path(path) || kind.is_some();
                if is_ns {
                    out.ns_opens.push(NsOpen {
                        pid,
                        path: path.clone(),
                        kind,
                        seq,
                        cloexec,
                        ret: ret.clone(),
                    });
                }
                if let Ret::Ok(fd) = ret {
                    fds.entry(pid).or_default().insert(
                        i32::try_from(*fd).unwrap_or(-1),
                        OpenFile {
                            path: path.clone(),
                            cloexec,
                            pidfd: None,
                        },
                    );
                }
            }
            Event::PidfdOpen { target, ret, .. } => {
                if let Ret::Ok(fd) = ret {
                    fds.entry(pid).or_default().insert(
                        i32::try_from(*fd).unwrap_or(-1),
                        OpenFile {
                            path: format!("pidfd of {target}"),
                            // pidfd_open(2) always sets O_CLOEXEC.
                            cloexec: true,
                            pidfd: Some(*target),
                        },
                    );
                }
            }
            Event::Close { fd, .. } => {
                if let Some(t) = fds.get_mut(&pid) {
                    t.remove(&fd.num);
                }
            }
            Event::Setns {
                fd, nstype, ret, ..
            } => {
                let opened = fds.get(&pid).and_then(|t| t.get(&fd.num));
                // A pidfd whose pidfd_open was traced, or that `-yy` shows
                // as `pid:<n>` (a namespace fd of pid shows `pid:[<inode>]`).
                let pidfd = opened
                    .and_then(|o| o.pidfd)
                    .or_else(|| fd.path.as_deref().and_then(pidfd_link_target));
                if let Some(target) = pidfd {
                    out.pidfd_joins.push(PidfdJoin {
                        pid,
                        target,
                        kinds: kinds_of_flags(*nstype),
                        ret: ret.clone(),
                        seq,
                    });
                    seq += 1;
                    continue;
                }
                let path = opened
                    .map(|o| o.path.clone())
                    .or_else(|| fd.path.clone())
                    .unwrap_or_else(|| format!("fd {}", fd.num));
                let nstype = i32::try_from(*nstype).ok().and_then(Kind::from_clone_flag);
                // An fd joined but whose open was not recognised as a
                // namespace path (e.g. a relative path) still counts.
                let fd_kind = fd.path.as_deref().and_then(ns_link_kind);
                if let Some(o) = opened {
                    if !out.ns_opens.iter().any(|n| n.path == o.path) {
                        out.ns_opens.push(NsOpen {
                            pid,
                            path: o.path.clone(),
                            kind: fd_kind,
                            seq,
                            cloexec: o.cloexec,
                            ret: Ret::Ok(i64::from(fd.num)),
                        });
                    }
                }
                let join = Join {
                    pid,
                    path,
                    nstype,
                    fd_kind,
                    cloexec: opened.map(|o| o.cloexec),
                    ret: ret.clone(),
                    seq,
                };
                if proc_ns_pid(&join.path).is_some_and(|p| traced.contains(&p)) {
                    out.own_joins.push(join);
                    continue;
                }
                out.joins.push(join);
                seq += 1;
            }
            Event::Write { fd, data, ret, .. } => {
                let Some(path) = fd.path.as_deref() else {
                    continue;
                };
                let Some(file) = proc_setup_file(path) else {
                    continue;
                };
                {
                    let text: String = String::from_utf8_lossy(data)
                        .chars()
                        .filter(|c| *c != '\0')
                        .collect();
                    out.writes.push(NsWrite {
                        file: file.to_owned(),
                        text,
                        ret: ret.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The kind of a namespace link as the kernel prints it (`mnt:[4026532180]`,
/// what `-yy` shows for a namespace fd).
///
/// ```
/// use nsapply::Kind;
/// use nsapply_conform::observe::ns_link_kind;
/// assert_eq!(ns_link_kind("mnt:[4026532180]"), Some(Kind::Mount));
/// assert_eq!(ns_link_kind("pid:23263"), None, "a pidfd");
/// assert_eq!(ns_link_kind("/proc/1/ns/mnt"), None);
/// ```
pub fn ns_link_kind(link: &str) -> Option<Kind> {
    let (name, rest) = link.split_once(":[")?;
    let digits = rest.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Kind::ALL.into_iter().find(|k| k.proc_name() == name)
}

/// The process of a pidfd as `-yy` prints it: `pid:23263`.
fn pidfd_link_target(link: &str) -> Option<i32> {
    link.strip_prefix("pid:")?.parse().ok()
}

/// `/proc/<pid|self|thread-self>/ns/<name>`.
fn is_proc_ns_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 5 && parts[0].is_empty() && parts[1] == "proc" && parts[3] == "ns"
}

/// The pid of `/proc/<pid>/ns/<name>`.
fn proc_ns_pid(path: &str) -> Option<i32> {
    if !is_proc_ns_path(path) {
        return None;
    }
    path.split('/').nth(2)?.parse().ok()
}

/// Every process of the trace: those that made a call, and the children
/// their clones returned.
fn traced_pids(events: &[Event]) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    for e in events {
        pids.insert(e.pid());
        if let Event::Clone {
            ret: Ret::Ok(c), ..
        } = e
        {
            pids.insert(i32::try_from(*c).unwrap_or(-1));
        }
    }
    pids
}

/// The procfs file that sets up a namespace (`uid_map`, `gid_map`,
/// `setgroups`, `timens_offsets`) that `path`, an fd's path as strace's
/// `-yy` prints it, names: `/proc/<pid|self>/<file>`, or `/<pid>/<file>`
/// when the runtime opened it through a procfs mount of its own that is
/// not attached to the tree (crun 1.28 opens `<pid>/uid_map` relative to
/// a detached procfs, whose root prints as `/`).
fn proc_setup_file(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/proc").unwrap_or(path);
    let mut parts = rest.strip_prefix('/')?.split('/');
    let (Some(owner), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let is_owner = matches!(owner, "self" | "thread-self")
        || (!owner.is_empty() && owner.bytes().all(|b| b.is_ascii_digit()));
    let is_file = matches!(file, "uid_map" | "gid_map" | "setgroups" | "timens_offsets");
    (is_owner && is_file).then_some(file)
}

/// What the container process printed: `ns <name> <type>:[<inode>]` per
/// `/proc/self/ns` entry and `fd <n> <target>` per open fd; the command of
/// an exec also `self <pid>` ([`exec_script`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerView {
    /// The inode of each kind's namespace, as `/proc/self/ns/<name>` shows.
    pub inodes: BTreeMap<Kind, u64>,
    /// The container's open fds and their targets.
    pub fds: Vec<(i32, String)>,
    /// The `self` line of an exec's command: its pid as the container's
    /// `/proc` numbers it, read by the shell itself (not a child); empty
    /// when `/proc/self` does not resolve there, that is when the shell is
    /// not in the container's pid namespace. `None`: no such line.
    pub proc_self: Option<String>,
}

/// The container's shell script that prints a [`ContainerView`].
pub const CONTAINER_SCRIPT: &str = "for n in user pid uts ipc net cgroup mnt time; do \
echo \"ns $n $(/bin/busybox readlink /proc/self/ns/$n)\"; done; \
for f in /proc/self/fd/*; do echo \"fd ${f##*/} $(/bin/busybox readlink $f)\"; done";

/// The command of an exec: [`CONTAINER_SCRIPT`] after a `self <pid>`
/// line. The ns lines come from `readlink` children of the shell, which
/// are in its `pid_for_children`: a shell that joined the pid namespace
/// without a fork would show the container's there too. So the shell
/// first reads its own `/proc/self/stat` with a builtin: in the container's
/// `/proc`, `/proc/self` resolves only for a process of its pid namespace.
pub fn exec_script() -> String {
    format!("read -r s < /proc/self/stat; echo \"self ${{s%% *}}\"; {CONTAINER_SCRIPT}")
}

/// Parses the container's output; lines that are not its own are ignored.
pub fn container_view(stdout: &str) -> ContainerView {
    let mut view = ContainerView::default();
    for line in stdout.lines() {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("ns"), Some(name), Some(target)) => {
                let kind = Kind::ALL.into_iter().find(|k| k.proc_name() == name);
                let inode = target
                    .split_once(":[")
                    .and_then(|(_, rest)| rest.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok());
                if let (Some(k), Some(i)) = (kind, inode) {
                    view.inodes.insert(k, i);
                }
            }
            (Some("fd"), Some(n), target) => {
                if let Ok(n) = n.parse() {
                    view.fds.push((n, target.unwrap_or("").to_owned()));
                }
            }
            (Some("self"), pid, None) => {
                view.proc_self = Some(pid.unwrap_or("").to_owned());
            }
            _ => {}
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_kinds() {
        let k = kinds_of_flags(0x6c02_0000);
        assert_eq!(
            k,
            [Kind::Pid, Kind::Uts, Kind::Ipc, Kind::Network, Kind::Mount]
                .into_iter()
                .collect()
        );
        assert!(kinds_of_flags(0x3d0f00).is_empty(), "a Go thread clone");
        assert_eq!(kinds_of_flags(0x80), KindSet::one(Kind::Time));
    }

    #[test]
    fn setup_files_are_found_under_attached_and_detached_procfs() {
        assert_eq!(proc_setup_file("/proc/12/uid_map"), Some("uid_map"));
        assert_eq!(
            proc_setup_file("/proc/self/timens_offsets"),
            Some("timens_offsets")
        );
        assert_eq!(proc_setup_file("/5760/gid_map"), Some("gid_map"));
        assert_eq!(proc_setup_file("/tmp/x/uid_map"), None);
        assert_eq!(proc_setup_file("/proc/12/task/12/uid_map"), None);
        assert_eq!(proc_setup_file("/etc/uid_map"), None);
    }

    #[test]
    fn a_join_of_a_traced_process_namespace_is_the_runtime_own() {
        let text = "10 clone(child_stack=NULL, flags=0x20000|17) = 11\n\
                    12 openat(-100</>, \"/proc/11/ns/mnt\", 0x80000) = 5<mnt:[4026532180]>\n\
                    12 setns(5<mnt:[4026532180]>, 0x20000) = 0\n\
                    12 openat(-100</>, \"/proc/99/ns/net\", 0x80000) = 6<net:[4026532181]>\n\
                    12 setns(6<net:[4026532181]>, 0x40000000) = 0\n";
        let events = crate::strace::decode(text).unwrap();
        let a = activity(&events, "/bin/busybox", &BTreeSet::new());
        assert_eq!(a.own_joins.len(), 1, "{a:?}");
        assert_eq!(a.own_joins[0].path, "/proc/11/ns/mnt");
        assert_eq!(a.joins.len(), 1, "{a:?}");
        assert_eq!(a.joins[0].path, "/proc/99/ns/net");
    }

    #[test]
    fn container_view_reads_inodes_and_fds() {
        let v = container_view("ns net net:[4026532181]\nns time \nfd 0 /dev/null\nnoise\n");
        assert_eq!(v.inodes.get(&Kind::Network), Some(&4_026_532_181));
        assert_eq!(v.inodes.len(), 1);
        assert_eq!(v.fds, vec![(0, "/dev/null".to_owned())]);
        assert_eq!(v.proc_self, None);
        assert_eq!(container_view("self 7\n").proc_self.as_deref(), Some("7"));
        assert_eq!(container_view("self \n").proc_self.as_deref(), Some(""));
    }

    #[test]
    fn exec_script_reads_its_own_stat_before_the_listing() {
        let s = exec_script();
        assert!(s.starts_with("read -r s < /proc/self/stat; echo \"self ${s%% *}\"; for n in"));
        assert!(s.ends_with(CONTAINER_SCRIPT));
    }

    #[test]
    fn a_setns_on_a_pidfd_is_a_pidfd_join_and_opens_are_ordered() {
        // crun 1.8.1's exec, shortened: the user namespace through the
        // pidfd, the rest refused, then the per-path fallback.
        let text = "5 pidfd_open(40, 0) = 5<pid:40>\n\
                    5 setns(5<pid:40>, 0x10000000) = 0\n\
                    5 setns(5<pid:40>, 0x7e020080) = -1 EINVAL (Invalid argument)\n\
                    5 openat(-100</w>, \"/proc/40/ns/mnt\", 0) = 5<mnt:[4026532180]>\n\
                    5 openat(7</>, \"40/ns/net\", 0x80000) = 8<net:[4026532184]>\n\
                    5 setns(5<mnt:[4026532180]>, 0) = 0\n\
                    5 clone(child_stack=NULL, flags=0x1200000|17) = 6\n\
                    6 execve(\"/bin/busybox\", [\"/bin/busybox\"], 0x1 /* 2 vars */) = 0\n\
                    6 setns(3<pid:[1]>, 0x20000000) = 0\n";
        let events = crate::strace::decode(text).unwrap();
        let a = activity(&events, "/bin/busybox", &BTreeSet::new());
        let pidfd: Vec<(i32, KindSet, bool)> = a
            .pidfd_joins
            .iter()
            .map(|j| (j.target, j.kinds, j.ret.is_ok()))
            .collect();
        assert_eq!(
            pidfd,
            [
                (40, KindSet::one(Kind::User), true),
                (40, kinds_of_flags(0x7e02_0080), false)
            ]
        );
        let opens: Vec<(Option<Kind>, usize, bool)> = a
            .ns_opens
            .iter()
            .map(|o| (o.kind, o.seq, o.cloexec))
            .collect();
        assert_eq!(
            opens,
            [
                (Some(Kind::Mount), 2, false),
                (Some(Kind::Network), 2, true)
            ]
        );
        assert_eq!(
            a.joins.len(),
            1,
            "the container's own setns is not the runtime's"
        );
        assert_eq!(
            (a.joins[0].nstype, a.joins[0].fd_kind),
            (None, Some(Kind::Mount))
        );
        assert_eq!(a.container_pid, Some(6));
    }
}
