//! The model's file system: what each path names (a namespace, a
//! directory, another file), path normalization, and `/proc/self/ns`,
//! which the model resolves from the caller's state.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Component, Path};

use super::kernel::NsId;

/// `PATH_MAX`: a path of this many bytes or more (with its NUL, the
/// kernel's buffer) is ENAMETOOLONG.
const PATH_MAX: usize = 4096;
/// `NAME_MAX`: the longest component a file system takes.
const NAME_MAX: usize = 255;
use super::process::ProcessState;
use super::Model;
use crate::error::Errno;
use crate::kind::Kind;

/// What each path of a world names, by its normal form (see [`normalize`]).
pub(super) type Nodes = HashMap<Box<str>, Node, FastHash>;

/// The hasher of the model's maps of paths and names: FxHash (rustc's
/// own), one rotate, xor and multiply per eight bytes. Their keys are the
/// world's paths and names, which the caller wrote, and the model looks a
/// path up once per component; SipHash with a random key, the std
/// default, costs several times more per lookup and a thread-local read
/// per map.
pub(super) type FastHash = BuildHasherDefault<FxHasher>;

/// See [`FastHash`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(w);
            self.add(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Node {
    Dir,
    /// Any other file that is not a namespace (see [`FileSpec`]).
    File,
    /// A path the caller may not look up ([`FileSpec::Forbidden`]).
    Forbidden,
    Ns(NsId),
}

/// The path after `.` and `..` (lexically: the model has no symlinks), as
/// `/a/b` (empty for the root), and whether it ends with a slash.
///
/// Non-UTF-8 bytes read as U+FFFD, so two paths that differ only there name
/// one file.
pub(super) fn normalize(path: &Path) -> (Cow<'_, str>, bool) {
    // Paths are almost always written in normal form already: then the
    // path is its own normal form and resolving it allocates nothing.
    if let Some(text) = path.to_str() {
        // ("/" is not: its one component after the slash is empty.)
        // Split as bytes: '/' is one byte in UTF-8, and a byte split is
        // cheaper than a char search on paths this short.
        let normal = text.starts_with('/')
            && text.as_bytes()[1..]
                .split(|b| *b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..");
        if normal {
            return (Cow::Borrowed(text), false);
        }
    }
    let mut norm = String::with_capacity(path.as_os_str().len());
    for c in path.components() {
        match c {
            Component::Normal(part) => {
                norm.push('/');
                norm.push_str(&part.to_string_lossy());
            }
            Component::ParentDir => {
                let parent = norm.rfind('/').unwrap_or(0);
                norm.truncate(parent);
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let text = path.as_os_str().as_encoded_bytes();
    (Cow::Owned(norm), text.len() > 1 && text.ends_with(b"/"))
}

/// The byte offsets of the slashes in `path`, in order.
pub(super) fn slashes(path: &str) -> impl Iterator<Item = usize> + '_ {
    path.bytes()
        .enumerate()
        .filter_map(|(i, b)| (b == b'/').then_some(i))
}

impl Model {
    /// What `path` names now, or the errno of resolving it.
    ///
    /// As the kernel walks: a path of `PATH_MAX` bytes or more is refused
    /// before the walk (`getname`: ENAMETOOLONG); then each component in
    /// turn is looked up in the directory the walk reached, and a
    /// component over `NAME_MAX` bytes is refused there (ENAMETOOLONG), so
    /// a missing directory before it answers ENOENT first. (The model
    /// walks the path after `.` and `..`; a long component that a later
    /// `..` cancels is one the kernel would still refuse.)
    pub(super) fn resolve(&self, path: &Path) -> Result<Node, Errno> {
        // getname: an empty name is ENOENT (without AT_EMPTY_PATH).
        if path.as_os_str().is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.as_os_str().len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let (norm, trailing_slash) = normalize(path);
        let component_too_long =
            |start: usize, end: usize| end.saturating_sub(start + 1) > NAME_MAX;
        // Every component before the last must be a directory.
        let mut start = 0;
        for end in slashes(&norm).skip(1) {
            if component_too_long(start, end) {
                return Err(Errno::ENAMETOOLONG);
            }
            match self.node(&norm[..end]) {
                None => return Err(Errno::ENOENT),
                Some(Node::Dir) => {}
                Some(_) => return Err(Errno::ENOTDIR),
            }
            start = end;
        }
        if component_too_long(start, norm.len()) {
            return Err(Errno::ENAMETOOLONG);
        }
        match self.node(&norm) {
            None => Err(Errno::ENOENT),
            Some(Node::Forbidden) => Err(Errno::EACCES),
            Some(node) if trailing_slash && node != Node::Dir => Err(Errno::ENOTDIR),
            Some(node) => Ok(node),
        }
    }

    /// The node at a path in normal form (see [`normalize`]).
    fn node(&self, path: &str) -> Option<Node> {
        // Outside /proc (almost every path): the world's nodes alone.
        if let Some(rest) = path.strip_prefix('/') {
            if !rest.starts_with("proc") {
                return self.nodes.get(path).copied();
            }
        }
        let mut parts = path.split('/').skip(1);
        let first = (parts.next(), parts.next(), parts.next(), parts.next());
        let more = parts.next().is_some();
        match (first, more) {
            ((None, ..) | (Some("proc"), None, ..), _) => return Some(Node::Dir),
            ((Some("proc"), Some("self"), None, _), _)
            | ((Some("proc"), Some("self"), Some("ns"), None), _) => return Some(Node::Dir),
            ((Some("proc"), Some("self"), Some("ns"), Some(entry)), false) => {
                return self.proc_self_ns(entry).map(Node::Ns)
            }
            ((Some("proc"), Some("self"), ..), _) => return None,
            ((Some("proc"), Some(pid), rest, entry), more) => {
                if let Some(node) = self.proc_pid(pid, rest, entry, more) {
                    return node;
                }
            }
            _ => {}
        }
        self.nodes.get(path).copied()
    }

    /// `/proc/<pid>`, `/proc/<pid>/ns` and `/proc/<pid>/ns/<entry>` of a
    /// world process: `None` when `pid` is none of theirs (the world's files
    /// decide), else what the path is (`Some(None)`: missing). A reaped
    /// process has no directory; an exited one has no namespaces
    /// (`ns_get_path`: ENOENT); reading a link needs ptrace access
    /// (`proc_ns_get_link`, checked first: EACCES).
    fn proc_pid(
        &self,
        pid: &str,
        rest: Option<&str>,
        entry: Option<&str>,
        more: bool,
    ) -> Option<Option<Node>> {
        let p = self.kernel.process(pid.parse().ok()?)?;
        let proc = &self.kernel.processes[p];
        if proc.state == ProcessState::Reaped {
            return Some(None);
        }
        Some(match (rest, entry, more) {
            (None, ..) | (Some("ns"), None, _) => Some(Node::Dir),
            (Some("ns"), Some(entry), false) => {
                if !self.kernel.may_ptrace(p) {
                    Some(Node::Forbidden)
                } else if proc.state == ProcessState::Exited {
                    None
                } else {
                    Kind::ALL.into_iter().find_map(|k| {
                        if entry == k.proc_name() {
                            Some(Node::Ns(proc.ns[k.index()]))
                        } else if entry == k.proc_name_for_children() {
                            Some(Node::Ns(match k {
                                Kind::Time => proc.time_for_children,
                                _ => proc.ns[k.index()],
                            }))
                        } else {
                            None
                        }
                    })
                }
            }
            _ => None,
        })
    }

    /// `/proc/self/ns/<entry>`: the caller's namespace now (namespaces(7)).
    fn proc_self_ns(&self, entry: &str) -> Option<NsId> {
        let c = &self.kernel.caller;
        Kind::ALL.into_iter().find_map(|k| {
            if entry == k.proc_name() {
                Some(c.ns[k.index()])
            } else if entry == k.proc_name_for_children() {
                match k {
                    Kind::Pid if !self.kernel.spaces[c.pid_for_children].has_init => None,
                    Kind::Pid => Some(c.pid_for_children),
                    _ => Some(c.time_for_children),
                }
            } else {
                None
            }
        })
    }
}
