//! What the model shows of itself: its fds ([`ModelFd`], [`OpenFdView`])
//! and namespace objects ([`NsView`]), for tests and other runtimes'
//! checks.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use serde::Serialize;

use super::kernel::{Ids, NsId};
use super::Model;
use crate::config::{IdMapping, TimeOffset};
use crate::kind::Kind;

pub(super) static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// An fd the model handed out. Not `Clone`: it is given back by value to
/// [`crate::Syscall::close`], so it cannot be closed twice or used after close.
/// Dropping it without closing leaves the model's fd open (a leak that
/// [`Model::open_fd_count`] shows).
#[derive(Debug)]
pub struct ModelFd {
    pub(super) num: u32,
    /// Unique across models, so a number reused after close, or an fd of
    /// another model, is not taken for this one.
    pub(super) serial: u64,
    /// The path it was opened from (for debugging output).
    pub(super) path: PathBuf,
}

impl ModelFd {
    /// The fd number (the lowest free one at open, from 3, like the kernel).
    pub fn number(&self) -> u32 {
        self.num
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What an open fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FdTarget {
    Ns(NsId),
    /// A regular file or directory.
    File,
    /// A pidfd of the world's process at this index.
    Process(usize),
}

#[derive(Clone, Debug)]
pub(super) struct OpenFile {
    pub(super) serial: u64,
    pub(super) path: PathBuf,
    pub(super) target: FdTarget,
    pub(super) cloexec: bool,
}

/// One open fd of the model, as [`Model::open_fds`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenFdView {
    /// The fd number.
    pub fd: u32,
    /// The path it was opened from.
    pub path: PathBuf,
    /// The namespace it refers to, if any.
    pub namespace: Option<String>,
    /// The close-on-exec bit.
    pub cloexec: bool,
}

/// A read-only view of one namespace object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NsView {
    /// Its name (`host:user`, `new:pid:1`, or the world's name).
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The owning user namespace; for a user namespace, its parent
    /// (`None` for `host:user`).
    pub owner: Option<String>,
    /// The parent: user namespace for user, pid namespace for pid.
    pub parent: Option<String>,
    /// User and pid: nesting level (host = 0).
    pub level: Option<u32>,
    /// User: the creator's euid (kuid).
    pub creator_uid: Option<u32>,
    /// User: the uid map (`None`: not written).
    pub uid_map: Option<Vec<IdMapping>>,
    /// User: the gid map (`None`: not written).
    pub gid_map: Option<Vec<IdMapping>>,
    /// User: whether setgroups(2) is allowed (`false` after "deny").
    pub setgroups_allowed: Option<bool>,
    /// Pid: whether it has an init process.
    pub has_init: Option<bool>,
    /// Time: whether a process entered it (offsets frozen).
    pub entered: Option<bool>,
    /// Time: the offsets written.
    pub offsets: Vec<TimeOffset>,
    /// Where the world made it reachable.
    pub paths: Vec<PathBuf>,
}

impl Model {
    /// The fds open now, lowest first.
    pub fn open_fds(&self) -> Vec<OpenFdView> {
        self.fds
            .iter()
            .map(|(&fd, o)| OpenFdView {
                fd,
                path: o.path.clone(),
                namespace: match o.target {
                    FdTarget::Ns(id) => Some(self.kernel.spaces[id].name.to_string()),
                    FdTarget::File | FdTarget::Process(_) => None,
                },
                cloexec: o.cloexec,
            })
            .collect()
    }

    /// A view of the namespace named `name`.
    pub fn namespace(&self, name: &str) -> Option<NsView> {
        self.find(name).map(|id| self.view(id))
    }

    /// Every namespace object, host ones first, then the world's, then the
    /// ones the run created.
    pub fn namespaces(&self) -> Vec<NsView> {
        (0..self.kernel.spaces.len())
            .map(|id| self.view(id))
            .collect()
    }

    pub(super) fn find(&self, name: &str) -> Option<NsId> {
        self.kernel.spaces.iter().position(|s| s.name == name)
    }

    pub(super) fn view(&self, id: NsId) -> NsView {
        let s = &self.kernel.spaces[id];
        let name_of = |id: Option<NsId>| id.map(|i| self.kernel.spaces[i].name.to_string());
        let (user, pid, time) = (
            s.kind == Kind::User,
            s.kind == Kind::Pid,
            s.kind == Kind::Time,
        );
        NsView {
            name: s.name.to_string(),
            kind: s.kind,
            owner: name_of(s.owner),
            parent: match s.kind {
                Kind::User => name_of(s.owner),
                Kind::Pid => name_of(s.parent),
                _ => None,
            },
            level: (user || pid).then_some(s.level),
            creator_uid: user.then_some(s.creator),
            uid_map: s.map(Ids::Uid).filter(|_| user).map(<[_]>::to_vec),
            gid_map: s.map(Ids::Gid).filter(|_| user).map(<[_]>::to_vec),
            setgroups_allowed: user.then_some(s.setgroups_allowed),
            has_init: pid.then_some(s.has_init),
            entered: time.then_some(s.entered),
            offsets: s.offsets.clone(),
            paths: s.paths.clone(),
        }
    }
}
