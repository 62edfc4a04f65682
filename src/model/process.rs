//! Processes of the world besides the caller: the targets of an exec
//! (DESIGN §9). Each has a pid, a uid, a state (running, exited but not
//! reaped, reaped) and a namespace per kind; the caller reaches them by
//! `pidfd_open` and at `/proc/<pid>/ns/*`, each guarded by the ptrace
//! access check the kernel makes (`ptrace_may_access`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::kernel::{Ids, Kernel, NsId};
use super::world::{lookup, World, WorldError};
use crate::kind::Kind;

/// A process of the world (the target of an exec).
///
/// ```
/// use nsapply::Kind;
/// use nsapply::model::{NsSpec, ProcessSpec, World};
/// let world = World::new()
///     .namespace(NsSpec::new("n", Kind::Network))
///     .process(ProcessSpec::new(4242).in_ns(Kind::Network, "n"));
/// assert_eq!(World::from_json(&world.to_json()).unwrap(), world);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Its pid, as the caller sees it.
    pub pid: i32,
    /// Its uid (kuid), for the ptrace access check; the model takes its
    /// gid (kgid) to be the same number, as the test harness starts world
    /// processes (`become_user(uid, uid)`, or root of a user namespace
    /// whose uid and gid maps agree).
    #[serde(default)]
    pub uid: u32,
    /// Running, exited (a zombie) or reaped.
    #[serde(default, skip_serializing_if = "ProcessState::is_running")]
    pub state: ProcessState,
    /// Its namespace per kind (pid and time: the active ones); a kind not
    /// named is the host's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<Kind, String>,
    /// Its `time_for_children`, when it differs from its time namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_for_children: Option<String>,
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Alive.
    #[default]
    Running,
    /// Exited, not reaped: its pid still names it, but it has no
    /// namespaces (`exit_task_namespaces`): setns through its pidfd is
    /// ESRCH, its `/proc/<pid>/ns/*` are ENOENT.
    Exited,
    /// Reaped: nothing has its pid (pidfd_open: ESRCH; `/proc/<pid>`: ENOENT).
    Reaped,
}

impl ProcessState {
    fn is_running(&self) -> bool {
        *self == ProcessState::Running
    }
}

impl ProcessSpec {
    /// A running root process with pid `pid` in the host namespaces.
    pub fn new(pid: i32) -> ProcessSpec {
        ProcessSpec {
            pid,
            uid: 0,
            state: ProcessState::Running,
            namespaces: BTreeMap::new(),
            time_for_children: None,
        }
    }

    /// The same process with uid `uid`.
    #[must_use]
    pub fn uid(mut self, uid: u32) -> ProcessSpec {
        self.uid = uid;
        self
    }

    /// The same process in the namespace `name` of `kind`.
    #[must_use]
    pub fn in_ns(mut self, kind: Kind, name: impl Into<String>) -> ProcessSpec {
        self.namespaces.insert(kind, name.into());
        self
    }

    /// The same process in the state `state`.
    #[must_use]
    pub fn state(mut self, state: ProcessState) -> ProcessSpec {
        self.state = state;
        self
    }
}

/// A process as the kernel model keeps it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Proc {
    pub(super) pid: i32,
    pub(super) uid: u32,
    pub(super) state: ProcessState,
    /// Per kind (pid and time: the active ones).
    pub(super) ns: [NsId; 8],
    pub(super) time_for_children: NsId,
}

/// The world's processes, their namespaces resolved by name.
pub(super) fn place_processes(
    kernel: &mut Kernel,
    world: &World,
    names: &super::world::Names<'_>,
) -> Result<(), WorldError> {
    let mut pids = Vec::with_capacity(world.processes.len());
    for p in &world.processes {
        let who = format!("process {}", p.pid);
        if p.pid <= 0 {
            return Err(WorldError::InvalidProcess {
                pid: p.pid,
                reason: "a pid is positive".to_owned(),
            });
        }
        if pids.contains(&p.pid) {
            return Err(WorldError::InvalidProcess {
                pid: p.pid,
                reason: "given twice".to_owned(),
            });
        }
        pids.push(p.pid);
        let mut ns: [NsId; 8] = std::array::from_fn(|i| i);
        let resolve = |field: String, name: &str, kind: Kind| {
            let (id, s) = lookup(names, &kernel.spaces, name).ok_or_else(|| {
                WorldError::UnknownReference {
                    name: who.clone(),
                    field: field.clone(),
                    target: name.to_owned(),
                }
            })?;
            if s.kind != kind {
                return Err(WorldError::WrongKind {
                    name: who.clone(),
                    field,
                    target: name.to_owned(),
                    expected: kind,
                    found: s.kind,
                });
            }
            Ok(id)
        };
        for (&kind, name) in &p.namespaces {
            ns[kind.index()] = resolve(format!("namespaces.{}", kind.spec_name()), name, kind)?;
        }
        let time = ns[Kind::Time.index()];
        let time_for_children = match &p.time_for_children {
            Some(name) => resolve("time_for_children".to_owned(), name, Kind::Time)?,
            None => time,
        };
        kernel.processes.push(Proc {
            pid: p.pid,
            uid: p.uid,
            state: p.state,
            ns,
            time_for_children,
        });
    }
    Ok(())
}

impl Kernel {
    /// The world's process with pid `pid`.
    pub(super) fn process(&self, pid: i32) -> Option<usize> {
        self.processes.iter().position(|p| p.pid == pid)
    }

    /// `ptrace_may_access` of the caller on process `p` (kernel/ptrace.c;
    /// the read modes that `/proc/<pid>/ns/*` and setns through a pidfd
    /// use: `validate_nsset` in kernel/nsproxy.c asks it before it looks
    /// at the target's nsproxy, so its EPERM comes before a zombie's
    /// ESRCH). CAP_SYS_PTRACE
    /// over the process's user namespace grants it; without, two checks
    /// must both pass:
    ///
    /// * `__ptrace_may_access`: the same uid *and* gid (the caller's uid
    ///   against the target's three uids, its gid against the three gids;
    ///   the model's ids change together, so real ids are effective ones);
    /// * the LSM hook of the capability module, `cap_ptrace_access_check`
    ///   (security/commoncap.c): the caller is in the process's user
    ///   namespace itself, not an ancestor or a sibling, with every
    ///   capability the process has (a process has all of them in its
    ///   user namespace when it is root there, else none).
    ///
    /// Both measured on Linux 6.18 by property 6 (proptests/model_machine.rs),
    /// where the model answered ESRCH for setns through the pidfd of a
    /// zombie and the kernel EPERM: a caller with the target's uid but
    /// another gid (setresgid done, setresuid refused); a caller with the
    /// target's ids in a user namespace of its own (unshare(user)).
    pub(super) fn may_ptrace(&self, p: usize) -> bool {
        let proc = &self.processes[p];
        let cred = self.caller.cred();
        let user = proc.ns[Kind::User.index()];
        if self.capable(&cred, user) {
            return true;
        }
        let same_ids = cred.euid == proc.uid && cred.egid == proc.uid;
        let root_there = self.id_down(user, Ids::Uid, 0) == Some(proc.uid);
        same_ids && cred.user_ns == user && (cred.caps || !root_there)
    }
}

impl super::Model {
    /// The exec target `pid` as the model's caller sees it now, as
    /// [`crate::exec::resolve`] finds it on Linux: `kinds`, or by default
    /// every kind whose namespace differs from the caller's (for pid and
    /// time, the caller's `*_for_children`).
    ///
    /// # Errors
    ///
    /// `invalid-target` for a pid that is not positive or a process the
    /// caller may not ptrace (its `/proc/<pid>/ns/*` cannot be read);
    /// `target-exited` for a process the world does not have running.
    pub fn exec_target(
        &self,
        pid: i32,
        kinds: Option<crate::KindSet>,
    ) -> Result<crate::exec::ExecTarget, crate::exec::ExecError> {
        use crate::exec::{ExecError, ExecTarget};
        if pid <= 0 {
            return Err(ExecError::InvalidTarget {
                pid,
                reason: "a pid must be positive".to_owned(),
                errno: None,
            });
        }
        let k = &self.kernel;
        let running = k
            .process(pid)
            .filter(|p| k.processes[*p].state == ProcessState::Running);
        let Some(p) = running else {
            return Err(ExecError::TargetExited {
                pid,
                errno: Some(crate::Errno::ESRCH),
            });
        };
        if !k.may_ptrace(p) {
            return Err(ExecError::InvalidTarget {
                pid,
                reason: format!("reading its namespaces {:?}", format!("/proc/{pid}/ns")),
                errno: Some(crate::Errno::EACCES),
            });
        }
        let theirs = &k.processes[p].ns;
        let ours = |kind: Kind| match kind {
            Kind::Pid => k.caller.pid_for_children,
            Kind::Time => k.caller.time_for_children,
            _ => k.caller.ns[kind.index()],
        };
        let differing = Kind::ALL
            .into_iter()
            .filter(|kind| theirs[kind.index()] != ours(*kind))
            .collect();
        Ok(ExecTarget::new(pid, kinds.unwrap_or(differing)))
    }
}
