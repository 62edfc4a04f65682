//! Apply: walk a [`Plan`] against a [`Syscall`] backend (DESIGN §4).
//!
//! This is the only place that decides what happens on an error: EPERM in
//! join pass 1 is deferred when the plan joins a user namespace by path
//! (the target may be owned by that user namespace, which the caller can
//! only act in after joining it); every other error is fatal at once. On a
//! fatal error no further call is made except closing every fd still open,
//! each exactly once, in canonical order.

use crate::config::{AbsPath, IdMapping};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::{Errno, ErrorCode, QuotedPath, SyncError};
use crate::kind::{Kind, KindSet};
use crate::plan::SyncPoint;
use crate::plan::{Plan, Step};
use crate::propagation::Propagation;
use crate::syscall::{Forked, Syscall};
use crate::trace::{Outcome, PidfdCall, Trace, TraceError, TraceStep, Unjoined};

fn list_unjoined(v: &[Unjoined]) -> String {
    if v.len() <= 1 {
        return String::new();
    }
    let mut out = String::from("; namespaces left unjoined: ");
    for (i, u) in v.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        // Writing to a String cannot fail.
        let _ = write!(out, "{sep}{} {}", u.kind, QuotedPath(&u.path));
    }
    out
}

/// A plan that failed against a backend (DESIGN §6 apply codes).
///
/// Every variant carries the namespace kind, the path (for joins) and the
/// errno, so the message alone says which namespace failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The type check (`NS_GET_NSTYPE`, or for a file that is not on nsfs
    /// the backend's answer without an ioctl) gave ENOTTY: the file is not
    /// a namespace.
    #[error(
        "{kind} namespace path {} is not a namespace file ({errno})",
        QuotedPath(path)
    )]
    NotANamespace {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno (ENOTTY).
        errno: Errno,
    },
    /// The path is a namespace of another kind.
    #[error("{kind} namespace path {} is a namespace of another type ({})", QuotedPath(path), found.map_or_else(|| format!("nstype {raw:#x}"), |k| k.to_string()))]
    WrongNamespaceType {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The kind the kernel reported, if it is one of the eight.
        found: Option<Kind>,
        /// The raw `NS_GET_NSTYPE` answer.
        raw: i32,
    },
    /// The path does not exist.
    #[error("{kind} namespace path {} does not exist: {errno}", QuotedPath(path))]
    PathNotFound {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno (ENOENT, or ENOTDIR for a missing directory component).
        errno: Errno,
    },
    /// open(2) or `NS_GET_NSTYPE` failed with another errno.
    #[error("opening {kind} namespace path {} failed: {errno}", QuotedPath(path))]
    OpenFailed {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// The process has more than one thread where the kernel requires one.
    #[error("{op}({kind}) needs a single-threaded process, but it has {threads} threads")]
    Multithreaded {
        /// The kind of the step that needs one thread.
        kind: Kind,
        /// `"setns"`, `"unshare"` or `"fork"`.
        op: &'static str,
        /// The thread count seen.
        threads: usize,
    },
    /// The thread count, which `op(kind)` must check first, could not be
    /// read (`/proc/self/stat`: no procfs at `/proc`, or no free fd).
    #[error("{op}({kind}) needs a single-threaded process, but the thread count could not be read: {}", errno.map_or_else(|| "/proc/self/stat is not a stat line (is /proc a procfs?)".to_owned(), |e| e.to_string()))]
    ThreadCount {
        /// The kind of the step that needs one thread.
        kind: Kind,
        /// `"setns"`, `"unshare"` or `"fork"`.
        op: &'static str,
        /// The errno of the failed read; `None` when the text read was not
        /// a stat line.
        errno: Option<Errno>,
    },
    /// setns(2) failed (fatal in pass 1, or the retry of a deferred join).
    #[error(
        "joining {kind} namespace {} failed: {errno}{}",
        QuotedPath(path),
        list_unjoined(unjoined)
    )]
    Join {
        /// The kind.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno.
        errno: Errno,
        /// Every namespace left unjoined (this one first), in canonical order.
        unjoined: Vec<Unjoined>,
    },
    /// unshare(2) failed.
    #[error("creating a new {kind} namespace (unshare) failed: {errno}")]
    Unshare {
        /// The kind.
        kind: Kind,
        /// The errno.
        errno: Errno,
    },
    /// setresgid/setresuid to 0 in the user namespace failed.
    #[error("becoming uid/gid 0 in the user namespace failed: {errno}")]
    Setid {
        /// The errno.
        errno: Errno,
    },
    /// Writing the time offsets failed.
    #[error("writing /proc/self/timens_offsets for the new time namespace failed: {errno}")]
    TimeOffsets {
        /// The errno.
        errno: Errno,
    },
    /// `mount(NULL, "/", NULL, MS_<propagation>, NULL)` in the new mount
    /// namespace failed (mount(2), mount_namespaces(7)).
    #[error("making / {propagation} in the new mount namespace failed: {errno}")]
    Propagation {
        /// The propagation asked for.
        propagation: Propagation,
        /// The errno.
        errno: Errno,
    },
    /// A sync point failed (the caller's side of it, or the hand-off).
    #[error("sync point {point} failed: {source}")]
    Sync {
        /// The sync point.
        point: SyncPoint,
        /// What failed.
        #[source]
        source: SyncError,
    },
    /// fork(2) failed.
    #[error("fork into the new pid/time namespaces failed: {errno}")]
    Fork {
        /// The errno.
        errno: Errno,
    },
    /// The process whose namespaces an exec plan joins has exited: its
    /// pidfd says ESRCH (`pidfd_open` of a reaped process, `setns` through
    /// the pidfd of a zombie, which has no namespaces), or one of its
    /// `/proc/<pid>/ns` files is gone (ENOENT).
    #[error("process {pid}, whose namespaces the exec joins, has exited ({}: {errno})", call_of(*kind, path.as_deref()))]
    TargetExited {
        /// The process.
        pid: i32,
        /// The kind whose namespace file was missing (none for the pidfd).
        kind: Option<Kind>,
        /// The missing namespace file (none for the pidfd).
        path: Option<PathBuf>,
        /// ESRCH or ENOENT.
        errno: Errno,
    },
}

/// What [`ApplyError::TargetExited`] names as the call that found the
/// target gone.
fn call_of(kind: Option<Kind>, path: Option<&std::path::Path>) -> String {
    match (kind, path) {
        (Some(kind), Some(path)) => format!("opening its {kind} namespace {}", QuotedPath(path)),
        _ => "its pidfd".to_owned(),
    }
}

impl ApplyError {
    /// The stable code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            ApplyError::NotANamespace { .. } => ErrorCode::NotANamespace,
            ApplyError::WrongNamespaceType { .. } => ErrorCode::WrongNamespaceType,
            ApplyError::PathNotFound { .. } => ErrorCode::PathNotFound,
            ApplyError::OpenFailed { .. } => ErrorCode::OpenFailed,
            ApplyError::Multithreaded { .. } => ErrorCode::Multithreaded,
            ApplyError::ThreadCount { .. } => ErrorCode::ThreadCountFailed,
            ApplyError::Propagation { .. } => ErrorCode::PropagationFailed,
            ApplyError::Join { .. } => ErrorCode::JoinFailed,
            ApplyError::Unshare { .. } => ErrorCode::UnshareFailed,
            ApplyError::Setid { .. } => ErrorCode::SetidFailed,
            ApplyError::TimeOffsets { .. } => ErrorCode::TimeOffsetsFailed,
            ApplyError::Sync { .. } => ErrorCode::SyncFailed,
            ApplyError::Fork { .. } => ErrorCode::ForkFailed,
            ApplyError::TargetExited { .. } => ErrorCode::TargetExited,
        }
    }

    /// The namespace kind of the failed step (none for fork).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            ApplyError::NotANamespace { kind, .. }
            | ApplyError::WrongNamespaceType { kind, .. }
            | ApplyError::PathNotFound { kind, .. }
            | ApplyError::OpenFailed { kind, .. }
            | ApplyError::Multithreaded { kind, .. }
            | ApplyError::ThreadCount { kind, .. }
            | ApplyError::Join { kind, .. }
            | ApplyError::Unshare { kind, .. } => Some(*kind),
            ApplyError::Propagation { .. } => Some(Kind::Mount),
            ApplyError::Setid { .. } => Some(Kind::User),
            ApplyError::TimeOffsets { .. } => Some(Kind::Time),
            ApplyError::Sync { point, .. } => Some(point.kind()),
            ApplyError::Fork { .. } => None,
            ApplyError::TargetExited { kind, .. } => *kind,
        }
    }

    /// The path of the failed step, for opens and joins.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ApplyError::NotANamespace { path, .. }
            | ApplyError::WrongNamespaceType { path, .. }
            | ApplyError::PathNotFound { path, .. }
            | ApplyError::OpenFailed { path, .. }
            | ApplyError::Join { path, .. } => Some(path),
            ApplyError::TargetExited { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// The errno of the failed call, when a call failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ApplyError::NotANamespace { errno, .. }
            | ApplyError::PathNotFound { errno, .. }
            | ApplyError::OpenFailed { errno, .. }
            | ApplyError::Join { errno, .. }
            | ApplyError::Unshare { errno, .. }
            | ApplyError::Setid { errno }
            | ApplyError::TimeOffsets { errno }
            | ApplyError::Fork { errno }
            | ApplyError::TargetExited { errno, .. }
            | ApplyError::Propagation { errno, .. } => Some(*errno),
            ApplyError::ThreadCount { errno, .. } => *errno,
            ApplyError::Sync { source, .. } => source.errno(),
            ApplyError::WrongNamespaceType { .. } | ApplyError::Multithreaded { .. } => None,
        }
    }
}

impl From<&ApplyError> for TraceError {
    fn from(e: &ApplyError) -> Self {
        TraceError {
            code: e.code(),
            kind: e.kind(),
            path: e.path().map(ToOwned::to_owned),
            errno: e.errno(),
            message: {
                // Room for the usual message up front (`to_string` grows
                // its buffer piece by piece, reallocating it several times).
                let mut message = String::with_capacity(160);
                write!(message, "{e}").expect("an error's Display does not fail");
                message
            },
            index: None,
            unjoined: match e {
                ApplyError::Join { unjoined, .. } => unjoined.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// What a sync point hands to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRequest<'a> {
    /// The process created its user namespace and waits: the parent writes
    /// `setgroups`, `uid_map` and `gid_map` for it (user_namespaces(7)).
    IdMapping {
        /// `linux.uidMappings`.
        uid: &'a [IdMapping],
        /// `linux.gidMappings`.
        gid: &'a [IdMapping],
    },
    /// The process is about to create its cgroup namespace: the parent must
    /// have placed it in its cgroup, which becomes the namespace's root.
    CgroupPlaced,
}

impl SyncRequest<'_> {
    /// The sync point.
    pub const fn point(&self) -> SyncPoint {
        match self {
            SyncRequest::IdMapping { .. } => SyncPoint::IdMapping,
            SyncRequest::CgroupPlaced => SyncPoint::CgroupPlaced,
        }
    }
}

/// The caller's side of the sync points. A runtime implements it to write
/// the id maps from its parent and to place the process in its cgroup.
///
/// The backend is passed in so a hook for the model can act on it (the
/// model's parent writes the maps into the model).
pub trait SyncHooks<S: Syscall + ?Sized> {
    /// Called at each sync point, in plan order; the engine waits for it.
    ///
    /// # Errors
    ///
    /// Why the hand-off failed ([`SyncError::Caller`] for a caller's own
    /// reason); the run stops with `sync-failed`, and the trace carries the
    /// error's errno when a call failed.
    fn sync(&mut self, request: SyncRequest<'_>, sys: &mut S) -> Result<(), SyncError>;
}

/// Hooks that do nothing: for plans without sync points, or callers that
/// did the work before calling apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSync;

impl<S: Syscall + ?Sized> SyncHooks<S> for NoSync {
    fn sync(&mut self, _: SyncRequest<'_>, _: &mut S) -> Result<(), SyncError> {
        Ok(())
    }
}

/// The result of [`apply`]: the steps taken, and how the run ended. The
/// trace document of the run ([`Applied::trace`]) is made of both; the
/// error is held once, here, as the typed [`ApplyError`].
#[derive(Debug)]
pub struct Applied {
    /// Every step taken, with its result.
    pub steps: Vec<TraceStep>,
    /// `Ok(Some(_))` after a fork (which side we are on), `Ok(None)` when the
    /// plan has no fork, or the error that stopped the run.
    pub result: Result<Option<Forked>, ApplyError>,
}

impl Applied {
    /// The trace document of the run (DESIGN §6): the steps, and the error
    /// made from [`Applied::result`].
    pub fn trace(&self) -> Trace {
        Trace {
            steps: self.steps.clone(),
            error: self.error(),
            ..Trace::default()
        }
    }

    /// [`Applied::trace`], without copying the steps.
    pub fn into_trace(self) -> Trace {
        let error = self.error();
        Trace {
            steps: self.steps,
            error,
            ..Trace::default()
        }
    }

    /// The trace's `error` object, when the run failed.
    pub fn error(&self) -> Option<TraceError> {
        self.result.as_ref().err().map(TraceError::from)
    }
}

/// Applies `plan` with `sys`, calling `hooks` at the sync points.
///
/// Every fd is opened close-on-exec (the Linux backend: `O_RDONLY` on nsfs,
/// else an `O_PATH` reference that `NS_GET_NSTYPE` refuses) and type-checked
/// before the first join, and closed exactly once on every path. Before
/// setns(user|mount|time) and unshare(user) the process must be
/// single-threaded; the engine checks that first and reports
/// `multithreaded` instead of a bare EINVAL/EUSERS.
///
/// # Errors
///
/// Reported in [`Applied::result`] (and the trace's `error`, made from it):
/// the apply codes of DESIGN §6.
///
/// ```
/// use nsapply::{apply, plan, NsConfig, model::{Model, World}, simulate::ModelParent};
/// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"},{"type":"ipc"}]}}"#).unwrap();
/// let mut model = Model::new(&World::default()).unwrap();
/// let run = apply(&plan(&cfg), &mut model, &mut ModelParent::default());
/// assert!(run.result.is_ok());
/// assert_eq!(run.steps.len(), 2);
/// ```
pub fn apply<S, H>(plan: &Plan, sys: &mut S, hooks: &mut H) -> Applied
where
    S: Syscall + ?Sized,
    H: SyncHooks<S> + ?Sized,
{
    let mut run = Run::<S> {
        fds: std::array::from_fn(|_| None),
        deferred: KindSet::EMPTY,
        deferral_allowed: plan.joins_user(),
        user_done: false,
        threads_checked: false,
        pidfd_joined: false,
        target: plan.exec_target(),
        // One allocation for the usual run (a step per plan step); growing
        // the list step by step reallocates it twice in a default run.
        steps: Vec::with_capacity(plan.steps().len()),
    };
    let result = run.walk(plan, sys, hooks);
    if result.is_err() {
        run.close_all(sys);
    }
    Applied {
        steps: run.steps,
        result,
    }
}

struct Run<'p, S: Syscall + ?Sized> {
    fds: [Option<(S::Fd, &'p AbsPath)>; 8],
    deferred: KindSet,
    deferral_allowed: bool,
    user_done: bool,
    /// The thread count was checked and no caller code (a sync hook) has
    /// run since: nothing else in a run can start a thread.
    threads_checked: bool,
    /// A pidfd join succeeded: the per-namespace joins after it have
    /// nothing left to do.
    pidfd_joined: bool,
    /// For an exec plan, the process whose namespaces it joins.
    target: Option<i32>,
    steps: Vec<TraceStep>,
}

impl<'p, S: Syscall + ?Sized> Run<'p, S> {
    fn walk<H: SyncHooks<S> + ?Sized>(
        &mut self,
        plan: &'p Plan,
        sys: &mut S,
        hooks: &mut H,
    ) -> Result<Option<Forked>, ApplyError> {
        // Fail before the first step rather than halfway: a multithreaded
        // caller would otherwise have joined some namespaces already.
        let kinds = plan.kinds();
        let needs = |s: &Step| needs_single_thread(s, kinds);
        if let Some((kind, op)) = plan.steps().iter().find_map(needs) {
            self.single_threaded(sys, kind, op)?;
        }
        let mut forked = None;
        for step in plan.steps() {
            if self.pidfd_joined && step.is_per_namespace_join() {
                continue;
            }
            if let Some((kind, op)) = needs(step) {
                self.single_threaded(sys, kind, op)?;
            }
            match step {
                Step::PidfdJoin { pid, kinds } => self.pidfd_join(sys, *pid, *kinds)?,
                Step::Open { kind, path } => self.open(sys, *kind, path)?,
                Step::Setns { kind, path } => self.join(sys, *kind, path)?,
                Step::Unshare { kind } => {
                    let r = sys.unshare(KindSet::one(*kind));
                    self.steps.push(TraceStep::Unshare {
                        kind: *kind,
                        result: Outcome::of(&r),
                    });
                    r.map_err(|errno| ApplyError::Unshare { kind: *kind, errno })?;
                }
                Step::Sync { point } => {
                    let request = match point {
                        SyncPoint::IdMapping => SyncRequest::IdMapping {
                            uid: plan.uid_mappings(),
                            gid: plan.gid_mappings(),
                        },
                        SyncPoint::CgroupPlaced => SyncRequest::CgroupPlaced,
                    };
                    self.steps.push(TraceStep::Sync { point: *point });
                    let r = hooks.sync(request, sys);
                    // The caller's code ran: it may have started threads.
                    self.threads_checked = false;
                    r.map_err(|source| ApplyError::Sync {
                        point: *point,
                        source,
                    })?;
                }
                Step::Setid => {
                    let r = sys.set_root_ids();
                    self.steps.push(TraceStep::Setid {
                        kind: Kind::User,
                        result: Outcome::of(&r),
                    });
                    r.map_err(|errno| ApplyError::Setid { errno })?;
                    self.user_done = true;
                }
                Step::DeferredJoins => {
                    self.steps.push(TraceStep::DeferredJoins {
                        kind: Kind::User,
                        retried: self.deferred.iter().collect(),
                    });
                    self.pass_two(sys)?;
                }
                Step::Propagation { propagation } => {
                    let r = sys.set_root_propagation(*propagation);
                    self.steps.push(TraceStep::Propagation {
                        kind: Kind::Mount,
                        propagation: *propagation,
                        result: Outcome::of(&r),
                    });
                    r.map_err(|errno| ApplyError::Propagation {
                        propagation: *propagation,
                        errno,
                    })?;
                }
                Step::TimeOffsets { offsets } => {
                    let r = sys.write_time_offsets(offsets);
                    self.steps.push(TraceStep::TimeOffsets {
                        kind: Kind::Time,
                        offsets: offsets.clone(),
                        result: Outcome::of(&r),
                    });
                    r.map_err(|errno| ApplyError::TimeOffsets { errno })?;
                }
                Step::Close { kind, .. } => self.close(sys, *kind),
                Step::Fork => {
                    let r = sys.fork();
                    self.steps.push(TraceStep::Fork {
                        result: Outcome::of(&r),
                    });
                    forked = Some(r.map_err(|errno| ApplyError::Fork { errno })?);
                }
            }
        }
        Ok(forked)
    }

    fn open(&mut self, sys: &mut S, kind: Kind, path: &'p AbsPath) -> Result<(), ApplyError> {
        let p = path.as_path();
        let fd = match sys.open_ns(p) {
            Ok(fd) => fd,
            Err(errno) => {
                self.steps.push(TraceStep::Open {
                    kind,
                    path: p.to_owned(),
                    result: Outcome::Err(errno),
                    found: None,
                });
                let path = p.to_owned();
                return Err(match self.target {
                    // The target's namespace files go when it exits.
                    Some(pid) if errno == Errno::ENOENT => ApplyError::TargetExited {
                        pid,
                        kind: Some(kind),
                        path: Some(path),
                        errno,
                    },
                    _ if errno == Errno::ENOENT || errno == Errno::ENOTDIR => {
                        ApplyError::PathNotFound { kind, path, errno }
                    }
                    _ => ApplyError::OpenFailed { kind, path, errno },
                });
            }
        };
        let nstype = sys.ns_get_nstype(&fd);
        // Held from here on, so the fatal path closes it with the others.
        self.fds[kind.index()] = Some((fd, path));
        let (result, found, error) = match nstype {
            Ok(raw) if raw == kind.clone_flag() => (Outcome::Ok, None, None),
            Ok(raw) => {
                let found = Kind::from_clone_flag(raw);
                let name = found.map_or_else(|| format!("{raw:#x}"), |k| k.spec_name().to_owned());
                let e = ApplyError::WrongNamespaceType {
                    kind,
                    path: p.to_owned(),
                    found,
                    raw,
                };
                (Outcome::Ok, Some(name), Some(e))
            }
            Err(errno) if errno == Errno::ENOTTY => (
                Outcome::Err(errno),
                None,
                Some(ApplyError::NotANamespace {
                    kind,
                    path: p.to_owned(),
                    errno,
                }),
            ),
            Err(errno) => (
                Outcome::Err(errno),
                None,
                Some(ApplyError::OpenFailed {
                    kind,
                    path: p.to_owned(),
                    errno,
                }),
            ),
        };
        self.steps.push(TraceStep::Open {
            kind,
            path: p.to_owned(),
            result,
            found,
        });
        error.map_or(Ok(()), Err)
    }

    /// The pidfd join (DESIGN §9): `pidfd_open(pid)`, one
    /// `setns(pidfd, flags)`, close. ESRCH from either call is the target's
    /// exit. Any other error leaves the caller where it was (the kernel
    /// validates the whole set before it commits any of it:
    /// `validate_nsset`/`commit_nsset` in kernel/nsproxy.c), so the
    /// per-namespace steps that follow run as the fallback: on a kernel
    /// that refuses a pidfd (ENOSYS before 5.3, EINVAL before 5.8) they do
    /// the joins, and on a refusal (EPERM, EINVAL for a caller's own user
    /// namespace or a shared fs_struct) they name the namespace, path and
    /// errno of the join that fails, which one atomic errno cannot.
    fn pidfd_join(&mut self, sys: &mut S, pid: i32, kinds: KindSet) -> Result<(), ApplyError> {
        let exited = |errno| ApplyError::TargetExited {
            pid,
            kind: None,
            path: None,
            errno,
        };
        let (call, r) = match sys.pidfd_open(pid) {
            Err(errno) => (PidfdCall::Open, Err(errno)),
            Ok(pidfd) => {
                let r = sys.setns_pidfd(&pidfd, kinds);
                sys.close(pidfd);
                (PidfdCall::Setns, r)
            }
        };
        let gone = matches!(r, Err(e) if e == Errno::ESRCH);
        self.steps.push(TraceStep::PidfdJoin {
            pid,
            kinds,
            result: Outcome::of(&r),
            call: r.is_err().then_some(call),
            fallback: r.is_err() && !gone,
        });
        match r {
            Ok(()) => {
                self.pidfd_joined = true;
                Ok(())
            }
            Err(errno) if gone => Err(exited(errno)),
            Err(_) => Ok(()),
        }
    }

    fn join(&mut self, sys: &mut S, kind: Kind, path: &AbsPath) -> Result<(), ApplyError> {
        let r = match &self.fds[kind.index()] {
            Some((fd, _)) => sys.setns(fd, kind),
            // A plan always opens before it joins; a hand-built plan that
            // does not gets the kernel's answer for a closed fd.
            None => Err(Errno::EBADF),
        };
        let defer = matches!(r, Err(e) if e == Errno::EPERM)
            && kind != Kind::User
            && self.deferral_allowed
            && !self.user_done;
        self.steps.push(TraceStep::Setns {
            kind,
            path: path.as_path().to_owned(),
            result: Outcome::of(&r),
            deferred: defer,
        });
        match r {
            Ok(()) => Ok(()),
            Err(_) if defer => {
                self.deferred.insert(kind);
                Ok(())
            }
            Err(errno) => Err(self.join_error(kind, path, errno)),
        }
    }

    /// Join pass 2: retry each deferred join once, now inside the user
    /// namespace; every error is fatal.
    fn pass_two(&mut self, sys: &mut S) -> Result<(), ApplyError> {
        for kind in self.deferred.iter() {
            let path = self.fds[kind.index()].as_ref().map(|(_, p)| *p);
            let Some(path) = path else { continue };
            self.deferred.remove(kind);
            if kind.setns_needs_single_thread() {
                self.single_threaded(sys, kind, "setns")?;
            }
            self.join(sys, kind, path)?;
        }
        Ok(())
    }

    fn join_error(&self, kind: Kind, path: &AbsPath, errno: Errno) -> ApplyError {
        let mut unjoined = vec![Unjoined {
            kind,
            path: path.as_path().to_owned(),
        }];
        for k in self.deferred.iter().filter(|k| *k != kind) {
            if let Some((_, p)) = &self.fds[k.index()] {
                unjoined.push(Unjoined {
                    kind: k,
                    path: p.as_path().to_owned(),
                });
            }
        }
        ApplyError::Join {
            kind,
            path: path.as_path().to_owned(),
            errno,
            unjoined,
        }
    }

    /// Requires one thread for `op(kind)`, asking the backend only when no
    /// check holds since the caller's code last ran.
    fn single_threaded(
        &mut self,
        sys: &mut S,
        kind: Kind,
        op: &'static str,
    ) -> Result<(), ApplyError> {
        if self.threads_checked {
            return Ok(());
        }
        match sys.thread_count() {
            Ok(n) if n <= 1 => {
                self.threads_checked = true;
                Ok(())
            }
            Ok(threads) => Err(ApplyError::Multithreaded { kind, op, threads }),
            Err(e) => Err(ApplyError::ThreadCount {
                kind,
                op,
                errno: e.errno,
            }),
        }
    }

    fn close(&mut self, sys: &mut S, kind: Kind) {
        if let Some((fd, path)) = self.fds[kind.index()].take() {
            sys.close(fd);
            self.steps.push(TraceStep::Close {
                kind,
                path: path.as_path().to_owned(),
            });
        }
    }

    fn close_all(&mut self, sys: &mut S) {
        for kind in Kind::ALL {
            self.close(sys, kind);
        }
    }
}

/// The steps the kernel (or, for fork, Rust) allows only in a
/// single-threaded process, with the kind and call to name in the error.
fn needs_single_thread(step: &Step, kinds: KindSet) -> Option<(Kind, &'static str)> {
    match step {
        Step::Setns { kind, .. } if kind.setns_needs_single_thread() => Some((*kind, "setns")),
        Step::Unshare { kind: Kind::User } => Some((Kind::User, "unshare")),
        // setns through a pidfd has the rules of each kind it holds.
        Step::PidfdJoin { kinds, .. } => kinds
            .iter()
            .find(|k| k.setns_needs_single_thread())
            .map(|k| (k, "setns")),
        // After fork(2) in a multithreaded process the child may only make
        // async-signal-safe calls, but the engine's child goes on to run
        // the caller's code; the Linux backend refuses (EBUSY). Asking for
        // one thread here keeps the model and the kernel in step.
        Step::Fork => {
            let kind = if kinds.contains(Kind::Pid) {
                Kind::Pid
            } else {
                Kind::Time
            };
            Some((kind, "fork"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The engine against a scripted backend: each call answers from a
    //! table, so these tests pin the engine's decisions (defer, stop, close)
    //! independently of the kernel model.
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::NsConfig;
    use crate::plan::plan;

    #[derive(Debug)]
    struct Fd(u32, PathBuf);

    #[derive(Default)]
    struct Scripted {
        /// (op, kind) → errno answers, consumed front to back; empty = ok.
        answers: HashMap<(&'static str, Kind), Vec<Errno>>,
        nstype: HashMap<PathBuf, i32>,
        threads: usize,
        next: u32,
        open: Vec<u32>,
        log: Vec<String>,
        closed_twice: usize,
        thread_queries: usize,
        pidfd_open_fails: Option<Errno>,
        pidfd_setns_fails: Option<Errno>,
    }

    impl Scripted {
        fn fail(mut self, op: &'static str, kind: Kind, errnos: &[Errno]) -> Self {
            self.answers.insert((op, kind), errnos.to_vec());
            self
        }
        fn answer(&mut self, op: &'static str, kind: Kind) -> Result<(), Errno> {
            self.log.push(format!("{op} {kind}"));
            match self.answers.get_mut(&(op, kind)) {
                Some(v) if !v.is_empty() => Err(v.remove(0)),
                _ => Ok(()),
            }
        }
    }

    fn kind_of(path: &Path) -> Kind {
        path.file_name()
            .and_then(|n| n.to_str())
            .and_then(Kind::from_spec_name)
            .unwrap()
    }

    impl Syscall for Scripted {
        type Fd = Fd;
        fn open_ns(&mut self, path: &Path) -> Result<Fd, Errno> {
            self.answer("open", kind_of(path))?;
            self.next += 1;
            self.open.push(self.next);
            Ok(Fd(self.next, path.to_owned()))
        }
        fn ns_get_nstype(&mut self, fd: &Fd) -> Result<i32, Errno> {
            let kind = kind_of(&fd.1);
            self.answer("nstype", kind)?;
            Ok(*self.nstype.get(&fd.1).unwrap_or(&kind.clone_flag()))
        }
        fn setns(&mut self, _: &Fd, kind: Kind) -> Result<(), Errno> {
            self.answer("setns", kind)
        }
        fn close(&mut self, fd: Fd) {
            self.log.push(format!("close {}", kind_of(&fd.1)));
            match self.open.iter().position(|n| *n == fd.0) {
                Some(i) => drop(self.open.remove(i)),
                None => self.closed_twice += 1,
            }
        }
        fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
            assert_eq!(kinds.len(), 1, "the engine unshares one kind per call");
            self.answer("unshare", kinds.iter().next().unwrap())
        }
        fn set_root_ids(&mut self) -> Result<(), Errno> {
            self.answer("setid", Kind::User)
        }
        fn set_root_propagation(&mut self, _: crate::config::Propagation) -> Result<(), Errno> {
            self.answer("propagation", Kind::Mount)
        }
        fn write_time_offsets(&mut self, _: &[crate::config::TimeOffset]) -> Result<(), Errno> {
            self.answer("offsets", Kind::Time)
        }
        fn thread_count(&mut self) -> Result<usize, crate::syscall::ThreadCountError> {
            self.thread_queries += 1;
            Ok(self.threads.max(1))
        }
        fn fork(&mut self) -> Result<Forked, Errno> {
            self.log.push("fork".into());
            Ok(Forked::Child)
        }
        fn pidfd_open(&mut self, pid: i32) -> Result<Fd, Errno> {
            self.log.push(format!("pidfd-open {pid}"));
            if let Some(errno) = self.pidfd_open_fails {
                return Err(errno);
            }
            self.next += 1;
            self.open.push(self.next);
            Ok(Fd(self.next, PathBuf::from("/pidfd/user")))
        }
        fn setns_pidfd(&mut self, _: &Fd, kinds: KindSet) -> Result<(), Errno> {
            self.log.push(format!("setns-pidfd {kinds}"));
            self.pidfd_setns_fails.map_or(Ok(()), Err)
        }
    }

    /// Paths are named after their kind so the scripted backend can tell them apart.
    fn cfg(ns: &str) -> Plan {
        plan(&NsConfig::from_json(&format!(r#"{{"linux":{{"namespaces":[{ns}]}}}}"#)).unwrap())
    }

    const USER_NET_IPC: &str = r#"{"type":"user","path":"/j/user"},{"type":"network","path":"/j/network"},{"type":"ipc","path":"/j/ipc"},{"type":"uts"}"#;

    #[test]
    fn eperm_in_pass_one_is_deferred_and_retried_after_the_user_step() {
        let mut sys = Scripted::default().fail("setns", Kind::Network, &[Errno::EPERM]);
        let run = apply(&cfg(USER_NET_IPC), &mut sys, &mut NoSync);
        assert!(run.result.is_ok(), "{:?}", run.result);
        assert_eq!(
            sys.log,
            [
                "open user",
                "nstype user",
                "open ipc",
                "nstype ipc",
                "open network",
                "nstype network",
                "setns ipc",
                "setns network",
                "setns user",
                "setid user",
                "setns network",
                "unshare uts",
                "close user",
                "close ipc",
                "close network",
            ]
        );
        let deferred: Vec<_> = run
            .steps
            .iter()
            .filter(|s| matches!(s, TraceStep::Setns { deferred: true, .. }))
            .collect();
        assert_eq!(deferred.len(), 1);
        assert!(sys.open.is_empty());
    }

    #[test]
    fn second_failure_is_fatal_and_lists_every_unjoined_namespace() {
        // Both fail twice: pass 2 retries ipc first (canonical order), fails,
        // and the error names ipc and the still-unjoined network.
        let mut sys = Scripted::default()
            .fail("setns", Kind::Network, &[Errno::EPERM, Errno::EPERM])
            .fail("setns", Kind::Ipc, &[Errno::EPERM, Errno::EACCES]);
        let run = apply(&cfg(USER_NET_IPC), &mut sys, &mut NoSync);
        let unjoined = |k, p: &str| Unjoined {
            kind: k,
            path: p.into(),
        };
        assert_eq!(
            run.result.as_ref().unwrap_err().clone(),
            ApplyError::Join {
                kind: Kind::Ipc,
                path: "/j/ipc".into(),
                errno: Errno::EACCES,
                unjoined: vec![
                    unjoined(Kind::Ipc, "/j/ipc"),
                    unjoined(Kind::Network, "/j/network")
                ],
            }
        );
        let retries = sys.log.iter().filter(|l| *l == "setns ipc").count();
        assert_eq!(retries, 2, "a deferred join is retried exactly once");
        assert!(!sys.log.iter().any(|l| l == "unshare uts"));
        assert!(sys.open.is_empty());

        // One retry only: network fails in pass 2 after ipc joined.
        let mut sys = Scripted::default()
            .fail("setns", Kind::Network, &[Errno::EPERM, Errno::EPERM])
            .fail("setns", Kind::Ipc, &[Errno::EPERM]);
        let run = apply(&cfg(USER_NET_IPC), &mut sys, &mut NoSync);
        match run.result.unwrap_err() {
            ApplyError::Join { kind, unjoined, .. } => {
                assert_eq!(kind, Kind::Network);
                assert_eq!(
                    unjoined,
                    vec![Unjoined {
                        kind: Kind::Network,
                        path: "/j/network".into()
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sys.log.iter().filter(|l| *l == "setns network").count(), 2);
    }

    #[test]
    fn eperm_without_user_join_is_fatal_at_once_and_closes_everything() {
        let mut sys = Scripted::default().fail("setns", Kind::Ipc, &[Errno::EPERM]);
        let run = apply(
            &cfg(
                r#"{"type":"network","path":"/j/network"},{"type":"ipc","path":"/j/ipc"},{"type":"uts"}"#,
            ),
            &mut sys,
            &mut NoSync,
        );
        assert_eq!(run.result.unwrap_err().code(), crate::ErrorCode::JoinFailed);
        assert_eq!(sys.log.last().map(String::as_str), Some("close network"));
        assert!(
            !sys.log.iter().any(|l| l.starts_with("unshare")),
            "no call after a fatal error"
        );
        assert!(sys.open.is_empty());
        assert_eq!(sys.closed_twice, 0);
    }

    #[test]
    fn wrong_type_and_not_a_namespace_stop_before_any_join() {
        let mut sys = Scripted::default();
        sys.nstype
            .insert("/j/network".into(), Kind::Ipc.clone_flag());
        let run = apply(
            &cfg(r#"{"type":"network","path":"/j/network"},{"type":"uts"}"#),
            &mut sys,
            &mut NoSync,
        );
        let err = run.result.as_ref().unwrap_err().clone();
        assert_eq!(err.code(), crate::ErrorCode::WrongNamespaceType);
        assert_eq!(sys.log, ["open network", "nstype network", "close network"]);
        let t = run.error().unwrap();
        assert_eq!(
            (t.kind, t.path.as_deref()),
            (Some(Kind::Network), Some(Path::new("/j/network")))
        );

        let mut sys = Scripted::default().fail("nstype", Kind::Network, &[Errno::ENOTTY]);
        let run = apply(
            &cfg(r#"{"type":"network","path":"/j/network"}"#),
            &mut sys,
            &mut NoSync,
        );
        assert_eq!(
            run.result.unwrap_err().code(),
            crate::ErrorCode::NotANamespace
        );
        assert!(sys.open.is_empty());

        let mut sys = Scripted::default().fail("open", Kind::Ipc, &[Errno::ENOENT]);
        let run = apply(
            &cfg(r#"{"type":"network","path":"/j/network"},{"type":"ipc","path":"/j/ipc"}"#),
            &mut sys,
            &mut NoSync,
        );
        assert_eq!(
            run.result.unwrap_err().code(),
            crate::ErrorCode::PathNotFound
        );
        assert_eq!(
            sys.log,
            ["open ipc"],
            "ipc opens first in canonical order; nothing else runs"
        );
    }

    #[test]
    fn multithreaded_caller_is_refused_before_the_first_step() {
        let mut sys = Scripted {
            threads: 3,
            ..Scripted::default()
        };
        let p = cfg(
            r#"{"type":"network","path":"/j/network"},{"type":"mount"},{"type":"user","path":"/j/user"}"#,
        );
        let run = apply(&p, &mut sys, &mut NoSync);
        match run.result.unwrap_err() {
            ApplyError::Multithreaded {
                kind, op, threads, ..
            } => {
                assert_eq!((kind, op, threads), (Kind::User, "setns", 3));
            }
            other => panic!("{other:?}"),
        }
        assert!(sys.log.is_empty());
        // Plans without such steps do not care about threads.
        let mut sys = Scripted {
            threads: 3,
            ..Scripted::default()
        };
        let run = apply(
            &cfg(r#"{"type":"uts"},{"type":"ipc"}"#),
            &mut sys,
            &mut NoSync,
        );
        assert!(run.result.is_ok());
        // A plan that forks needs one thread too, checked before any change.
        let mut sys = Scripted {
            threads: 2,
            ..Scripted::default()
        };
        let run = apply(
            &cfg(r#"{"type":"uts"},{"type":"pid"}"#),
            &mut sys,
            &mut NoSync,
        );
        match run.result.unwrap_err() {
            ApplyError::Multithreaded { kind, op, .. } => {
                assert_eq!((kind, op), (Kind::Pid, "fork"))
            }
            other => panic!("{other:?}"),
        }
        assert!(sys.log.is_empty());
    }

    #[test]
    fn threads_are_checked_once_unless_a_sync_hook_ran() {
        // No hook runs between the steps: one query covers every step that
        // needs a single thread (user join, mount join, fork).
        let mut sys = Scripted::default();
        let p = cfg(
            r#"{"type":"user","path":"/j/user"},{"type":"mount","path":"/j/mount"},{"type":"pid"}"#,
        );
        assert!(apply(&p, &mut sys, &mut NoSync).result.is_ok());
        assert_eq!(sys.thread_queries, 1);

        // A hook that starts a thread (the caller's code) is caught before
        // the fork that follows it.
        struct StartsThread;
        impl SyncHooks<Scripted> for StartsThread {
            fn sync(&mut self, _: SyncRequest<'_>, sys: &mut Scripted) -> Result<(), SyncError> {
                sys.threads = 2;
                Ok(())
            }
        }
        let mut sys = Scripted::default();
        let run = apply(
            &cfg(r#"{"type":"cgroup"},{"type":"pid"}"#),
            &mut sys,
            &mut StartsThread,
        );
        match run.result.unwrap_err() {
            ApplyError::Multithreaded {
                kind, op, threads, ..
            } => {
                assert_eq!((kind, op, threads), (Kind::Pid, "fork", 2));
            }
            other => panic!("{other:?}"),
        }
        assert!(!sys.log.iter().any(|l| l == "fork"));
        assert_eq!(sys.thread_queries, 2);
    }

    #[test]
    fn propagation_follows_unshare_mount_and_its_failure_is_its_own_error() {
        let mut sys = Scripted::default();
        let run = apply(
            &cfg(r#"{"type":"mount"},{"type":"uts"}"#),
            &mut sys,
            &mut NoSync,
        );
        assert!(run.result.is_ok());
        assert_eq!(
            sys.log,
            ["unshare uts", "unshare mount", "propagation mount"],
            "propagation right after unshare(mount)"
        );
        let mut sys = Scripted::default().fail("propagation", Kind::Mount, &[Errno::EPERM]);
        let run = apply(
            &cfg(r#"{"type":"mount"},{"type":"ipc","path":"/j/ipc"}"#),
            &mut sys,
            &mut NoSync,
        );
        assert_eq!(
            run.result.as_ref().unwrap_err().clone(),
            ApplyError::Propagation {
                propagation: crate::config::Propagation::DEFAULT,
                errno: Errno::EPERM
            }
        );
        assert!(sys.open.is_empty(), "the fd is closed on the error path");
        let err = run.error().unwrap();
        assert_eq!(err.code, crate::ErrorCode::PropagationFailed);
        assert_eq!(err.kind, Some(Kind::Mount));
    }

    #[test]
    fn an_unreadable_thread_count_is_its_own_error_not_multithreaded() {
        let p = cfg(r#"{"type":"uts"},{"type":"pid"}"#);
        let mut model = crate::model::Model::new(&crate::model::World::default()).unwrap();
        model.set_faults("threads=EMFILE".parse().unwrap());
        let run = apply(&p, &mut model, &mut NoSync);
        assert_eq!(
            run.result.as_ref().unwrap_err().clone(),
            ApplyError::ThreadCount {
                kind: Kind::Pid,
                op: "fork",
                errno: Some(Errno::EMFILE)
            }
        );
        let err = run.error().unwrap();
        assert_eq!(err.code, crate::ErrorCode::ThreadCountFailed);
        assert_eq!(err.errno, Some(Errno::EMFILE));
    }

    #[test]
    fn sync_failure_stops_the_run_with_its_point() {
        struct FailCgroup;
        impl SyncHooks<Scripted> for FailCgroup {
            fn sync(&mut self, r: SyncRequest<'_>, _: &mut Scripted) -> Result<(), SyncError> {
                match r {
                    SyncRequest::CgroupPlaced => Err(SyncError::Channel {
                        what: "waiting for the parent".into(),
                        errno: None,
                    }),
                    SyncRequest::IdMapping { .. } => Ok(()),
                }
            }
        }
        let mut sys = Scripted::default();
        let run = apply(
            &cfg(r#"{"type":"cgroup"},{"type":"ipc","path":"/j/ipc"}"#),
            &mut sys,
            &mut FailCgroup,
        );
        assert_eq!(
            run.result.as_ref().unwrap_err().clone(),
            ApplyError::Sync {
                point: SyncPoint::CgroupPlaced,
                source: SyncError::Channel {
                    what: "waiting for the parent".into(),
                    errno: None
                }
            }
        );
        assert!(!sys.log.iter().any(|l| l == "unshare cgroup"));
        assert!(sys.open.is_empty());
    }

    /// An exec into uts and ipc of process 42 (kinds whose /proc names are
    /// their spec names, which the scripted backend reads paths by).
    fn exec_uts_ipc() -> Plan {
        let kinds = [Kind::Uts, Kind::Ipc].into_iter().collect();
        crate::exec::ExecTarget::new(42, kinds).plan().unwrap()
    }

    #[test]
    fn a_pidfd_join_that_succeeds_makes_the_per_namespace_joins_unneeded() {
        let mut sys = Scripted::default();
        let run = apply(&exec_uts_ipc(), &mut sys, &mut NoSync);
        assert!(run.result.is_ok(), "{:?}", run.result);
        assert_eq!(
            sys.log,
            ["pidfd-open 42", "setns-pidfd uts,ipc", "close user"]
        );
        assert!(sys.open.is_empty() && sys.closed_twice == 0);
    }

    /// DESIGN §9: a kernel that refuses the pidfd join (EINVAL before 5.8,
    /// ENOSYS before 5.3) left the caller where it was, and the joins are
    /// made one namespace at a time, each file opened before any is joined.
    #[test]
    fn a_refused_pidfd_join_falls_back_to_one_join_per_namespace() {
        for (errno, at_open) in [(Errno::EINVAL, false), (Errno::ENOSYS, true)] {
            let mut sys = Scripted::default();
            if at_open {
                sys.pidfd_open_fails = Some(errno);
            } else {
                sys.pidfd_setns_fails = Some(errno);
            }
            let run = apply(&exec_uts_ipc(), &mut sys, &mut NoSync);
            assert!(run.result.is_ok(), "{errno}: {:?}", run.result);
            let pidfd: &[&str] = if at_open {
                &["pidfd-open 42"]
            } else {
                &["pidfd-open 42", "setns-pidfd uts,ipc", "close user"]
            };
            let joins = [
                "open uts",
                "nstype uts",
                "open ipc",
                "nstype ipc",
                "setns uts",
                "setns ipc",
                "close uts",
                "close ipc",
            ];
            assert_eq!(sys.log, [pidfd, &joins].concat(), "{errno}");
            assert!(sys.open.is_empty() && sys.closed_twice == 0, "{errno}");
            let trace = run.trace();
            assert!(
                matches!(
                    trace.steps.first(),
                    Some(TraceStep::PidfdJoin { fallback: true, .. })
                ),
                "{errno}: {:?}",
                trace.steps.first()
            );
        }
    }

    /// ESRCH from the pidfd is the target's exit: no fallback (it would
    /// open the /proc entry of whatever process has the number now).
    #[test]
    fn esrch_from_the_pidfd_join_is_the_targets_exit_and_nothing_else_is_tried() {
        for at_open in [true, false] {
            let mut sys = Scripted::default();
            if at_open {
                sys.pidfd_open_fails = Some(Errno::ESRCH);
            } else {
                sys.pidfd_setns_fails = Some(Errno::ESRCH);
            }
            let run = apply(&exec_uts_ipc(), &mut sys, &mut NoSync);
            assert!(
                matches!(run.result, Err(ApplyError::TargetExited { pid: 42, .. })),
                "{:?}",
                run.result
            );
            assert!(
                !sys.log.iter().any(|l| l.starts_with("open")),
                "{:?}",
                sys.log
            );
            assert!(sys.open.is_empty() && sys.closed_twice == 0);
        }
    }
}
