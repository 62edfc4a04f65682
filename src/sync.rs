//! The hand-off between the process that applies a plan (the child) and
//! the process that serves its sync points (its parent): one channel, one
//! typed protocol, one implementation of each side. `nsapply run`
//! ([`crate::run`]) and the real-kernel tests (`nsapply_harness::realize`) both use
//! it, so the tests check the path that ships.
//!
//! * [`Channel`]: a Unix stream socket pair (close-on-exec), one JSON
//!   document per line, written with `MSG_NOSIGNAL` (a peer that died is
//!   an EPIPE, never a SIGPIPE in the caller).
//! * [`ToParent`] and [`ToChild`]: every message either side sends.
//! * [`ChildSync`]: the child's [`SyncHooks`]: it reports the sync point
//!   and waits for the parent's answer.
//! * [`answer_sync`]: the parent's side of one sync point: at `id-mapping`
//!   it writes `setgroups`, `uid_map` and `gid_map` of exactly its child,
//!   identified by a pidfd and reached through a checked procfs
//!   ([`write_id_maps`]); `cgroup-placed` is acknowledged (the child stays
//!   in the parent's cgroup).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::apply::{SyncHooks, SyncRequest};
use crate::config::{id_map_text, IdMapping};
use crate::error::{Errno, MapFile, SyncError};
use crate::plan::Plan;
use crate::plan::SyncPoint;
use crate::syscall::process::{Exit, Pidfd};
use crate::syscall::procfs::{ProcRoot, WriteError};
use crate::syscall::Syscall;
use crate::trace::{Trace, TraceError};

/// Why a process of `nsapply run` below the caller failed, as it reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Failure {
    /// The plan failed; the trace error says which step.
    Apply {
        /// The error of the run.
        error: TraceError,
    },
    /// execvp(3) of the command failed.
    Exec {
        /// The program as given.
        program: String,
        /// The errno, when the failure is a system call's.
        errno: Option<Errno>,
        /// The error as the standard library put it.
        message: String,
    },
    /// fork(2) of the process that applies the plan failed.
    Fork {
        /// The errno.
        errno: Errno,
    },
    /// A process of the run could not be made or watched, or one of them
    /// ended before its time.
    Supervise {
        /// What was being done, or what happened.
        what: String,
        /// The errno, when a call failed.
        errno: Option<Errno>,
    },
}

/// A message from the child to its parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub enum ToParent {
    /// The child reached a sync point and waits for [`ToChild::Ack`] or
    /// [`ToChild::Refused`].
    Sync {
        /// Which one.
        point: SyncPoint,
    },
    /// The plan is applied and the command's process exists, stopped before
    /// exec (`nsapply run`): it starts on [`ToChild::Start`].
    Applied {
        /// The steps taken.
        trace: Trace,
    },
    /// The command ended (`nsapply run`), reported by its supervisor.
    Exited {
        /// How.
        exit: Exit,
    },
    /// The run failed in the child (`nsapply run`); it exits right after.
    Failed {
        /// Why.
        failure: Failure,
        /// The steps taken, when the failure came before the command
        /// started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<Trace>,
    },
}

/// A message from the parent to its child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub enum ToChild {
    /// The sync point's work is done: go on.
    Ack,
    /// The sync point's work failed: the run stops with this error.
    Refused {
        /// Why.
        error: SyncError,
    },
    /// The trace is written: the command may start (`nsapply run`).
    Start,
    /// Forward this signal to the command (`nsapply run`); kept until the
    /// command has started.
    Signal {
        /// The signal number.
        signal: i32,
        /// For a terminal's signal: the terminal's foreground process
        /// group, which the terminal sent it to already (the command has it
        /// if it is in that group).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        terminal_group: Option<i32>,
    },
}

/// One end of the channel between the two processes.
#[derive(Debug)]
pub struct Channel {
    reader: BufReader<File>,
}

impl Channel {
    /// A connected pair: `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
    /// Give one end to each process and drop the other there.
    ///
    /// # Errors
    ///
    /// The errno of socketpair(2).
    pub fn pair() -> Result<(Channel, Channel), Errno> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Errno(e as i32))?;
        Ok((Channel::from_fd(a), Channel::from_fd(b)))
    }

    fn from_fd(fd: OwnedFd) -> Channel {
        Channel {
            reader: BufReader::new(File::from(fd)),
        }
    }

    /// Sends one message: one write of one line.
    ///
    /// # Errors
    ///
    /// [`SyncError::Channel`] with the errno of send(2) (EPIPE: the other
    /// side is gone).
    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<(), SyncError> {
        use nix::sys::socket::{send, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut line = serde_json::to_vec(message).map_err(|e| SyncError::Protocol {
            message: format!("encoding a message: {e}"),
        })?;
        line.push(b'\n');
        let fd = self.reader.get_ref().as_raw_fd();
        let mut rest = &line[..];
        while !rest.is_empty() {
            match send(fd, rest, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(SyncError::Channel {
                        what: "sending to the other process".to_owned(),
                        errno: Some(Errno(e as i32)),
                    })
                }
            }
        }
        Ok(())
    }

    /// Receives one message; `None` when the other side closed its end
    /// (it exited) and every message it sent has been read.
    ///
    /// # Errors
    ///
    /// [`SyncError::Channel`] with the errno of read(2), or
    /// [`SyncError::Protocol`] for a line that is not a message.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, SyncError> {
        let mut line = String::new();
        // read_line retries EINTR itself (BufRead::read_until ignores every
        // ErrorKind::Interrupted): any error here is the message's end.
        match self.reader.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => {
                return Err(match Errno::of_io(&e) {
                    Some(errno) => SyncError::Channel {
                        what: "reading from the other process".to_owned(),
                        errno: Some(errno),
                    },
                    None => SyncError::Protocol {
                        message: format!("a message that is not UTF-8: {e}"),
                    },
                })
            }
        }
        if !line.ends_with('\n') {
            return Err(SyncError::Protocol {
                message: format!("a message cut short by the end of the channel: {line:?}"),
            });
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| SyncError::Protocol {
                message: format!("{e}: {:?}", line.trim_end()),
            })
    }

    /// Whether a whole message is already buffered, so [`Channel::recv`]
    /// returns without reading (poll(2) on the socket would not show it).
    pub fn has_buffered_message(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }

    /// The socket, for poll(2).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.reader.get_ref().as_fd()
    }
}

/// The child's side of the sync points: report the point, wait for the
/// answer. Signals the parent forwards meanwhile ([`ToChild::Signal`]) are
/// kept in [`ChildSync::signals`] for the command, which does not exist yet.
pub struct ChildSync<'a> {
    channel: &'a mut Channel,
    /// Signals received while waiting, in order, each with the terminal's
    /// foreground group when a terminal sent it ([`ToChild::Signal`]).
    pub signals: Vec<(i32, Option<i32>)>,
    after_id_mapping: Option<fn() -> Result<(), Errno>>,
    /// Sync points whose answer is known to be an acknowledgement without
    /// asking ([`ChildSync::answered_here`]).
    answered_here: Vec<SyncPoint>,
    /// Writes this process's own id maps at `id-mapping`, instead of the
    /// parent ([`ChildSync::id_maps_here`]).
    id_maps_here: Option<&'a dyn Fn() -> Result<(), SyncError>>,
}

impl std::fmt::Debug for ChildSync<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSync")
            .field("channel", &self.channel)
            .field("signals", &self.signals)
            .field("after_id_mapping", &self.after_id_mapping.is_some())
            .field("answered_here", &self.answered_here)
            .field("id_maps_here", &self.id_maps_here.is_some())
            .finish()
    }
}

impl<'a> ChildSync<'a> {
    /// Sync hooks over `channel`.
    pub fn new(channel: &'a mut Channel) -> ChildSync<'a> {
        ChildSync {
            channel,
            signals: Vec::new(),
            after_id_mapping: None,
            answered_here: Vec::new(),
            id_maps_here: None,
        }
    }

    /// Acknowledges `point` without a message: for a parent whose answer
    /// to it is always an acknowledgement (`nsapply run`'s at
    /// `cgroup-placed`, where [`answer_sync`] does nothing), the round trip
    /// only costs time. The trace is the same: the hook answers `Ok`.
    #[must_use]
    pub fn answered_here(mut self, point: SyncPoint) -> ChildSync<'a> {
        self.answered_here.push(point);
        self
    }

    /// Answers `id-mapping` with `write` in this process, without a
    /// message: for a parent that would make the same writes
    /// ([`writes_its_own_id_maps`]). Its error is the sync point's, as the
    /// parent's refusal would be, but for a refusal of `setgroups` or
    /// `uid_map` by permission (EPERM, EACCES): nothing the parent cannot
    /// write again has been written then, and the parent is asked after
    /// all. The kernel's own checks pass alike for the process inside and
    /// its parent, but a security module may confine only the process that
    /// created the namespace: Ubuntu's AppArmor (23.10 on, with
    /// `kernel.apparmor_restrict_unprivileged_userns` = 1) moves it into a
    /// profile that is refused every capability, and opening `setgroups`
    /// for writing and writing a map are capability checks, which its
    /// parent, outside, passes. [`ChildSync::after_id_mapping`] runs after
    /// either as after the parent's answer.
    #[must_use]
    pub fn id_maps_here(mut self, write: &'a dyn Fn() -> Result<(), SyncError>) -> ChildSync<'a> {
        self.id_maps_here = Some(write);
        self
    }

    /// Runs `f` once the parent acknowledged `id-mapping` (nsapply run: the
    /// child stops being dumpable once nobody needs its `/proc` files).
    #[must_use]
    pub fn after_id_mapping(mut self, f: fn() -> Result<(), Errno>) -> ChildSync<'a> {
        self.after_id_mapping = Some(f);
        self
    }

    /// Waits for the answer to the sync point just reported.
    fn answer(&mut self) -> Result<(), SyncError> {
        loop {
            match self.channel.recv::<ToChild>()? {
                Some(ToChild::Ack) => return Ok(()),
                Some(ToChild::Refused { error }) => return Err(error),
                Some(ToChild::Signal {
                    signal,
                    terminal_group,
                }) => self.signals.push((signal, terminal_group)),
                Some(ToChild::Start) => {
                    return Err(SyncError::Protocol {
                        message: "a start message in answer to a sync point".to_owned(),
                    })
                }
                None => {
                    return Err(SyncError::Channel {
                        what: "waiting for the parent's answer".to_owned(),
                        errno: None,
                    })
                }
            }
        }
    }
}

impl<S: Syscall + ?Sized> SyncHooks<S> for ChildSync<'_> {
    fn sync(&mut self, request: SyncRequest<'_>, _: &mut S) -> Result<(), SyncError> {
        let point = request.point();
        if self.answered_here.contains(&point) {
            return Ok(());
        }
        let written_here = match (point, self.id_maps_here) {
            (SyncPoint::IdMapping, Some(write)) => Some(write()),
            _ => None,
        };
        match written_here {
            Some(Ok(())) => {}
            Some(Err(e)) if !parent_may_write_the_maps_after(&e) => return Err(e),
            _ => {
                self.channel.send(&ToParent::Sync { point })?;
                self.answer()?;
            }
        }
        if let (SyncPoint::IdMapping, Some(f)) = (point, self.after_id_mapping) {
            f().map_err(|errno| SyncError::Caller {
                message: "making the process not dumpable after its maps were written".to_owned(),
                errno: Some(errno),
            })?;
        }
        Ok(())
    }
}

/// Whether the parent may still write the maps after this process's own
/// write failed with `error` ([`ChildSync::id_maps_here`]): a refusal by
/// permission of `setgroups` (nothing written) or of `uid_map` (`deny`
/// written, which the parent may write again while `gid_map` is empty).
/// Not after `gid_map` (`uid_map` is written, and a map is written once),
/// nor for any other error, which the parent's write would meet as well.
fn parent_may_write_the_maps_after(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::MapWrite {
            file: MapFile::Setgroups | MapFile::UidMap,
            errno: Errno::EPERM | Errno::EACCES,
        }
    )
}

/// The parent's work at one sync point of `child` (its pidfd): at
/// `id-mapping`, [`write_id_maps`] with the plan's mappings, denying
/// `setgroups` when this process is not root; at `cgroup-placed`, nothing
/// (the child stays in this process's cgroup, which becomes the root of its
/// cgroup namespace).
///
/// # Errors
///
/// As [`write_id_maps`].
pub fn answer_sync(
    point: SyncPoint,
    plan: &Plan,
    proc: &ProcRoot,
    child: &Pidfd,
) -> Result<(), SyncError> {
    match point {
        SyncPoint::IdMapping => write_id_maps(
            proc,
            child,
            plan.uid_mappings(),
            plan.gid_mappings(),
            !nix::unistd::geteuid().is_root(),
        ),
        SyncPoint::CgroupPlaced => Ok(()),
    }
}

/// Whether a process whose parent runs [`answer_sync`] with effective ids
/// `euid` and `egid` can write its own id maps (`uid` and `gid`, after
/// `unshare(CLONE_NEWUSER)`, through its own `/proc` files) with the same
/// effect: the parent is not root, so it writes `setgroups` `deny`, and
/// each map is the one line of size 1 that maps the parent's own id, the
/// only map user_namespaces(7) lets a writer without `CAP_SETUID` /
/// `CAP_SETGID` over the parent namespace write, from the parent namespace
/// or from inside (the process inside, being the namespace's owner with
/// the same effective ids, passes the same checks of the kernel's; a
/// security module that confines only the process inside refuses it, and
/// then the parent writes the maps after all, [`ChildSync::id_maps_here`]).
/// Any other map is left to the parent, whose errors and messages are then
/// unchanged.
///
/// A root parent writes `setgroups` `allow`; a process inside may map its
/// own gid only after `deny` (user_namespaces(7)), so a root parent's maps
/// are always its to write.
pub fn writes_its_own_id_maps(uid: &[IdMapping], gid: &[IdMapping], euid: u32, egid: u32) -> bool {
    let own = |maps: &[IdMapping], id: u32| matches!(maps, [m] if m.host_id == id && m.size == 1);
    euid != 0 && own(uid, euid) && own(gid, egid)
}

/// Writes the id maps of the user namespace of exactly the process `target`
/// refers to: `setgroups` `deny` first when `deny_setgroups` (a writer
/// without privilege over the parent user namespace must,
/// user_namespaces(7)), then `uid_map`, then `gid_map`, each in one write,
/// stopping at the first error.
///
/// The files are reached through `proc`, a checked procfs root
/// ([`ProcRoot`]), in the directory of the pid that procfs
/// gives the pidfd ([`ProcRoot::process_dir`]): never a directory chosen by
/// a pid number alone, which in a pid namespace that still sees another's
/// `/proc` names a different process.
///
/// # Errors
///
/// [`SyncError::Proc`] when `/proc` cannot be trusted to name the target;
/// [`SyncError::MapWrite`] with the file and the errno of open(2) or
/// write(2); [`SyncError::ShortWrite`].
pub fn write_id_maps(
    proc: &ProcRoot,
    target: &Pidfd,
    uid: &[IdMapping],
    gid: &[IdMapping],
    deny_setgroups: bool,
) -> Result<(), SyncError> {
    let dir = proc.process_dir(target)?;
    let write = |file: MapFile, text: &str| {
        dir.write_once(file.name(), text.as_bytes())
            .map_err(|e| match e {
                WriteError::Errno(errno) => SyncError::MapWrite { file, errno },
                WriteError::Short { written } => SyncError::ShortWrite {
                    file,
                    written,
                    len: text.len(),
                },
            })
    };
    if deny_setgroups {
        write(MapFile::Setgroups, "deny")?;
    }
    write(MapFile::UidMap, &id_map_text(uid))?;
    write(MapFile::GidMap, &id_map_text(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_over_a_channel_and_eof_is_none() {
        let (mut a, mut b) = Channel::pair().unwrap();
        let sent = [
            ToParent::Sync {
                point: SyncPoint::IdMapping,
            },
            ToParent::Exited {
                exit: Exit::Signal(15),
            },
            ToParent::Failed {
                failure: Failure::Exec {
                    program: "no\nsuch".into(),
                    errno: Some(Errno::ENOENT),
                    message: "No such file or directory (os error 2)".into(),
                },
                trace: None,
            },
            ToParent::Failed {
                failure: Failure::Supervise {
                    what: "the keeper process died".into(),
                    errno: None,
                },
                trace: Some(Trace::default()),
            },
            ToParent::Applied {
                trace: Trace::default(),
            },
        ];
        for m in &sent {
            a.send(m).unwrap();
        }
        a.send(&ToChild::Refused {
            error: SyncError::MapWrite {
                file: MapFile::GidMap,
                errno: Errno::EPERM,
            },
        })
        .unwrap();
        drop(a);
        for m in &sent {
            assert_eq!(b.recv::<ToParent>().unwrap().as_ref(), Some(m));
        }
        assert_eq!(
            b.recv::<ToChild>().unwrap(),
            Some(ToChild::Refused {
                error: SyncError::MapWrite {
                    file: MapFile::GidMap,
                    errno: Errno::EPERM
                }
            })
        );
        assert_eq!(b.recv::<ToParent>().unwrap(), None);
        // Sending to a closed peer is an errno, not a SIGPIPE.
        let err = b
            .send(&ToParent::Sync {
                point: SyncPoint::CgroupPlaced,
            })
            .unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EPIPE));
    }

    #[test]
    fn a_line_that_is_not_utf8_is_a_protocol_error_not_the_end() {
        use std::io::Write;
        let (a, mut b) = Channel::pair().unwrap();
        a.reader
            .get_ref()
            .write_all(b"{\"op\":\"\xff\"}\n")
            .unwrap();
        drop(a);
        let err = b.recv::<ToParent>().unwrap_err();
        assert!(
            matches!(&err, SyncError::Protocol { message } if message.contains("not UTF-8")),
            "{err:?}"
        );
    }

    #[test]
    fn child_sync_keeps_signals_and_returns_the_parents_refusal() {
        let (mut parent, mut child) = Channel::pair().unwrap();
        parent
            .send(&ToChild::Signal {
                signal: 15,
                terminal_group: None,
            })
            .unwrap();
        parent
            .send(&ToChild::Signal {
                signal: 10,
                terminal_group: Some(42),
            })
            .unwrap();
        parent.send(&ToChild::Ack).unwrap();
        let refusal = SyncError::Proc {
            reason: "test".into(),
            errno: None,
        };
        parent
            .send(&ToChild::Refused {
                error: refusal.clone(),
            })
            .unwrap();
        let mut sync = ChildSync::new(&mut child);
        let mut model = crate::model::Model::new(&crate::model::World::default()).unwrap();
        assert_eq!(sync.sync(SyncRequest::CgroupPlaced, &mut model), Ok(()));
        assert_eq!(sync.signals, [(15, None), (10, Some(42))]);
        assert_eq!(
            sync.sync(SyncRequest::CgroupPlaced, &mut model),
            Err(refusal)
        );
        drop(parent);
        let err = sync
            .sync(SyncRequest::CgroupPlaced, &mut model)
            .unwrap_err();
        assert!(matches!(err, SyncError::Channel { .. }), "{err:?}");
    }

    #[test]
    fn a_point_answered_here_sends_nothing_and_waits_for_nothing() {
        let (mut parent, mut child) = Channel::pair().unwrap();
        // An ack, then a refusal: were cgroup-placed asked, it would take
        // the ack, and id-mapping the refusal.
        parent.send(&ToChild::Ack).unwrap();
        parent
            .send(&ToChild::Refused {
                error: SyncError::Proc {
                    reason: "cgroup-placed was asked".into(),
                    errno: None,
                },
            })
            .unwrap();
        let mut sync = ChildSync::new(&mut child).answered_here(SyncPoint::CgroupPlaced);
        let mut model = crate::model::Model::new(&crate::model::World::default()).unwrap();
        assert_eq!(sync.sync(SyncRequest::CgroupPlaced, &mut model), Ok(()));
        let maps = SyncRequest::IdMapping { uid: &[], gid: &[] };
        assert_eq!(sync.sync(maps, &mut model), Ok(()));
        drop(sync);
        drop(child);
        // The parent saw id-mapping only.
        assert_eq!(
            parent.recv::<ToParent>().unwrap(),
            Some(ToParent::Sync {
                point: SyncPoint::IdMapping
            })
        );
        assert_eq!(parent.recv::<ToParent>().unwrap(), None);
    }

    #[test]
    fn id_maps_written_here_send_nothing_and_their_error_is_the_sync_points() {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static AFTER: AtomicUsize = AtomicUsize::new(0);
        let (mut parent, mut child) = Channel::pair().unwrap();
        // Were id-mapping asked, the parent's refusal would be its answer.
        parent
            .send(&ToChild::Refused {
                error: SyncError::Proc {
                    reason: "id-mapping was asked".into(),
                    errno: None,
                },
            })
            .unwrap();
        let writes = Cell::new(0);
        let refused = Cell::new(false);
        let write = || {
            writes.set(writes.get() + 1);
            if refused.get() {
                Err(SyncError::MapWrite {
                    file: MapFile::GidMap,
                    errno: Errno::EPERM,
                })
            } else {
                Ok(())
            }
        };
        let mut model = crate::model::Model::new(&crate::model::World::default()).unwrap();
        let maps = || SyncRequest::IdMapping { uid: &[], gid: &[] };
        let mut sync = ChildSync::new(&mut child)
            .id_maps_here(&write)
            .after_id_mapping(|| {
                AFTER.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        // Its Debug says which hooks are set (a closure has no Debug).
        let debug = format!("{sync:?}");
        assert!(
            debug.contains("after_id_mapping: true") && debug.contains("id_maps_here: true"),
            "{debug}"
        );
        assert_eq!(sync.sync(maps(), &mut model), Ok(()));
        assert_eq!((writes.get(), AFTER.load(Ordering::SeqCst)), (1, 1));
        refused.set(true);
        assert_eq!(
            sync.sync(maps(), &mut model),
            Err(SyncError::MapWrite {
                file: MapFile::GidMap,
                errno: Errno::EPERM,
            })
        );
        // A failed write is not followed by the after-hook.
        assert_eq!((writes.get(), AFTER.load(Ordering::SeqCst)), (2, 1));
        // cgroup-placed still asks the parent (it was not answered here),
        // and writes no map.
        assert!(sync.sync(SyncRequest::CgroupPlaced, &mut model).is_err());
        assert_eq!(writes.get(), 2);
        drop(sync);
        drop(child);
        assert_eq!(
            parent.recv::<ToParent>().unwrap(),
            Some(ToParent::Sync {
                point: SyncPoint::CgroupPlaced
            })
        );
        assert_eq!(parent.recv::<ToParent>().unwrap(), None);
    }

    #[test]
    fn a_permission_refusal_before_gid_map_leaves_the_maps_to_the_parent() {
        use std::cell::RefCell;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static AFTER: AtomicUsize = AtomicUsize::new(0);
        let refusal = |file, errno| SyncError::MapWrite { file, errno };
        let parents = SyncError::Proc {
            reason: "the parent's own refusal".into(),
            errno: None,
        };
        let (mut parent, mut child) = Channel::pair().unwrap();
        // The parent's answers to the two times it is asked; a third ask
        // would get a start message, a protocol error (not a wait that
        // never ends).
        parent.send(&ToChild::Ack).unwrap();
        parent
            .send(&ToChild::Refused {
                error: parents.clone(),
            })
            .unwrap();
        parent.send(&ToChild::Start).unwrap();
        // What this process's own writes meet, one a sync point.
        let own = RefCell::new(vec![
            SyncError::Proc {
                reason: "no pidfd of itself".into(),
                errno: Some(Errno::EMFILE),
            },
            refusal(MapFile::GidMap, Errno::EACCES),
            refusal(MapFile::Setgroups, Errno::ENOENT),
            refusal(MapFile::UidMap, Errno::EPERM),
            refusal(MapFile::Setgroups, Errno::EACCES),
        ]);
        let write = || Err(own.borrow_mut().pop().expect("a sync point too many"));
        let mut model = crate::model::Model::new(&crate::model::World::default()).unwrap();
        let maps = || SyncRequest::IdMapping { uid: &[], gid: &[] };
        let mut sync = ChildSync::new(&mut child)
            .id_maps_here(&write)
            .after_id_mapping(|| {
                AFTER.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        // setgroups refused (nothing written): the parent's answer counts.
        assert_eq!(sync.sync(maps(), &mut model), Ok(()));
        assert_eq!(AFTER.load(Ordering::SeqCst), 1);
        // uid_map refused (deny written, which the parent writes again):
        // the parent's answer counts, a refusal too.
        assert_eq!(sync.sync(maps(), &mut model), Err(parents));
        // Not asked: setgroups missing, gid_map refused (uid_map is
        // written), any error but a map write's.
        assert_eq!(
            sync.sync(maps(), &mut model),
            Err(refusal(MapFile::Setgroups, Errno::ENOENT))
        );
        assert_eq!(
            sync.sync(maps(), &mut model),
            Err(refusal(MapFile::GidMap, Errno::EACCES))
        );
        assert!(matches!(
            sync.sync(maps(), &mut model),
            Err(SyncError::Proc {
                errno: Some(Errno::EMFILE),
                ..
            })
        ));
        assert_eq!(AFTER.load(Ordering::SeqCst), 1);
        drop(sync);
        drop(child);
        let asked = ToParent::Sync {
            point: SyncPoint::IdMapping,
        };
        assert_eq!(parent.recv::<ToParent>().unwrap(), Some(asked.clone()));
        assert_eq!(parent.recv::<ToParent>().unwrap(), Some(asked));
        assert_eq!(parent.recv::<ToParent>().unwrap(), None);
    }

    #[test]
    fn only_an_unprivileged_parents_own_one_id_maps_are_written_by_the_child() {
        let m = |host_id, size| IdMapping {
            container_id: 0,
            host_id,
            size,
        };
        let own =
            |uid: &[IdMapping], gid: &[IdMapping]| writes_its_own_id_maps(uid, gid, 1000, 100);
        assert!(own(&[m(1000, 1)], &[m(100, 1)]));
        // The container id does not matter: the parent's id is mapped.
        let inside = IdMapping {
            container_id: 5,
            ..m(1000, 1)
        };
        assert!(own(&[inside], &[m(100, 1)]));
        // Another host id, a wider range, two lines or none: the parent's.
        assert!(!own(&[m(1001, 1)], &[m(100, 1)]));
        assert!(!own(&[m(1000, 1)], &[m(1000, 1)]));
        assert!(!own(&[m(1000, 2)], &[m(100, 1)]));
        assert!(!own(&[m(1000, 1)], &[m(100, 2)]));
        assert!(!own(&[m(1000, 1), m(1000, 1)], &[m(100, 1)]));
        assert!(!own(&[m(1000, 1)], &[]));
        assert!(!own(&[], &[m(100, 1)]));
        // A root parent writes setgroups allow, which a child cannot.
        assert!(!writes_its_own_id_maps(&[m(0, 1)], &[m(0, 1)], 0, 0));
        assert!(!writes_its_own_id_maps(&[m(0, 1)], &[m(0, 1)], 1, 0));
        assert!(writes_its_own_id_maps(&[m(1, 1)], &[m(0, 1)], 1, 0));
    }

    #[test]
    fn a_garbled_or_cut_line_is_a_protocol_error() {
        use std::io::Write;
        let (a, mut b) = Channel::pair().unwrap();
        let mut raw = a.reader.into_inner();
        raw.write_all(b"{\"msg\":\"nonsense\"}\n{\"msg\":\"ack\"")
            .unwrap();
        drop(raw);
        assert!(matches!(
            b.recv::<ToChild>(),
            Err(SyncError::Protocol { .. })
        ));
        assert!(matches!(
            b.recv::<ToChild>(),
            Err(SyncError::Protocol { .. })
        ));
    }
}
