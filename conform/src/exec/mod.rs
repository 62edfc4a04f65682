//! Exec cases: the runtime starts the container detached, then
//! `RUNTIME exec <id> <command>` runs under strace, and what it did is
//! compared with nsapply's exec plan for the same target (DESIGN §9,
//! [`nsapply::exec`]): [`nsapply::exec::resolve`] on the container's init
//! gives the kinds (those whose namespace differs from the runtime's own),
//! [`nsapply::exec::ExecTarget::plan`] the plan: one `setns(pidfd, flags)`
//! for all of them, the per-namespace joins of `/proc/<pid>/ns/*` as its
//! fallback (every file opened before the first join, the user namespace
//! joined after the others, EPERM deferred), and a fork when pid (or time)
//! is joined.
//!
//! What the runtimes do (the sources the report's explanations cite):
//!
//! * runc 1.1 (`libcontainer/nsenter/nsexec.c`, `join_namespaces`): opens
//!   every `/proc/<pid>/ns/*` path first with `open(path, O_RDONLY)` (no
//!   `O_CLOEXEC`), then joins them in the order Go gives, user first,
//!   each `setns(fd, type)`; forks for pid in its stage-2 child. runc 1.3
//!   (1.3.6 here; commit fadc55eb, "nsenter: implement a two-stage join
//!   for setns") joins the non-user namespaces first, skipping EPERM, then
//!   user, then retries (`__join_namespaces`).
//! * crun (`src/libcrun/linux.c`, `try_setns_with_pidfd` and
//!   `join_process_namespaces`): `pidfd_open` of the container's pid 1 and
//!   `setns(pidfd, flags)` with every kind the kernel has, whatever the
//!   container's namespaces are; 1.8.1 joins the user namespace alone
//!   through the pidfd first (the order crun issue 1264 reports, changed by
//!   crun pull request 1265, in 1.8.7 and 1.9). A flag set that holds the
//!   caller's own user namespace is EINVAL (setns(2): already a member),
//!   all or none, so a container without a user namespace always takes
//!   the fallback. When that fails, or when the config names any
//!   namespace path, it opens every namespace file of the process (1.8.1:
//!   `open("/proc/<pid>/ns/<name>", O_RDONLY)`, no `O_CLOEXEC`; 1.21 and
//!   1.28: `<pid>/ns/<name>` under its own procfs fd, `O_CLOEXEC`) and
//!   joins them with `setns(fd, 0)` in up to three passes, passing over
//!   errors for kinds the config does not list. Then it forks.
//! * youki 0.7.0 (`crates/libcontainer/src/container/tenant_builder.rs`,
//!   `NAMESPACE_TYPES`): the tenant joins ipc, uts, net, pid, mnt, cgroup
//!   and time, never user; each path is opened just before its `setns`.
//!
//! The checks ([`judge`]) are the plan's, one [`ExecDifference`] each:
//! the mechanism (one pidfd call with the plan's kinds, or the same
//! fallback), the per-path order (no file opened after a join, user
//! joined after the others), `O_CLOEXEC` and the type of each join, the
//! kinds joined, the fork (the command must not run in the process that
//! joined pid, and must see itself in the container's `/proc`), and the
//! command's namespaces (inode for inode those of the container's init,
//! read before the exec) with no namespace fd or pidfd open.

mod run;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::observe::{ns_link_kind, Activity, ContainerView};
use super::strace::Ret;
use super::verdict::{Difference, Verdict};
use nsapply::kind::{Kind, KindSet};
use nsapply::plan::{Plan, Step};

/// The long-running command of an exec case's container: a shell (pid 1
/// of the container when it has a pid namespace) waiting on a `sleep`, so
/// that the container's id, its last argument, names it in `ps`. The `;`
/// keeps busybox's shell from replacing itself with the sleep. The limit
/// bounds a container that a failed clean-up would leave behind.
pub fn init_args(id: &str) -> Vec<String> {
    [
        super::bundle::CONTAINER_PROGRAM,
        "sh",
        "-c",
        "/bin/busybox sleep 600; :",
        id,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The target of an exec run, as the runner found it: kept next to the
/// trace (`exec.json`) so that a fixture can be judged again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRecord {
    /// The container's init, as the runner numbers it.
    pub pid: i32,
    /// The kinds nsapply's exec plan joins ([`nsapply::exec::resolve`]).
    pub kinds: KindSet,
    /// The init's namespace inodes (`/proc/<pid>/ns/<name>`), by spec name.
    pub init: BTreeMap<String, u64>,
}

impl ExecRecord {
    /// The init's inodes by kind.
    pub fn init_inodes(&self) -> BTreeMap<Kind, u64> {
        self.init
            .iter()
            .filter_map(|(name, inode)| Kind::from_spec_name(name).map(|k| (k, *inode)))
            .collect()
    }

    /// nsapply's exec plan for this target: through a pidfd first.
    ///
    /// # Errors
    ///
    /// A pid that is not positive.
    pub fn plan(&self) -> Result<Plan, nsapply::exec::ExecError> {
        nsapply::exec::ExecTarget::new(self.pid, self.kinds).plan()
    }
}

/// What the runner observed of one exec.
#[derive(Clone, Debug)]
pub struct ExecObserved {
    /// The namespace activity of `RUNTIME exec` (from its trace).
    pub activity: Activity,
    /// What the command printed, when it ran.
    pub view: Option<ContainerView>,
    /// Whether `RUNTIME exec` exited 0.
    pub success: bool,
    /// Whether it hit the time limit and was killed.
    pub timed_out: bool,
    /// Its error line.
    pub message: String,
    /// The namespaces of the container's init (inode per kind), read
    /// before the exec.
    pub init: BTreeMap<Kind, u64>,
}

/// One way a runtime's exec differs from nsapply's exec plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecDifference {
    /// `RUNTIME run -d` failed: there was nothing to exec into.
    NotStarted {
        /// The runtime's error line.
        message: String,
    },
    /// `RUNTIME exec` failed.
    ExecFailed {
        /// The runtime's error line.
        message: String,
    },
    /// Per-path joins only, where the plan joins through a pidfd.
    NoPidfd {
        /// The number of setns calls.
        calls: usize,
    },
    /// setns calls on a pidfd other than the plan's one call.
    PidfdCalls {
        /// The plan's kinds (`None`: a plan without a pidfd join).
        expected: Option<KindSet>,
        /// Each call's kinds and result.
        got: Vec<(KindSet, Ret)>,
    },
    /// Namespace files opened after a namespace was joined (the plan opens
    /// every file first: a joined user or mount namespace may hide the rest).
    OpenedAfterJoin {
        /// The kinds of the files opened late.
        kinds: KindSet,
        /// The kinds of the first join.
        after: KindSet,
    },
    /// Namespace files opened without `O_CLOEXEC`.
    NotCloexec {
        /// Their kinds.
        kinds: KindSet,
    },
    /// Per-path joins with `nstype` 0 (the kernel checks no type).
    Untyped {
        /// Their kinds.
        kinds: KindSet,
    },
    /// The user namespace joined before these (the plan's fallback joins
    /// them first: one its user namespace does not own is EPERM after).
    UserFirst {
        /// The kinds joined only after user.
        before: KindSet,
    },
    /// Per-path setns calls that failed and that the runtime went on after.
    FailedJoins {
        /// Kind, errno and how many times.
        calls: Vec<(Option<Kind>, String, usize)>,
    },
    /// Kinds of the plan the command is not joined to.
    Missing {
        /// Those kinds.
        kinds: KindSet,
    },
    /// Kinds joined that the plan does not join (the runtime's own).
    Extra {
        /// Those kinds.
        kinds: KindSet,
    },
    /// The command ran in the process that joined the pid namespace, which
    /// setns(2) does not move (only its children go there).
    NoFork,
    /// The command does not see itself in the container's `/proc`.
    NotInPidNamespace,
    /// The command's namespaces of these kinds are not the init's.
    NotTargetNamespace {
        /// Those kinds.
        kinds: KindSet,
    },
    /// The command ran but printed no namespaces.
    NoView,
}

impl fmt::Display for ExecDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oneline = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            ExecDifference::NotStarted { message } => {
                write!(f, "the container did not start: {}", oneline(message))
            }
            ExecDifference::ExecFailed { message } => {
                write!(f, "exec failed: {}", oneline(message))
            }
            ExecDifference::NoPidfd { calls } => write!(
                f,
                "joined per /proc/<pid>/ns path ({calls} setns), no setns(pidfd)"
            ),
            ExecDifference::PidfdCalls { expected, got } => {
                let calls: Vec<String> = got
                    .iter()
                    .map(|(k, r)| match r {
                        Ret::Ok(_) => format!("[{k}] ok"),
                        other => format!("[{k}] {other}"),
                    })
                    .collect();
                write!(f, "setns(pidfd) {}", calls.join(", then "))?;
                match expected {
                    Some(k) => write!(f, "; the plan makes one, [{k}]"),
                    None => f.write_str("; the plan makes none"),
                }
            }
            ExecDifference::OpenedAfterJoin { kinds, after } => {
                write!(
                    f,
                    "opened the namespace files of {kinds} after joining {after}"
                )
            }
            ExecDifference::NotCloexec { kinds } => {
                write!(f, "opened the namespace files of {kinds} without O_CLOEXEC")
            }
            ExecDifference::Untyped { kinds } => {
                write!(f, "setns(fd, 0) for {kinds}: type not checked")
            }
            ExecDifference::UserFirst { before } => write!(f, "joined user before {before}"),
            ExecDifference::FailedJoins { calls } => {
                let calls: Vec<String> = calls
                    .iter()
                    .map(|(k, e, n)| {
                        let k = k.map_or("?".to_owned(), |k| k.to_string());
                        if *n > 1 {
                            format!("{k} {e} x{n}")
                        } else {
                            format!("{k} {e}")
                        }
                    })
                    .collect();
                write!(f, "went on after failed setns: {}", calls.join(", "))
            }
            ExecDifference::Missing { kinds } => write!(f, "did not join {kinds}"),
            ExecDifference::Extra { kinds } => {
                write!(f, "also joined {kinds}, the runtime's own")
            }
            ExecDifference::NoFork => {
                f.write_str("ran the command in the process that joined pid (no fork)")
            }
            ExecDifference::NotInPidNamespace => {
                f.write_str("the command does not see itself in the container's /proc")
            }
            ExecDifference::NotTargetNamespace { kinds } => {
                let s = if kinds.len() > 1 { "s" } else { "" };
                write!(
                    f,
                    "the command is not in the container's {kinds} namespace{s}"
                )
            }
            ExecDifference::NoView => f.write_str("the command printed no namespaces"),
        }
    }
}

/// The kind of a namespace path's last component (`/proc/9/ns/mnt`).
fn kind_of_path(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next()?;
    Kind::ALL.into_iter().find(|k| k.proc_name() == name)
}

/// The kinds of the plan's per-namespace joins, in the plan's order.
fn planned_joins(plan: &Plan) -> Vec<Kind> {
    plan.steps()
        .iter()
        .filter_map(|s| match s {
            Step::Setns { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

/// Compares one exec with nsapply's exec plan for the same target (module
/// docs). `plan` is [`nsapply::exec::ExecTarget::plan`]'s.
pub fn judge(plan: &Plan, seen: &ExecObserved) -> Verdict {
    if seen.timed_out {
        return Verdict::Differs(vec![Difference::TimedOut]);
    }
    let a = &seen.activity;
    let mut diffs = Vec::new();
    if !seen.success {
        diffs.push(ExecDifference::ExecFailed {
            message: seen.message.clone(),
        });
    }
    let pidfd_planned = plan.steps().iter().find_map(|s| match s {
        Step::PidfdJoin { kinds, .. } => Some(*kinds),
        _ => None,
    });
    let order = planned_joins(plan);
    let planned: KindSet = order.iter().copied().collect();

    // The mechanism.
    let pidfd_calls: Vec<(KindSet, Ret)> = a
        .pidfd_joins
        .iter()
        .map(|j| (j.kinds, j.ret.clone()))
        .collect();
    match pidfd_planned {
        Some(_) if pidfd_calls.is_empty() && !a.joins.is_empty() => {
            diffs.push(ExecDifference::NoPidfd {
                calls: a.joins.len(),
            });
        }
        Some(k)
            if pidfd_calls.is_empty() || matches!(pidfd_calls.as_slice(), [(c, _)] if *c == k) => {}
        None if pidfd_calls.is_empty() => {}
        expected => diffs.push(ExecDifference::PidfdCalls {
            expected,
            got: pidfd_calls,
        }),
    }

    // When each kind was first joined (position among the namespace calls).
    let path_kind =
        |j: &super::observe::Join| j.nstype.or(j.fd_kind).or_else(|| kind_of_path(&j.path));
    // Every call, pidfd or path, as (position, kinds, caller, success).
    let mut calls: Vec<(usize, KindSet, i32, bool)> = a
        .pidfd_joins
        .iter()
        .map(|j| (j.seq, j.kinds, j.pid, j.ret.is_ok()))
        .collect();
    calls.extend(
        a.joins
            .iter()
            .filter_map(|j| path_kind(j).map(|k| (j.seq, KindSet::one(k), j.pid, j.ret.is_ok()))),
    );
    calls.sort_by_key(|c| c.0);
    let mut first_join: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut first_try: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut joined_by: BTreeMap<Kind, Vec<i32>> = BTreeMap::new();
    for (seq, kinds, pid, ok) in &calls {
        for k in kinds.iter() {
            first_try.entry(k).or_insert(*seq);
            if *ok {
                first_join.entry(k).or_insert(*seq);
                joined_by.entry(k).or_default().push(*pid);
            }
        }
    }
    let first_call = calls
        .iter()
        .find(|c| c.3)
        .map(|(seq, kinds, _, _)| (*seq, *kinds));

    // The per-path joins: files opened first, close-on-exec, typed, user last.
    let opened = |o: &super::observe::NsOpen| o.ret.is_ok();
    let kind_of_open = |o: &super::observe::NsOpen| o.kind.or_else(|| kind_of_path(&o.path));
    if let Some((at, after)) = first_call {
        let late: KindSet = a
            .ns_opens
            .iter()
            .filter(|o| opened(o) && o.seq > at)
            .filter_map(kind_of_open)
            .collect();
        if !late.is_empty() {
            diffs.push(ExecDifference::OpenedAfterJoin { kinds: late, after });
        }
    }
    let not_cloexec: KindSet = a
        .ns_opens
        .iter()
        .filter(|o| opened(o) && !o.cloexec)
        .filter_map(kind_of_open)
        .collect();
    if !not_cloexec.is_empty() {
        diffs.push(ExecDifference::NotCloexec { kinds: not_cloexec });
    }
    let untyped: KindSet = a
        .joins
        .iter()
        .filter(|j| j.nstype.is_none())
        .filter_map(path_kind)
        .collect();
    if !untyped.is_empty() {
        diffs.push(ExecDifference::Untyped { kinds: untyped });
    }
    if let Some(user_at) = first_join.get(&Kind::User) {
        // The plan's fallback tries every other kind before user (§4's
        // order); what the runtime first tried only after joining user.
        let before: KindSet = order
            .iter()
            .take_while(|k| **k != Kind::User)
            .filter(|k| first_try.get(k).is_some_and(|s| s > user_at))
            .copied()
            .collect();
        if !before.is_empty() {
            diffs.push(ExecDifference::UserFirst { before });
        }
    }
    if seen.success {
        let mut failed: Vec<(Option<Kind>, String, usize)> = Vec::new();
        for j in a.joins.iter().filter(|j| !j.ret.is_ok()) {
            let (k, e) = (path_kind(j), j.ret.to_string());
            match failed.iter_mut().find(|(fk, fe, _)| *fk == k && *fe == e) {
                Some(entry) => entry.2 += 1,
                None => failed.push((k, e, 1)),
            }
        }
        if !failed.is_empty() {
            diffs.push(ExecDifference::FailedJoins { calls: failed });
        }
    }
    if !seen.success {
        return differs(diffs, Vec::new());
    }

    // The kinds joined, and the fork.
    let joined: KindSet = first_join.keys().copied().collect();
    let missing: KindSet = planned.iter().filter(|k| !joined.contains(*k)).collect();
    let extra: KindSet = joined.iter().filter(|k| !planned.contains(*k)).collect();
    if !missing.is_empty() {
        diffs.push(ExecDifference::Missing { kinds: missing });
    }
    if !extra.is_empty() {
        diffs.push(ExecDifference::Extra { kinds: extra });
    }
    let forks = plan.steps().contains(&Step::Fork);
    if forks {
        let pid_joiners = joined_by.get(&Kind::Pid).cloned().unwrap_or_default();
        if a.container_pid.is_some_and(|c| pid_joiners.contains(&c)) {
            diffs.push(ExecDifference::NoFork);
        }
    }

    // The command's own view.
    let Some(view) = &seen.view else {
        diffs.push(ExecDifference::NoView);
        return differs(diffs, Vec::new());
    };
    if planned.contains(Kind::Pid) && view.proc_self.as_deref().is_none_or(str::is_empty) {
        diffs.push(ExecDifference::NotInPidNamespace);
    }
    let wrong: KindSet = seen
        .init
        .iter()
        .filter(|(k, inode)| view.inodes.get(k) != Some(inode))
        .map(|(k, _)| *k)
        .collect();
    if !wrong.is_empty() {
        diffs.push(ExecDifference::NotTargetNamespace { kinds: wrong });
    }
    let leaks = view
        .fds
        .iter()
        .filter(|(_, target)| ns_link_kind(target).is_some() || target == "anon_inode:[pidfd]")
        .map(|(fd, target)| Difference::FdLeak {
            fd: *fd,
            target: target.clone(),
        })
        .collect();
    differs(diffs, leaks)
}

/// The verdict for these differences (none: a pass).
fn differs(exec: Vec<ExecDifference>, mut other: Vec<Difference>) -> Verdict {
    let mut all: Vec<Difference> = exec.into_iter().map(Difference::Exec).collect();
    all.append(&mut other);
    if all.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Differs(all)
    }
}

/// The report's reference cell for an exec case: what nsapply's plan does
/// when every call succeeds (`exec: pidfd [user,pid], fork`).
pub fn reference_name(plan: &Plan) -> String {
    let steps: Vec<String> = plan
        .expected_trace()
        .steps
        .iter()
        .filter_map(|s| match s {
            nsapply::trace::TraceStep::PidfdJoin { kinds, .. } => Some(format!("pidfd [{kinds}]")),
            nsapply::trace::TraceStep::Setns { kind, .. } => Some(format!("setns {kind}")),
            nsapply::trace::TraceStep::Fork { .. } => Some("fork".to_owned()),
            _ => None,
        })
        .collect();
    if steps.is_empty() {
        "exec: nothing to join".to_owned()
    } else {
        format!("exec: {}", steps.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{activity, container_view};
    use std::collections::BTreeSet;

    /// The container's init (pid 40) in new user (11), pid (12), uts (13),
    /// ipc (14), network (15) and mount (17) namespaces; cgroup and time
    /// are the runtime's own.
    const INIT: [(Kind, u64); 8] = [
        (Kind::User, 11),
        (Kind::Pid, 12),
        (Kind::Uts, 13),
        (Kind::Ipc, 14),
        (Kind::Network, 15),
        (Kind::Cgroup, 1),
        (Kind::Mount, 17),
        (Kind::Time, 2),
    ];

    /// What a command in all of the init's namespaces prints.
    const IN_THE_CONTAINER: &str = "self 8\nns user user:[11]\nns pid pid:[12]\n\
        ns uts uts:[13]\nns ipc ipc:[14]\nns net net:[15]\nns cgroup cgroup:[1]\n\
        ns mnt mnt:[17]\nns time time:[2]\nfd 0 /dev/null\nfd 1 pipe:[5]\nfd 2 pipe:[6]\nfd 3 \n";

    /// nsapply's exec plan for pid 40 and `kinds`.
    fn plan(kinds: &str) -> Plan {
        nsapply::exec::ExecTarget::new(40, kinds.parse().unwrap())
            .plan()
            .unwrap()
    }

    /// The verdict on a recorded trace (strace's lines, shortened) and the
    /// command's output.
    fn judge_text(kinds: &str, trace: &str, stdout: &str, success: bool) -> Verdict {
        let events = crate::strace::decode(trace).unwrap();
        let seen = ExecObserved {
            activity: activity(&events, "/bin/busybox", &BTreeSet::new()),
            view: Some(container_view(stdout)).filter(|v| !v.inodes.is_empty()),
            success,
            timed_out: false,
            message: if success {
                String::new()
            } else {
                "nsexec-1[9]: failed to setns into net namespace: Operation not permitted".into()
            },
            init: INIT.into_iter().collect(),
        };
        judge(&plan(kinds), &seen)
    }

    fn ks(kinds: &str) -> KindSet {
        kinds.parse().unwrap()
    }

    /// nsapply's own exec (`nsapply exec 40 -- ...` under the runner's
    /// strace): one setns(pidfd) with the plan's kinds, two forks.
    const NSAPPLY: &str = "6547 pidfd_open(40, 0) = 11<pid:40>\n\
        6547 setns(11<pid:40>, 0x7c020000) = 0\n\
        6547 clone(child_stack=NULL, flags=0x1200000|17, child_tidptr=0x7f0c06114a90) = 6548\n\
        6548 clone(child_stack=NULL, flags=0x1200000|17, child_tidptr=0x7f0c06114a90) = 8\n\
        6549 execve(\"/bin/busybox\", [\"/bin/busybox\", \"sh\"], 0x7ffff0806020 /* 35 vars */) = 0\n";

    #[test]
    fn one_pidfd_join_of_the_plan_kinds_then_a_fork_passes() {
        let v = judge_text(
            "user,pid,uts,ipc,network,mount",
            NSAPPLY,
            IN_THE_CONTAINER,
            true,
        );
        assert_eq!(v, Verdict::Pass);
    }

    #[test]
    fn a_command_run_by_the_pid_joiner_itself_is_not_forked() {
        let trace = NSAPPLY.replace("6549 execve", "6547 execve");
        let stdout = IN_THE_CONTAINER.replace("self 8", "self ");
        let v = judge_text("user,pid,uts,ipc,network,mount", &trace, &stdout, true);
        assert_eq!(
            v.exec_differences(),
            [ExecDifference::NoFork, ExecDifference::NotInPidNamespace]
        );
    }

    #[test]
    fn a_namespace_fd_left_open_is_a_leak() {
        let stdout = format!("{IN_THE_CONTAINER}fd 7 net:[15]\nfd 9 anon_inode:[pidfd]\n");
        let v = judge_text("user,pid,uts,ipc,network,mount", NSAPPLY, &stdout, true);
        let Verdict::Differs(d) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            d,
            [
                Difference::FdLeak {
                    fd: 7,
                    target: "net:[15]".into()
                },
                Difference::FdLeak {
                    fd: 9,
                    target: "anon_inode:[pidfd]".into()
                }
            ]
        );
    }

    /// runc 1.1.5 (strace 6.1): every path opened first without O_CLOEXEC,
    /// user joined first, then a fork (CLONE_PARENT) for pid.
    const RUNC_1_1: &str = "3413 openat(-100</b/rootfs>, \"/proc/40/ns/user\", 0) = 6<user:[11]>\n\
        3413 openat(-100</b/rootfs>, \"/proc/40/ns/net\", 0) = 11<net:[15]>\n\
        3413 openat(-100</b/rootfs>, \"/proc/40/ns/pid\", 0) = 12<pid:[12]>\n\
        3413 setns(6<user:[11]>, 0x10000000) = 0\n\
        3413 setns(11<net:[15]>, 0x40000000) = 0\n\
        3413 setns(12<pid:[12]>, 0x20000000) = 0\n\
        3413 close(6<user:[11]>) = 0\n\
        3413 close(11<net:[15]>) = 0\n\
        3413 close(12<pid:[12]>) = 0\n\
        3413 unshare(0) = 0\n\
        3413 clone(child_stack=0x7ffdace3d7f0, flags=0x8000|17) = 3414\n\
        3414 execve(\"/bin/busybox\", [\"/bin/busybox\", \"sh\"], 0xc000013380 /* 2 vars */) = 0\n";

    #[test]
    fn runc_1_1_joins_per_path_user_first_without_cloexec() {
        let stdout = "self 6\nns user user:[11]\nns pid pid:[12]\nns uts uts:[3]\nns ipc ipc:[4]\n\
            ns net net:[15]\nns cgroup cgroup:[1]\nns mnt mnt:[7]\nns time time:[2]\n";
        let mut init = INIT;
        init[2].1 = 3;
        init[3].1 = 4;
        init[6].1 = 7;
        let events = crate::strace::decode(RUNC_1_1).unwrap();
        let seen = ExecObserved {
            activity: activity(&events, "/bin/busybox", &BTreeSet::new()),
            view: Some(container_view(stdout)),
            success: true,
            timed_out: false,
            message: String::new(),
            init: init.into_iter().collect(),
        };
        let v = judge(&plan("user,pid,network"), &seen);
        assert_eq!(
            v.exec_differences(),
            [
                ExecDifference::NoPidfd { calls: 3 },
                ExecDifference::NotCloexec {
                    kinds: ks("user,pid,network")
                },
                ExecDifference::UserFirst {
                    before: ks("pid,network")
                },
            ]
        );
        assert_eq!(
            v.summary(),
            "differs: joined per /proc/<pid>/ns path (3 setns), no setns(pidfd); \
             opened the namespace files of user,pid,network without O_CLOEXEC; \
             joined user before pid,network"
        );
    }

    #[test]
    fn a_failed_exec_reports_the_order_that_made_it_fail() {
        // runc 1.1.5 on a container whose network namespace the host owns:
        // EPERM once inside the container's user namespace.
        let trace = RUNC_1_1
            .replace(
                "setns(11<net:[15]>, 0x40000000) = 0",
                "setns(11<net:[15]>, 0x40000000) = -1 EPERM (Operation not permitted)",
            )
            .lines()
            .filter(|l| {
                !l.contains("pid:[12]>, 0x2") && !l.contains("execve") && !l.contains("clone")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let v = judge_text("user,pid,network", &trace, "", false);
        assert_eq!(
            v.exec_differences(),
            [
                ExecDifference::ExecFailed {
                    message:
                        "nsexec-1[9]: failed to setns into net namespace: Operation not permitted"
                            .into()
                },
                ExecDifference::NoPidfd { calls: 2 },
                ExecDifference::NotCloexec {
                    kinds: ks("user,pid,network")
                },
                ExecDifference::UserFirst {
                    before: ks("network")
                },
            ]
        );
    }

    /// crun 1.28 (strace 7.2): one setns(pidfd) with every kind the kernel
    /// has, the runtime's own time namespace among them.
    #[test]
    fn crun_1_28_joins_every_kind_through_its_pidfd() {
        let trace = "25002 pidfd_open(40, 0) = 5<pid:40>\n\
            25002 setns(5<pid:40>, 0x7e020080) = 0\n\
            25002 clone(child_stack=NULL, flags=0x1200000|17, child_tidptr=0x7f49ed5874d0) = 25003\n\
            25003 execve(\"/bin/busybox\", [\"/bin/busybox\", \"sh\"], 0x5592ce519e60 /* 2 vars */) = 0\n";
        let v = judge_text(
            "user,pid,uts,ipc,network,cgroup,mount",
            trace,
            IN_THE_CONTAINER,
            true,
        );
        assert_eq!(
            v.exec_differences(),
            [
                ExecDifference::PidfdCalls {
                    expected: Some(ks("user,pid,uts,ipc,network,cgroup,mount")),
                    got: vec![(KindSet::ALL, Ret::Ok(0))]
                },
                ExecDifference::Extra { kinds: ks("time") },
            ]
        );
    }

    /// crun 1.8.1 (strace 6.1): the user namespace alone through the pidfd,
    /// then the rest (EINVAL: user again), then the files opened.
    #[test]
    fn crun_1_8_joins_user_alone_then_opens_the_files() {
        let trace = "23276 pidfd_open(40, 0) = 5<pid:40>\n\
            23276 setns(5<pid:40>, 0x10000000) = 0\n\
            23276 setns(5<pid:40>, 0x7e020080) = -1 EINVAL (Invalid argument)\n\
            23276 openat(-100</w>, \"/proc/40/ns/mnt\", 0) = 5<mnt:[17]>\n\
            23276 openat(-100</w>, \"/proc/40/ns/net\", 0) = 7<net:[15]>\n\
            23276 openat(-100</w>, \"/proc/40/ns/time\", 0) = 8<time:[2]>\n\
            23276 setns(5<mnt:[17]>, 0) = 0\n\
            23276 setns(7<net:[15]>, 0) = 0\n\
            23276 setns(8<time:[2]>, 0) = -1 EPERM (Operation not permitted)\n\
            23276 clone(child_stack=NULL, flags=0x1200000|17, child_tidptr=0x7f27ac82da90) = 23277\n\
            23277 execve(\"/bin/busybox\", [\"/bin/busybox\", \"sh\"], 0x558e4a66c320 /* 2 vars */) = 0\n";
        let v = judge_text("user,network,mount", trace, IN_THE_CONTAINER, true);
        assert_eq!(
            v.exec_differences(),
            [
                ExecDifference::PidfdCalls {
                    expected: Some(ks("user,network,mount")),
                    got: vec![
                        (KindSet::one(Kind::User), Ret::Ok(0)),
                        (KindSet::ALL, Ret::Err("EINVAL".into()))
                    ]
                },
                ExecDifference::OpenedAfterJoin {
                    kinds: ks("network,mount,time"),
                    after: KindSet::one(Kind::User)
                },
                ExecDifference::NotCloexec {
                    kinds: ks("network,mount,time")
                },
                ExecDifference::Untyped {
                    kinds: ks("network,mount,time")
                },
                ExecDifference::UserFirst {
                    before: ks("network,mount")
                },
                ExecDifference::FailedJoins {
                    calls: vec![(Some(Kind::Time), "EPERM".into(), 1)]
                },
            ]
        );
    }

    /// youki 0.7.0: pid joined and forked first, then each path opened
    /// just before its join; never the user namespace.
    #[test]
    fn youki_never_joins_the_user_namespace() {
        let trace = "27045 openat(-100</w>, \"/proc/40/ns/pid\", 0) = 15<pid:[12]>\n\
            27045 setns(15<pid:[12]>, 0x20000000) = 0\n\
            27045 clone3({flags=0x8000, exit_signal=0, stack=NULL, stack_size=0}, 88) = 27046\n\
            27046 openat(-100</w>, \"/proc/40/ns/net\", 0) = 6<net:[15]>\n\
            27046 setns(6<net:[15]>, 0x40000000) = 0\n\
            27046 close(6<net:[15]>) = 0\n\
            27046 execve(\"/bin/busybox\", [\"/bin/busybox\", \"sh\"], 0x1 /* 2 vars */) = 0\n";
        let stdout = IN_THE_CONTAINER.replace("user:[11]", "user:[1]");
        let v = judge_text("user,pid,network", trace, &stdout, true);
        assert_eq!(
            v.exec_differences(),
            [
                ExecDifference::NoPidfd { calls: 2 },
                ExecDifference::OpenedAfterJoin {
                    kinds: KindSet::one(Kind::Network),
                    after: KindSet::one(Kind::Pid)
                },
                ExecDifference::NotCloexec {
                    kinds: ks("pid,network")
                },
                ExecDifference::Missing {
                    kinds: KindSet::one(Kind::User)
                },
                ExecDifference::NotTargetNamespace {
                    kinds: KindSet::one(Kind::User)
                },
            ]
        );
    }

    #[test]
    fn the_reference_cell_names_the_pidfd_join_and_the_fork() {
        assert_eq!(
            reference_name(&plan("user,pid,network")),
            "exec: pidfd [user,pid,network], fork"
        );
        assert_eq!(reference_name(&plan("network")), "exec: pidfd [network]");
    }
}
