//! Exec: joining the namespaces of a running process (DESIGN §9), what
//! `runc exec`, `crun exec`, `youki exec` and `nsenter --all` do.
//!
//! An exec plan is an ordinary [`Plan`] that joins the target's
//! `/proc/<pid>/ns/*` files, with one step in front: a [`Step::PidfdJoin`](crate::Step::PidfdJoin)
//! that joins them all at once through a pidfd (`setns(pidfd, flags)`,
//! Linux 5.8). When that succeeds, the per-namespace steps are skipped;
//! when the kernel refuses it, they are the fallback, in DESIGN §4's order
//! (every file opened before the first join, EPERM deferred until the user
//! namespace is joined), so a rootless caller does not lose access to the
//! target's other namespace files by joining its user namespace first (the
//! crun bug SEMANTICS.md cites). A joined pid or time namespace applies to
//! children only: the plan ends with a fork.
//!
//! Which namespace of the target: its *active* pid and time namespaces
//! (`/proc/<pid>/ns/pid`, `ns/time`), never its `*_for_children`. A child
//! of the caller must land where the target's processes are; setns through
//! a pidfd takes the same ones (`task_active_pid_ns` and the nsproxy's
//! `time_ns` in `validate_nsset`, kernel/nsproxy.c), so both paths agree.
//!
//! Which kinds by default: those whose namespace differs from the caller's,
//! compared by nsfs inode (ioctl_nsfs(2)); for pid and time the caller's
//! side is its `pid_for_children`/`time_for_children`, where the caller's
//! children would go without a join (nsenter compares with the caller's
//! active ones, which skips a join that a caller who unshared pid needs).
//! A kind the kernel does not have (no `ns/time` before 5.6) is not joined.
//!
//! ```
//! use nsapply::exec::ExecTarget;
//! use nsapply::{Kind, KindSet, Step};
//! let kinds: KindSet = "network,pid".parse().unwrap();
//! let plan = ExecTarget::new(4242, kinds).plan().unwrap();
//! assert!(matches!(plan.steps()[0], Step::PidfdJoin { pid: 4242, .. }));
//! assert_eq!(plan.steps().last(), Some(&Step::Fork));
//! assert_eq!(plan.exec_target(), Some(4242));
//! ```

use std::path::PathBuf;

use crate::config::{validate, RawLinux, RawNamespace};
use crate::error::{Errno, ErrorCode};
use crate::kind::{Kind, KindSet};
use crate::plan::{plan, Plan};
use crate::syscall::process::Pidfd;
use crate::syscall::procfs::{NsIdentity, ProcRoot};

/// Why an exec target cannot be planned for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The pid cannot name a process to join (not positive, or the caller
    /// itself), `/proc` cannot be trusted to show it, or its namespaces
    /// cannot be read (no ptrace read access: EACCES/EPERM).
    #[error("process {pid} cannot be joined: {reason}{}", errno.map(|e| format!(": {e}")).unwrap_or_default())]
    InvalidTarget {
        /// The pid asked for.
        pid: i32,
        /// What is wrong.
        reason: String,
        /// The errno, when a call failed.
        errno: Option<Errno>,
    },
    /// No such process, or it has exited (a zombie has no namespaces).
    #[error("process {pid}, whose namespaces the exec joins, has exited or never existed{}", errno.map(|e| format!(" ({e})")).unwrap_or_default())]
    TargetExited {
        /// The pid asked for.
        pid: i32,
        /// ESRCH from pidfd_open, ENOENT from its `/proc/<pid>/ns`.
        errno: Option<Errno>,
    },
}

impl ExecError {
    /// The stable code: `invalid-target` or `target-exited`.
    pub const fn code(&self) -> ErrorCode {
        match self {
            ExecError::InvalidTarget { .. } => ErrorCode::InvalidTarget,
            ExecError::TargetExited { .. } => ErrorCode::TargetExited,
        }
    }

    /// The errno of the call that failed, if one did.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ExecError::InvalidTarget { errno, .. } | ExecError::TargetExited { errno, .. } => {
                *errno
            }
        }
    }
}

/// The trace's `error` for a target that could not be planned for (no
/// steps were taken).
impl From<&ExecError> for crate::trace::TraceError {
    fn from(e: &ExecError) -> Self {
        crate::trace::TraceError {
            code: e.code(),
            kind: None,
            path: None,
            errno: e.errno(),
            message: e.to_string(),
            index: None,
            unjoined: Vec::new(),
        }
    }
}

/// The process an exec joins, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecTarget {
    /// Its pid in the caller's pid namespace (what `pidfd_open` takes).
    pub pid: i32,
    /// Its number in the procfs at `/proc` (the per-namespace fallback
    /// opens `/proc/<proc_pid>/ns/*`): the same as `pid` unless `/proc`
    /// belongs to an ancestor of the caller's pid namespace.
    pub proc_pid: i32,
    /// The kinds joined.
    pub kinds: KindSet,
    /// Whether to try the pidfd join first (`false`: per namespace only,
    /// `--no-pidfd`).
    pub pidfd: bool,
}

impl ExecTarget {
    /// Joining `kinds` of process `pid`, through a pidfd first, with
    /// `/proc` numbering it as the caller does.
    pub fn new(pid: i32, kinds: KindSet) -> ExecTarget {
        ExecTarget {
            pid,
            proc_pid: pid,
            kinds,
            pidfd: true,
        }
    }

    /// The same target, joined per namespace only (no pidfd step).
    #[must_use]
    pub fn per_namespace(mut self) -> ExecTarget {
        self.pidfd = false;
        self
    }

    /// The namespace file of `kind` that the fallback opens.
    pub fn ns_path(&self, kind: Kind) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{}", self.proc_pid, kind.proc_name()))
    }

    /// The exec plan (pure): the pidfd join (unless per namespace only),
    /// then DESIGN §4's plan joining `kinds` at [`ExecTarget::ns_path`],
    /// then a fork when pid or time is among them. No kinds: an empty plan
    /// (the command runs where the caller is).
    ///
    /// # Errors
    ///
    /// `invalid-target` for a pid that is not positive.
    pub fn plan(&self) -> Result<Plan, ExecError> {
        for pid in [self.pid, self.proc_pid] {
            if pid <= 0 {
                return Err(ExecError::InvalidTarget {
                    pid,
                    reason: "a pid must be positive".to_owned(),
                    errno: None,
                });
            }
        }
        let raw = RawLinux {
            namespaces: self
                .kinds
                .iter()
                .map(|kind| RawNamespace {
                    type_name: kind.spec_name().to_owned(),
                    path: Some(self.ns_path(kind)),
                })
                .collect(),
            ..RawLinux::default()
        };
        // Joins at absolute paths without NUL, each kind once: nothing for
        // validation to refuse.
        let cfg = validate(&raw).map_err(|e| ExecError::InvalidTarget {
            pid: self.pid,
            reason: format!("the join config does not validate: {e}"),
            errno: None,
        })?;
        let pidfd = (self.pidfd && !self.kinds.is_empty()).then_some(self.kinds);
        Ok(plan(&cfg).for_exec(self.pid, pidfd))
    }
}

/// The target `pid` as this process sees it, with the kinds to join:
/// `kinds`, or by default every kind whose namespace differs from the
/// caller's (see the module documentation).
///
/// `/proc` is checked first (a procfs root, [`ProcRoot::open`]) and must
/// show the process: its number there comes from the pidfd
/// (`/proc/self/fdinfo`), so a `/proc` of another pid namespace is used
/// with the right number, or refused when it cannot show the target.
///
/// # Errors
///
/// `target-exited` when no such process exists or it has exited;
/// `invalid-target` for a pid that is not positive or is the caller, a
/// `/proc` that is not a procfs or does not show the target, and
/// namespaces that cannot be read.
pub fn resolve(pid: i32, kinds: Option<KindSet>) -> Result<ExecTarget, ExecError> {
    resolve_pidfd(&open_target(pid)?, kinds)
}

/// A pidfd of process `pid`, the target of an exec: what [`resolve_pidfd`]
/// reads, and what [`crate::run::run_exec`] holds on to while the plan is
/// applied, so that no other process given the same number later is
/// joined.
///
/// # Errors
///
/// `target-exited` when no such process exists; `invalid-target` for a
/// pid that is not positive, or another failure of pidfd_open(2).
pub fn open_target(pid: i32) -> Result<Pidfd, ExecError> {
    if pid <= 0 {
        return Err(ExecError::InvalidTarget {
            pid,
            reason: "a pid must be positive".to_owned(),
            errno: None,
        });
    }
    Pidfd::open(pid).map_err(|errno| {
        if errno == Errno::ESRCH {
            ExecError::TargetExited {
                pid,
                errno: Some(errno),
            }
        } else {
            ExecError::InvalidTarget {
                pid,
                reason: "pidfd_open failed".to_owned(),
                errno: Some(errno),
            }
        }
    })
}

/// [`resolve`] for a process the caller holds a pidfd of (its pid, as the
/// caller's pid namespace numbers it, is [`Pidfd::pid`]).
///
/// # Errors
///
/// As [`resolve`].
pub fn resolve_pidfd(pidfd: &Pidfd, kinds: Option<KindSet>) -> Result<ExecTarget, ExecError> {
    let pid = pidfd.pid();
    let invalid =
        |reason: String, errno: Option<Errno>| ExecError::InvalidTarget { pid, reason, errno };
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return Err(invalid(
            "it is the caller itself (its namespaces are the caller's)".to_owned(),
            None,
        ));
    }
    let proc = ProcRoot::open().map_err(|e| invalid(e.reason, e.errno))?;
    if pidfd.has_exited() {
        return Err(ExecError::TargetExited { pid, errno: None });
    }
    let dir = proc.process_dir(pidfd).map_err(|e| {
        if pidfd.has_exited() {
            ExecError::TargetExited {
                pid,
                errno: e.errno,
            }
        } else {
            invalid(e.reason, e.errno)
        }
    })?;
    let mut target = ExecTarget {
        pid,
        proc_pid: dir.pid(),
        kinds: KindSet::EMPTY,
        pidfd: true,
    };
    let mut differing = KindSet::EMPTY;
    for kind in Kind::ALL {
        let theirs = match NsRead::of(dir.namespace(kind.proc_name()), || pidfd.has_exited()) {
            NsRead::Id(id) => id,
            NsRead::Exited(errno) => {
                return Err(ExecError::TargetExited {
                    pid,
                    errno: Some(errno),
                })
            }
            NsRead::Absent => continue,
            NsRead::Failed(errno) => {
                return Err(invalid(
                    format!("reading its {kind} namespace {:?}", target.ns_path(kind)),
                    Some(errno),
                ))
            }
        };
        let ours = proc
            .own_namespace(kind.proc_name_for_children())
            .map_err(|errno| {
                invalid(
                    format!(
                        "reading the caller's {kind} namespace /proc/self/ns/{}",
                        kind.proc_name_for_children()
                    ),
                    Some(errno),
                )
            })?;
        if theirs != ours {
            differing.insert(kind);
        }
    }
    target.kinds = kinds.unwrap_or(differing);
    Ok(target)
}

/// What one of the target's namespace files said, read after the target
/// was checked alive: the target may end between two reads, and its files
/// are then gone (ENOENT), as they are on a kernel without that kind.
#[derive(Debug, PartialEq, Eq)]
enum NsRead {
    /// The namespace it names.
    Id(NsIdentity),
    /// No such file, the target still alive: this kernel has no
    /// namespaces of the kind.
    Absent,
    /// No such file because the target ended meanwhile.
    Exited(Errno),
    /// Any other error (EACCES: the ptrace check).
    Failed(Errno),
}

impl NsRead {
    /// `exited` asks the pidfd, and only when the file is missing.
    fn of(read: Result<NsIdentity, Errno>, exited: impl FnOnce() -> bool) -> NsRead {
        match read {
            Ok(id) => NsRead::Id(id),
            Err(Errno::ENOENT) if exited() => NsRead::Exited(Errno::ENOENT),
            Err(Errno::ENOENT) => NsRead::Absent,
            Err(errno) => NsRead::Failed(errno),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Step;

    #[test]
    fn a_missing_namespace_file_is_an_exit_only_when_the_pidfd_says_so() {
        // The race resolve_pidfd guards against (the target ends between
        // two reads of its namespace files) cannot be made to happen on
        // demand, so the decision is tested here, each answer of the pidfd.
        let id = NsIdentity {
            dev: 4,
            ino: 4026531840,
        };
        let asked = std::cell::Cell::new(0);
        let exited = |answer: bool| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                answer
            }
        };
        assert_eq!(NsRead::of(Ok(id), exited(true)), NsRead::Id(id));
        assert_eq!(asked.get(), 0, "a file that is there needs no question");
        assert_eq!(
            NsRead::of(Err(Errno::ENOENT), exited(true)),
            NsRead::Exited(Errno::ENOENT)
        );
        assert_eq!(
            NsRead::of(Err(Errno::ENOENT), exited(false)),
            NsRead::Absent
        );
        assert_eq!(
            NsRead::of(Err(Errno::EACCES), exited(true)),
            NsRead::Failed(Errno::EACCES)
        );
        assert_eq!(
            NsRead::of(Err(Errno::EACCES), exited(false)),
            NsRead::Failed(Errno::EACCES)
        );
        assert_eq!(asked.get(), 2, "only a missing file asks the pidfd");
    }

    #[test]
    fn pidfd_join_comes_first_and_per_namespace_plan_follows() {
        let all = ExecTarget::new(7, KindSet::ALL).plan().unwrap();
        assert_eq!(
            all.steps()[0],
            Step::PidfdJoin {
                pid: 7,
                kinds: KindSet::ALL
            }
        );
        // Every file opened before the first join (DESIGN §9).
        let first_join = all
            .steps()
            .iter()
            .position(|s| matches!(s, Step::Setns { .. }))
            .unwrap();
        let opens = all.steps()[..first_join]
            .iter()
            .filter(|s| matches!(s, Step::Open { .. }))
            .count();
        assert_eq!(opens, 8);
        assert_eq!(all.steps().last(), Some(&Step::Fork));
        let per = ExecTarget::new(7, KindSet::ALL)
            .per_namespace()
            .plan()
            .unwrap();
        assert_eq!(&all.steps()[1..], per.steps());
    }

    #[test]
    fn no_kinds_is_an_empty_plan_and_bad_pids_are_refused() {
        let p = ExecTarget::new(7, KindSet::EMPTY).plan().unwrap();
        assert!(p.steps().is_empty());
        for pid in [0, -1, i32::MIN] {
            let e = ExecTarget::new(pid, KindSet::ALL).plan().unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidTarget);
        }
    }

    #[test]
    fn proc_numbering_names_the_paths_and_pidfd_the_pid() {
        let t = ExecTarget {
            proc_pid: 900,
            ..ExecTarget::new(12, "network".parse().unwrap())
        };
        let p = t.plan().unwrap();
        assert!(matches!(p.steps()[0], Step::PidfdJoin { pid: 12, .. }));
        assert!(
            matches!(&p.steps()[1], Step::Open { path, .. } if path.as_path() == std::path::Path::new("/proc/900/ns/net"))
        );
    }

    #[test]
    fn an_exec_error_gives_the_errno_of_its_call() {
        let invalid = ExecError::InvalidTarget {
            pid: 5,
            reason: "reading its ipc namespace".into(),
            errno: Some(Errno::EACCES),
        };
        assert_eq!(invalid.errno(), Some(Errno::EACCES));
        let exited = ExecError::TargetExited {
            pid: 5,
            errno: Some(Errno::ESRCH),
        };
        assert_eq!(exited.errno(), Some(Errno::ESRCH));
        assert_eq!(
            ExecError::TargetExited {
                pid: 5,
                errno: None
            }
            .errno(),
            None
        );
    }
}
