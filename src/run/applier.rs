//! C1: applies the plan, makes the command's process (C2), and supervises
//! it: the trace goes to P0 before the command may start, signals from P0
//! go to C2, the command's end (or its failure to exec) goes back to P0,
//! and what the command left behind is ended with it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::command::{self, CommandStart, Report};
use super::{joins_pid_namespace, reap};
use crate::apply::apply;
use crate::config::{Propagation, TimeOffset};
use crate::error::{Errno, SyncError};
use crate::kind::{Kind, KindSet};
use crate::plan::{Plan, Step, SyncPoint};
use crate::sync::{
    write_id_maps, writes_its_own_id_maps, Channel, ChildSync, Failure, ToChild, ToParent,
};
use crate::syscall::linux::{self, Linux};
use crate::syscall::process::{self, Exit, Pidfd};
use crate::syscall::procfs::ProcRoot;
use crate::syscall::{Forked, Syscall, ThreadCountError};
use crate::trace::TraceError;

/// How long a pid-namespace middle process may take to end its command
/// and the orphans it adopted, once told to, before it is killed.
const MIDDLE_GRACE: Duration = Duration::from_secs(5);

/// How long C1 waits for the command's process to be reaped after it
/// killed it (a zombie held by a tracer outside the run is left then).
const REAP_LIMIT: Duration = Duration::from_secs(5);

/// What C1 needs from the caller.
pub(super) struct Applier<'a> {
    pub plan: &'a Plan,
    pub program: &'a OsString,
    pub command: &'a [OsString],
    pub init: bool,
    /// The procfs P0 checked before the first fork.
    pub proc: &'a ProcRoot,
    /// An exec's target, held since it was resolved ([`super::run_exec`]).
    pub target: Option<&'a Pidfd>,
}

/// The pipes between C1 and the command's process, made before the apply
/// so that the plan's fork opens nothing (its only errors are fork's).
struct Pipes {
    /// C1 writes one byte when the command may start; its end (C1 gone)
    /// is what the command's process, and a middle process, watch.
    go: (File, File),
    /// JSON lines from the command's process ([`Report`]).
    report: (File, File),
}

impl Applier<'_> {
    /// Whether a middle process stands between C1 and the command: an
    /// init asked for, or a joined pid namespace (orphans there go to the
    /// nearest subreaper of that namespace, never to K or C1, so the
    /// middle process is that subreaper; src/run/mod.rs).
    fn has_middle(&self) -> bool {
        self.init || joins_pid_namespace(self.plan)
    }

    /// C1's whole life (and C2's, which comes out of it); the exit status.
    pub(super) fn main(self, mut channel: Channel, keeper_alive: File, keeper: i32) -> i32 {
        // Die with the keeper, until there are children to end first.
        if linux::die_with_parent(keeper).is_err() {
            return 1;
        }
        // Every action back to its default (whatever the caller ignored),
        // then every signal blocked: C1 ends by SIGKILL or by itself. The
        // command's process empties the mask before exec.
        let _ = process::reset_signals();
        let _ = process::block_all_signals();
        let maps = self.plan.steps().contains(&Step::Sync {
            point: SyncPoint::IdMapping,
        });
        // DESIGN §4 has the parent write the maps. When an unprivileged
        // caller's maps are its own ids, one line each (the only maps it
        // may write), we write the same files with the same text ourselves
        // (`writes_its_own_id_maps` says why the kernel's answer is the
        // same): no round trip, and P0 writes into no other process (issue
        // 15); P0 is asked after all when a security module refuses us
        // (`ChildSync::id_maps_here`). Our ids are P0's: neither the keeper
        // nor we changed them.
        let own_maps = maps
            && writes_its_own_id_maps(
                self.plan.uid_mappings(),
                self.plan.gid_mappings(),
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            );
        // Our maps, written by an unprivileged P0 or by us, go through our
        // /proc files, which needs us dumpable until then (the keeper, not
        // dumpable, made us so); otherwise nothing does.
        let _ = linux::set_dumpable(maps);
        // What the command leaves behind without a pid namespace comes to
        // us when its parent dies, to be ended with it (the keeper above
        // is one too, for when we are gone).
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            let _ = channel.send(&ToParent::Failed {
                failure: Failure::Supervise {
                    what: "PR_SET_CHILD_SUBREAPER in the child that applies the plan".to_owned(),
                    errno: Some(Errno(e as i32)),
                },
                trace: None,
            });
            return 1;
        }
        let pipes = match process::pipe().and_then(|go| Ok((go, process::pipe()?))) {
            Ok((go, report)) => Pipes { go, report },
            Err(errno) => {
                let _ = channel.send(&ToParent::Failed {
                    failure: Failure::Supervise {
                        what: "creating the pipes to the command's process".to_owned(),
                        errno: Some(errno),
                    },
                    trace: None,
                });
                return 1;
            }
        };
        let middle = self.has_middle();
        let mut backend = Supervised {
            keeper,
            proc: self.proc,
            target: self.target,
            // A pid-namespace middle process outlives C1 long enough to
            // end its command and orphans (it watches the go pipe); every
            // other command's process dies with C1.
            dies_with_c1: !middle || self.init,
        };
        let (proc, plan) = (self.proc, self.plan);
        let write_own_maps = move || {
            // Ourselves as a pidfd, so the files are reached the way P0
            // reaches them: the checked procfs, the pid it gives us.
            let me =
                Pidfd::open(nix::unistd::getpid().as_raw()).map_err(|errno| SyncError::Proc {
                    reason: "pidfd_open of the process that applies the plan, itself".to_owned(),
                    errno: Some(errno),
                })?;
            write_id_maps(proc, &me, plan.uid_mappings(), plan.gid_mappings(), true)
        };
        // P0 does nothing at cgroup-placed (`answer_sync`: C1 stays in its
        // cgroup), so C1 answers it itself: one round trip less (issue 15).
        let mut hooks = ChildSync::new(&mut channel)
            .after_id_mapping(|| linux::set_dumpable(false))
            .answered_here(SyncPoint::CgroupPlaced);
        if own_maps {
            hooks = hooks.id_maps_here(&write_own_maps);
        }
        let applied = apply(self.plan, &mut backend, &mut hooks);
        let pending = std::mem::take(&mut hooks.signals);
        drop(hooks);
        let trace = applied.trace();
        let child = match applied.result {
            Ok(Some(Forked::Child)) => return self.command_main(channel, keeper_alive, pipes),
            Err(e) => {
                let _ = channel.send(&ToParent::Failed {
                    failure: Failure::Apply {
                        error: TraceError::from(&e),
                    },
                    trace: Some(trace),
                });
                return 1;
            }
            Ok(Some(Forked::Parent { child })) => child,
            // No pid or time namespace: the plan does not fork, but the
            // command still runs in a child of ours, so C1 can end it when
            // P0 dies, whatever credentials it took on.
            Ok(None) => match backend.fork() {
                Ok(Forked::Child) => return self.command_main(channel, keeper_alive, pipes),
                Ok(Forked::Parent { child }) => child,
                Err(errno) => {
                    let _ = channel.send(&ToParent::Failed {
                        failure: Failure::Supervise {
                            what: "fork of the command's process".to_owned(),
                            errno: Some(errno),
                        },
                        trace: Some(trace),
                    });
                    return 1;
                }
            },
        };
        let Pipes {
            go: (go_r, go_w),
            report: (report_r, report_w),
        } = pipes;
        drop((go_r, report_w));
        // Our unreaped child: its pid names it.
        let pidfd = match Pidfd::open(child) {
            Ok(p) => p,
            Err(errno) => {
                process::kill_and_reap(child);
                let _ = channel.send(&ToParent::Failed {
                    failure: Failure::Supervise {
                        what: "pidfd_open of the command's process".to_owned(),
                        errno: Some(errno),
                    },
                    trace: Some(trace),
                });
                return 1;
            }
        };
        let mut watch = Watch {
            proc: self.proc,
            channel,
            command: child,
            pidfd,
            go: Some(go_w),
            report: Some(report_r),
            keeper_alive,
            middle: middle && !self.init,
            has_middle: middle,
            reports: Vec::new(),
            report_rest: Vec::new(),
            pending,
        };
        // The command's process is in the caller's process group (a
        // terminal's job): C1 is, and it inherits it (the keeper left it).
        if watch
            .channel
            .send(&ToParent::Applied {
                trace: trace.clone(),
            })
            .is_err()
        {
            return watch.shut_down(None);
        }
        // Always P0's word, with or without a trace file: a P0 that
        // stopped the run (and reports it failed) meanwhile never says go,
        // so CMD runs only in a run that succeeds (DESIGN §8). Starting
        // without it would save a round trip (issue 15) and break that.
        match watch.wait_for_start() {
            Start::Go => {}
            Start::CallerGone => return watch.shut_down(None),
            Start::KeeperGone => {
                return watch.shut_down(Some("the keeper process died before the command started"))
            }
        }
        if !watch.start() {
            return watch.shut_down(Some("the keeper process died before the command started"));
        }
        watch.supervise()
    }

    /// C2: the command (or a middle process that forks it). Keeps nothing
    /// of C1's but its ends of the pipes.
    fn command_main(self, channel: Channel, keeper_alive: File, pipes: Pipes) -> i32 {
        drop((channel, keeper_alive));
        let Pipes {
            go: (go_r, go_w),
            report: (report_r, report_w),
        } = pipes;
        drop((go_w, report_r));
        command::main(CommandStart {
            program: self.program,
            command: self.command,
            init: self.init,
            middle: self.has_middle(),
            go: go_r,
            report: report_w,
            proc: self.proc,
        })
    }
}

/// C1 once the command's process exists.
struct Watch<'a> {
    proc: &'a ProcRoot,
    channel: Channel,
    command: i32,
    pidfd: Pidfd,
    /// The go pipe's write end: closing it tells the command's process
    /// (and a middle process) that C1 is gone.
    go: Option<File>,
    /// The report pipe's read end, until its end.
    report: Option<File>,
    /// The keeper's pipe: its end means the keeper died.
    keeper_alive: File,
    /// The command's process is a pid-namespace middle process, which ends
    /// its command and orphans itself when told to.
    middle: bool,
    /// The command's process is a middle process (that, or init), which
    /// reports how the command ended.
    has_middle: bool,
    reports: Vec<Report>,
    /// What the report pipe held after its last complete line.
    report_rest: Vec<u8>,
    /// Signals P0 sent before the command started, each with the
    /// terminal's group when a terminal sent it.
    pending: Vec<(i32, Option<i32>)>,
}

/// How waiting for P0's start ended.
enum Start {
    /// The trace is written: the command may start.
    Go,
    /// P0 is gone (or stopped the run).
    CallerGone,
    /// The keeper died.
    KeeperGone,
}

impl Watch<'_> {
    /// Waits for P0's start (the trace is written); keeps the signals
    /// that come meanwhile.
    fn wait_for_start(&mut self) -> Start {
        loop {
            if !self.channel.has_buffered_message() {
                let mut fds = [
                    PollFd::new(self.channel.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.keeper_alive.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return Start::CallerGone,
                }
                let keeper_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
                let from_p0 = fds[0].revents().is_some_and(|r| !r.is_empty());
                if keeper_gone {
                    return Start::KeeperGone;
                }
                if !from_p0 {
                    continue;
                }
            }
            match self.channel.recv::<ToChild>() {
                Ok(Some(ToChild::Start)) => return Start::Go,
                Ok(Some(ToChild::Signal {
                    signal,
                    terminal_group,
                })) => self.pending.push((signal, terminal_group)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Start::CallerGone,
            }
        }
    }

    /// Lets the command's process go on, then sends it what came before;
    /// false (and nothing started) when the keeper is gone by now.
    fn start(&mut self) -> bool {
        let mut fds = [PollFd::new(self.keeper_alive.as_fd(), PollFlags::POLLIN)];
        if matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            return false;
        }
        if let Some(go) = &mut self.go {
            // EPIPE: it is gone already; its end is seen below. (SIGPIPE
            // is blocked here.)
            let _ = go.write_all(&[1]);
        }
        for (signal, group) in std::mem::take(&mut self.pending) {
            self.forward(signal, group);
        }
        true
    }

    /// Sends `signal` to the command's process, unless a terminal sent it
    /// to its foreground process group (`terminal_group`) and the command's
    /// process is in that group: it has it already. A middle process gets
    /// it as a message on the go pipe instead, with whether a terminal sent
    /// it: it decides, knowing the command (it is not in the caller's
    /// process group itself).
    fn forward(&mut self, signal: i32, terminal_group: Option<i32>) {
        if self.has_middle {
            if let (Some(go), Ok(sig)) = (&mut self.go, u8::try_from(signal)) {
                // A short message: one write, atomic on a pipe. EPIPE: it
                // has ended.
                let _ = go.write_all(&[sig, u8::from(terminal_group.is_some())]);
            }
            return;
        }
        if let Some(group) = terminal_group {
            let its = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(self.command)));
            if its.is_ok_and(|g| g.as_raw() == group) {
                return;
            }
        }
        if let Ok(sig) = Signal::try_from(signal) {
            // ESRCH: it has ended, and its end will be reported.
            let _ = self.pidfd.send_signal(sig);
        }
    }

    /// P0 (`why` is `None`) or the keeper is gone: the command and what it
    /// left end now; P0, if there, learns why.
    fn shut_down(mut self, why: Option<&str>) -> i32 {
        self.end_command();
        if let Some(what) = why {
            let _ = self.channel.send(&ToParent::Failed {
                failure: Failure::Supervise {
                    what: what.to_owned(),
                    errno: None,
                },
                trace: None,
            });
        }
        1
    }

    /// Ends the command's process and everything it left: a middle
    /// process is told (the go pipe closes) and given its grace; any
    /// other is killed.
    fn end_command(&mut self) {
        if self.middle {
            self.go = None;
            if let Ok(Some(_)) =
                reap::wait_ended(self.proc, &self.pidfd, self.command, MIDDLE_GRACE)
            {
                reap::end_children(self.proc, &[]);
                return;
            }
        }
        let _ = self.pidfd.send_signal(Signal::SIGKILL);
        let _ = reap::wait_ended(self.proc, &self.pidfd, self.command, REAP_LIMIT);
        reap::end_children(self.proc, &[]);
    }

    /// Forwards signals, reads reports, and ends with the command.
    fn supervise(mut self) -> i32 {
        let mut ended_unreaped = false;
        loop {
            if self.channel.has_buffered_message() {
                if !self.take_message() {
                    return self.shut_down(None);
                }
                continue;
            }
            let mut fds = vec![
                PollFd::new(self.channel.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.keeper_alive.as_fd(), PollFlags::POLLIN),
            ];
            if !ended_unreaped {
                fds.push(PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN));
            }
            if let Some(r) = &self.report {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            let timeout = if ended_unreaped {
                PollTimeout::from(20u8)
            } else {
                PollTimeout::NONE
            };
            if let Err(e) = poll(&mut fds, timeout) {
                if e != nix::errno::Errno::EINTR {
                    drop(fds);
                    return self.shut_down(Some("poll in the supervising child failed"));
                }
                continue;
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            let from_p0 = ready(&fds[0]);
            let keeper_gone = ready(&fds[1]);
            let (command_ready, report_ready) = if ended_unreaped {
                (false, fds.get(2).is_some_and(ready))
            } else {
                (ready(&fds[2]), fds.get(3).is_some_and(ready))
            };
            drop(fds);
            if report_ready {
                self.read_reports(false);
            }
            if from_p0 && !self.take_message() {
                return self.shut_down(None);
            }
            if keeper_gone {
                return self.shut_down(Some("the keeper process died"));
            }
            if command_ready || ended_unreaped {
                match process::try_wait(self.command) {
                    Ok(Some(exit)) => return self.finish(Ok(exit)),
                    Ok(None) => {
                        // Ended, not reapable: traced by a process that
                        // has not collected its end. That tracer, if the
                        // command's own, came to us when the command
                        // ended: it goes, which releases the command.
                        ended_unreaped = true;
                        reap::end_children(self.proc, &[self.command]);
                    }
                    Err(errno) => return self.finish(Err(errno)),
                }
            }
        }
    }

    /// One message from P0; false at the channel's end (P0 is gone).
    fn take_message(&mut self) -> bool {
        match self.channel.recv::<ToChild>() {
            Ok(Some(ToChild::Signal {
                signal,
                terminal_group,
            })) => {
                self.forward(signal, terminal_group);
                true
            }
            Ok(Some(_)) => true,
            Ok(None) | Err(_) => false,
        }
    }

    /// Reads what the report pipe holds; with `to_end`, until its end
    /// (every writer is gone once the command's process is reaped and what
    /// it left is ended: the pipe is close-on-exec). A report may be longer
    /// than one read (an exec error naming a long program): lines are put
    /// together before they are parsed.
    fn read_reports(&mut self, to_end: bool) {
        let Some(r) = &mut self.report else { return };
        let mut buf = [0u8; 4096];
        loop {
            if !to_end {
                let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
                if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                    return;
                }
            }
            match r.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let rest = std::mem::take(&mut self.report_rest);
                    parse_reports(&mut self.reports, &rest);
                    self.report = None;
                    return;
                }
                Ok(n) => {
                    self.report_rest.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.report_rest.iter().rposition(|b| *b == b'\n') {
                        let lines: Vec<u8> = self.report_rest.drain(..=end).collect();
                        parse_reports(&mut self.reports, &lines);
                    }
                    // On until the pipe holds nothing more (without
                    // to_end, the poll above returns then).
                }
            }
        }
    }

    /// The command's process ended (reaped): end what it left, say how it
    /// ended. A plain command's process says it is about to exec (a
    /// report); ended without saying so, it was killed before the command
    /// started. A middle process reports the command's end; ended without,
    /// it was killed itself.
    fn finish(mut self, exit: Result<Exit, Errno>) -> i32 {
        // The command's run is over: so is that of what it left behind.
        reap::end_children(self.proc, &[]);
        self.read_reports(true);
        let mut ended = None;
        let mut failure = None;
        let mut exec = false;
        for r in std::mem::take(&mut self.reports) {
            match r {
                Report::Failed { failure: f } => failure = failure.or(Some(f)),
                Report::Ended { exit } => ended = Some(exit),
                Report::Exec => exec = true,
            }
        }
        let lost = |what: String| ToParent::Failed {
            failure: Failure::Supervise { what, errno: None },
            trace: None,
        };
        let msg = match (failure, ended, exit) {
            (Some(failure), _, _) => ToParent::Failed {
                failure,
                trace: None,
            },
            // A middle process reports its command's end; its own exit
            // status only repeats it.
            (None, Some(exit), _) => ToParent::Exited { exit },
            (None, None, Ok(exit)) if self.has_middle => lost(format!(
                "the process that runs the command ({}) ended without reporting how the command ended ({})",
                if self.middle { "in the joined pid namespace" } else { "init" },
                exit_text(exit)
            )),
            (None, None, Ok(exit)) if !exec => lost(format!(
                "the command's process ended before the command started ({})",
                exit_text(exit)
            )),
            (None, None, Ok(exit)) => ToParent::Exited { exit },
            (None, None, Err(errno)) => ToParent::Failed {
                failure: Failure::Supervise {
                    what: "waiting for the command".to_owned(),
                    errno: Some(errno),
                },
                trace: None,
            },
        };
        i32::from(self.channel.send(&msg).is_err())
    }
}

/// The reports in `text`, whole lines of JSON.
fn parse_reports(into: &mut Vec<Report>, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    into.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
}

fn exit_text(exit: Exit) -> String {
    match exit {
        Exit::Code(c) => format!("exit status {c}"),
        Exit::Signal(s) => format!("killed by signal {s}"),
    }
}

/// The Linux backend as C1 uses it: every call is [`Linux`]'s, but
///
/// * a namespace path is reopened through the procfs P0 checked before
///   the first fork ([`linux::open_ns_through`]), never through whatever
///   `/proc` is by then;
/// * a fork (the plan's, or the one for the command when the plan has
///   none) is made so that the command's process cannot outlive C1
///   unnoticed: C1 drops its own parent-death signal first (from then on
///   it must live to end the command when P0 dies), and the child arms
///   its own, except a pid-namespace middle process, which instead watches
///   the go pipe and ends its command and orphans when C1 is gone. Either
///   way the child learns of a C1 that died before it armed anything when
///   it reads the go pipe (its end, no byte).
struct Supervised<'a> {
    keeper: i32,
    proc: &'a ProcRoot,
    dies_with_c1: bool,
    /// An exec's target: its pidfd is the pidfd join's, and the
    /// per-namespace files are opened in its procfs directory
    /// ([`super::run_exec`]).
    target: Option<&'a Pidfd>,
}

impl Syscall for Supervised<'_> {
    type Fd = OwnedFd;

    /// With an exec's target held, the file is the target's own, whatever
    /// number the path gives (`/proc/<n>/ns/<name>`, as the plan and the
    /// trace name it): `ns/<name>` of the directory that the checked procfs
    /// shows for the target's pidfd ([`ProcRoot::process_dir`]). A target
    /// that has exited is ENOENT, which an exec plan reports as
    /// `target-exited`, as when its files are gone; no file of a process
    /// given its number since, nor of whatever a remounted `/proc` shows
    /// under that number, is opened.
    fn open_ns(&mut self, path: &Path) -> Result<OwnedFd, Errno> {
        let Some(target) = self.target else {
            return linux::open_ns_through(Some(self.proc), path);
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // No errno: the target has exited (`pid_of` reads -1), or this
        // procfs does not show it (0; `resolve` refused such a target):
        // ENOENT, `target-exited`.
        let dir = self
            .proc
            .process_dir(target)
            .map_err(|e| e.errno.unwrap_or(Errno::ENOENT))?;
        // The directory is bound to the target's process: a lookup in it
        // after the target exited fails (ENOENT) and never reaches a
        // process given the number since.
        dir.open_namespace(name)
    }
    fn ns_get_nstype(&mut self, fd: &OwnedFd) -> Result<i32, Errno> {
        Linux.ns_get_nstype(fd)
    }
    fn setns(&mut self, fd: &OwnedFd, kind: Kind) -> Result<(), Errno> {
        Linux.setns(fd, kind)
    }
    fn close(&mut self, fd: OwnedFd) {
        Linux.close(fd);
    }
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        Linux.unshare(kinds)
    }
    fn set_root_ids(&mut self) -> Result<(), Errno> {
        Linux.set_root_ids()
    }
    fn set_root_propagation(&mut self, propagation: Propagation) -> Result<(), Errno> {
        Linux.set_root_propagation(propagation)
    }
    fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        Linux.write_time_offsets(offsets)
    }
    /// One, without reading `/proc/self/stat`: C1 is a forked child of
    /// the single-threaded keeper (fork copies only the calling thread),
    /// and neither C1 nor its sync hooks (messages on a socket) start a
    /// thread; [`Supervised::fork`] relies on the same fact. Two reads of
    /// `/proc/self/stat` less per run (issue 15).
    fn thread_count(&mut self) -> Result<usize, ThreadCountError> {
        Ok(1)
    }
    /// With an exec's target held, a copy of its pidfd, whatever `pid`
    /// (`run_exec` refused a plan that joins another process than the one
    /// held): the number may belong to another process by now.
    fn pidfd_open(&mut self, pid: i32) -> Result<OwnedFd, Errno> {
        match self.target {
            Some(target) => target
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EMFILE))),
            None => Linux.pidfd_open(pid),
        }
    }
    fn setns_pidfd(&mut self, pidfd: &OwnedFd, kinds: KindSet) -> Result<(), Errno> {
        Linux.setns_pidfd(pidfd, kinds)
    }
    fn fork(&mut self) -> Result<Forked, Errno> {
        nix::sys::prctl::set_pdeathsig(None).map_err(|e| Errno(e as i32))?;
        // SAFETY: C1 is a forked child of the single-threaded keeper and
        // started no thread.
        match unsafe { process::fork_unchecked() } {
            Err(errno) => {
                // Not forked: C1 goes back to dying with the keeper.
                let _ = linux::die_with_parent(self.keeper);
                Err(errno)
            }
            Ok(Forked::Parent { child }) => Ok(Forked::Parent { child }),
            Ok(Forked::Child) => {
                if self.dies_with_c1 {
                    let _ = linux::set_parent_death_signal();
                }
                Ok(Forked::Child)
            }
        }
    }
}
