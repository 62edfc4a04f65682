//! Tests of `nsapply conform`: the strace decoder and the verdicts on
//! committed fixture traces (real runc and crun runs, reviewed), the corpus
//! (it parses, and nsapply's own verdict is each case's `expect`), the
//! report, and, as root with runc installed, an end-to-end run.
//!
//! This target has no harness (`harness = false`): the end-to-end trials
//! need root and runc (crun for some), and without them they are reported
//! as ignored with the reason printed, never as passed.
//!
//! Fixtures: `conformance/fixtures/<runtime>-<case>/` holds `strace.txt`,
//! `stdout.txt` and `stderr.txt` of one run, captured with
//! `nsapply conform --runtime runc --runtime crun --bundle DIR` (runc
//! 1.1.5, crun 1.8.1, strace 6.1, Linux 6.18), and of youki 0.7.0 and
//! sid's runc 1.3.6 and crun 1.28 (`--runtime youki --runtime runc@sid
//! --runtime crun@sid`, strace 7.2 for the sid ones). An exec case's
//! fixture (`<runtime>-exec-<case>/`) is the trace of `RUNTIME exec` and
//! the command's output, with `exec.json`: the container's init, the kinds
//! nsapply's exec plan joins and the init's namespace inodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use nsapply::{Kind, KindSet};
use nsapply_conform::case::{self, Case, Expect, Reference};
use nsapply_conform::exec::{self as conform_exec, ExecDifference, ExecObserved, ExecRecord};
use nsapply_conform::observe::{self, Activity};
use nsapply_conform::strace::{self, Event, Ret};
use nsapply_conform::verdict::{self, Difference, Observed, Verdict};
use nsapply_conform::{bundle, error_line, find_on_path, report};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

/// One committed run: its trace and output, and the case it ran.
struct Fixture {
    events: Vec<Event>,
    stdout: String,
    stderr: String,
    case: Case,
    world: PathBuf,
}

fn fixture(name: &str) -> Result<Fixture, Failed> {
    let dir = root().join("conformance/fixtures").join(name);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}/{f}: {e}", dir.display()))
    };
    let trace = read("strace.txt")?;
    let events = strace::decode(&trace).map_err(|e| format!("{name}: {e}"))?;
    let case_name = name.split_once('-').map(|(_, c)| c).unwrap_or(name);
    let cases = case::load_corpus(&root().join("conformance/cases"), &[case_name.to_owned()])
        .map_err(|e| e.to_string())?;
    // The world directory of that run: `/tmp/nsapply-<pid>-<n>/world`
    // (the run's scratch directory; a case without paths never names it).
    let scratch: Vec<&str> = trace
        .match_indices("/tmp/nsapply-")
        .filter_map(|(i, _)| trace[i + "/tmp/".len()..].split('/').next())
        .collect();
    let world = scratch
        .iter()
        .map(|d| format!("/tmp/{d}/world"))
        .find(|w| trace.contains(&format!("{w}/")))
        .or_else(|| scratch.first().map(|d| format!("/tmp/{d}/world")))
        .map_or_else(|| PathBuf::from("/nonexistent/world"), PathBuf::from);
    Ok(Fixture {
        events,
        stdout: read("stdout.txt")?,
        stderr: read("stderr.txt")?,
        case: cases.into_iter().next().ok_or("no case")?,
        world,
    })
}

impl Fixture {
    fn instance(&self) -> Result<case::Instance, Failed> {
        Ok(self.case.instantiate(&self.world)?)
    }

    fn ns_paths(&self) -> Result<BTreeSet<String>, Failed> {
        let inst = self.instance()?;
        Ok(inst.linux["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["path"].as_str().map(str::to_owned))
            .collect())
    }

    fn activity(&self) -> Result<Activity, Failed> {
        Ok(observe::activity(
            &self.events,
            bundle::CONTAINER_PROGRAM,
            &self.ns_paths()?,
        ))
    }

    fn reference(&self) -> Result<Reference, Failed> {
        let inst = self.instance()?;
        Ok(case::reference(&bundle::config(&inst.linux), &inst.world))
    }

    /// What the runner would have observed. The fixture has no record of
    /// the runtime's own inodes or of the joined paths' inodes, so they are
    /// taken from the container's view: each kind the plan creates gets a
    /// host inode of 1 (never a real namespace), every other kind the
    /// container's; each joined path the container's inode of its kind.
    /// The verdicts below therefore test the trace-derived checks.
    fn observed(&self) -> Result<Observed, Failed> {
        let view = observe::container_view(&self.stdout);
        let creates: KindSet = match self.reference()? {
            Reference::Accept(p) => p
                .steps()
                .iter()
                .filter_map(|s| match s {
                    nsapply::Step::Unshare { kind } => Some(*kind),
                    _ => None,
                })
                .collect(),
            Reference::Reject { .. } => KindSet::EMPTY,
        };
        let host: BTreeMap<Kind, u64> = view
            .inodes
            .iter()
            .map(|(k, i)| (*k, if creates.contains(*k) { 1 } else { *i }))
            .collect();
        let inst = self.instance()?;
        let mut path_inodes = BTreeMap::new();
        for n in inst.linux["namespaces"].as_array().into_iter().flatten() {
            let kind = n["type"].as_str().and_then(Kind::from_spec_name);
            if let (Some(p), Some(k)) = (n["path"].as_str(), kind) {
                if let Some(i) = view.inodes.get(&k) {
                    path_inodes.insert(p.to_owned(), *i);
                }
            }
        }
        let started = !view.inodes.is_empty();
        Ok(Observed {
            activity: self.activity()?,
            success: started,
            timed_out: false,
            view: started.then_some(view),
            message: error_line(&self.stderr),
            host,
            path_inodes,
        })
    }

    fn verdict(&self) -> Result<Verdict, Failed> {
        Ok(verdict::judge(&self.reference()?, &self.observed()?))
    }
}

fn kinds(list: &[Kind]) -> KindSet {
    list.iter().copied().collect()
}

const FIXTURES: &[&str] = &[
    "runc-host-netns-new-user",
    "crun-host-netns-new-user",
    "runc-join-net-ipc-uts",
    "runc-user",
    "crun-bad-regular-file",
    "crun-bad-duplicate-type",
    "crun-cgroup-time",
    "runc-bad-relative-path",
    "youki-host-netns-new-user",
    "youki-bad-regular-file",
    "crun@sid-user",
    "crun@sid-time-without-pid",
    "runc@sid-default",
    "runc-exec-user",
    "runc-exec-host-netns-new-user",
    "runc@sid-exec-host-netns-new-user",
    "crun-exec-user",
    "crun@sid-exec-user",
    "crun@sid-exec-default",
    "youki-exec-user",
];

fn every_fixture_decodes_and_is_listed() -> Result<(), Failed> {
    let dir = root().join("conformance/fixtures");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    check(
        on_disk == listed,
        format!("fixtures on disk {on_disk:?}, listed {listed:?}"),
    )?;
    for name in FIXTURES {
        let f = fixture(name)?;
        check(
            f.events.len() > 10,
            format!("{name}: only {} events", f.events.len()),
        )?;
        check(
            f.world.ends_with("world"),
            format!("{name}: world dir {:?}", f.world),
        )?;
    }
    Ok(())
}

/// runc 1.1.5 joins the host-owned netns (fd without O_CLOEXEC), then
/// creates the user namespace alone, the parent writes the maps (with a
/// trailing NUL), then the other kinds in one unshare.
fn runc_joins_first_creates_user_alone_without_cloexec() -> Result<(), Failed> {
    let f = fixture("runc-host-netns-new-user")?;
    let a = f.activity()?;
    let net = f.world.join("net").display().to_string();
    check(a.joins.len() == 1, format!("joins {:?}", a.joins))?;
    let j = &a.joins[0];
    check(j.path == net, format!("joined {}", j.path))?;
    check(
        j.nstype == Some(Kind::Network),
        format!("nstype {:?}", j.nstype),
    )?;
    check(
        j.cloexec == Some(false),
        "runc opens namespace paths without O_CLOEXEC",
    )?;
    check(j.ret == Ret::Ok(0), format!("{:?}", j.ret))?;
    let created: Vec<KindSet> = a.creations.iter().map(|(_, c)| c.kinds).collect();
    check(
        created
            == [
                KindSet::one(Kind::User),
                kinds(&[Kind::Pid, Kind::Uts, Kind::Ipc, Kind::Mount]),
            ],
        format!("creations {created:?}"),
    )?;
    check(
        a.user_created_at() > Some(j.seq),
        "join before the user namespace",
    )?;
    check(
        a.written("uid_map") == Some("0 100000 65536\n")
            && a.written("gid_map") == Some("0 100000 65536\n"),
        format!("writes {:?}", a.writes),
    )?;
    check(a.container_started, "the container ran")?;
    let v = f.verdict()?;
    check(
        v == Verdict::Differs(vec![Difference::NotCloexec { path: net }]),
        format!("verdict {v:?}"),
    )
}

/// crun 1.8.1 opens the path O_CLOEXEC in the parent, the child (a clone
/// that inherits the fd) joins it, creates the user namespace alone, the
/// parent writes gid_map then uid_map.
fn crun_opens_cloexec_and_joins_in_its_child() -> Result<(), Failed> {
    let f = fixture("crun-host-netns-new-user")?;
    let a = f.activity()?;
    check(
        a.joins.len() == 1 && a.joins[0].cloexec == Some(true),
        format!("{:?}", a.joins),
    )?;
    check(
        a.ns_opens.iter().all(|o| o.cloexec),
        format!("opens {:?}", a.ns_opens),
    )?;
    let setns_pid = f
        .events
        .iter()
        .find_map(|e| matches!(e, Event::Setns { .. }).then(|| e.pid()));
    let open_pid = f.events.iter().find_map(|e| match e {
        Event::Open { path, pid, .. } if path.ends_with("/world/net") => Some(*pid),
        _ => None,
    });
    check(
        setns_pid.is_some() && open_pid.is_some() && setns_pid != open_pid,
        "opened in one process, joined in its child",
    )?;
    let files: Vec<&str> = a.writes.iter().map(|w| w.file.as_str()).collect();
    check(files == ["gid_map", "uid_map"], format!("writes {files:?}"))?;
    let v = f.verdict()?;
    check(v == Verdict::Pass, format!("verdict {v:?}"))
}

fn runc_leaves_every_joined_fd_without_cloexec() -> Result<(), Failed> {
    let f = fixture("runc-join-net-ipc-uts")?;
    let a = f.activity()?;
    let joined: Vec<(String, Option<Kind>)> = a
        .joins
        .iter()
        .map(|j| (j.path.rsplit('/').next().unwrap_or("").to_owned(), j.nstype))
        .collect();
    // runc's own order (ipc, uts, net), not the config's (network, ipc, uts).
    check(
        joined
            == [
                ("ipc".to_owned(), Some(Kind::Ipc)),
                ("uts".to_owned(), Some(Kind::Uts)),
                ("net".to_owned(), Some(Kind::Network)),
            ],
        format!("joins {joined:?}"),
    )?;
    let v = f.verdict()?;
    let Verdict::Differs(d) = &v else {
        return Err(format!("verdict {v:?}").into());
    };
    check(
        d.len() == 3 && d.iter().all(|d| matches!(d, Difference::NotCloexec { .. })),
        format!("differences {d:?}"),
    )
}

fn runc_user_case_passes() -> Result<(), Failed> {
    let f = fixture("runc-user")?;
    let a = f.activity()?;
    check(a.user_created_at() == Some(0), format!("{:?}", a.creations))?;
    let v = f.verdict()?;
    check(v == Verdict::Pass, format!("verdict {v:?}"))
}

/// crun creates the new namespaces before it joins by path, so a regular
/// file is refused only after four namespaces exist (and it tries twice).
fn crun_refuses_a_regular_file_late() -> Result<(), Failed> {
    let f = fixture("crun-bad-regular-file")?;
    let a = f.activity()?;
    check(!a.container_started, "the container did not run")?;
    check(
        a.created() == kinds(&[Kind::Pid, Kind::Uts, Kind::Ipc, Kind::Mount]),
        format!("created {}", a.created()),
    )?;
    let failed: Vec<&Ret> = a.joins.iter().map(|j| &j.ret).collect();
    check(
        failed == [&Ret::Err("EINVAL".into()), &Ret::Err("EINVAL".into())],
        format!("joins {failed:?}"),
    )?;
    let v = f.verdict()?;
    match &v {
        Verdict::RejectedCorrectly { late, message } => {
            check(
                late == &["created pid,uts,ipc,mount".to_owned()],
                format!("late {late:?}"),
            )?;
            check(
                message.starts_with("cannot setns"),
                format!("message {message:?}"),
            )
        }
        _ => Err(format!("verdict {v:?}").into()),
    }
}

fn crun_accepts_a_duplicate_type() -> Result<(), Failed> {
    let f = fixture("crun-bad-duplicate-type")?;
    let v = f.verdict()?;
    check(
        matches!(&v, Verdict::AcceptedWrongly { code, .. } if code == "duplicate-namespace"),
        format!("verdict {v:?}"),
    )
}

/// crun 1.8.1 with new pid and time namespaces: unshare(CLONE_NEWTIME)
/// in the pid namespace's init, which forks and exits; the container never runs.
fn crun_fails_time_with_pid() -> Result<(), Failed> {
    let f = fixture("crun-cgroup-time")?;
    let a = f.activity()?;
    let created: Vec<KindSet> = a.creations.iter().map(|(_, c)| c.kinds).collect();
    check(
        created
            == [
                kinds(&[Kind::Pid, Kind::Uts, Kind::Ipc, Kind::Network, Kind::Mount]),
                KindSet::one(Kind::Time),
            ],
        format!("creations {created:?}"),
    )?;
    check(!a.container_started, "the container did not run")?;
    check(a.written("timens_offsets").is_none(), "no offsets written")?;
    let v = f.verdict()?;
    check(
        matches!(&v, Verdict::Differs(d) if matches!(d.as_slice(), [Difference::RejectedValid { .. }])),
        format!("verdict {v:?}"),
    )
}

fn runc_joins_a_relative_path() -> Result<(), Failed> {
    let f = fixture("runc-bad-relative-path")?;
    let a = f.activity()?;
    check(
        a.joins.len() == 1 && a.joins[0].path.starts_with("../") && a.joins[0].ret.is_ok(),
        format!("joins {:?}", a.joins),
    )?;
    let v = f.verdict()?;
    check(
        matches!(&v, Verdict::AcceptedWrongly { code, .. } if code == "relative-path"),
        format!("verdict {v:?}"),
    )
}

/// youki 0.7.0 creates user and pid, then uts and ipc, then joins the
/// host-owned network namespace from inside the new user namespace: EPERM.
/// Its stderr (tracing lines, a backtrace) decodes to the failing call.
fn youki_joins_after_creating_the_user_namespace() -> Result<(), Failed> {
    let f = fixture("youki-host-netns-new-user")?;
    let a = f.activity()?;
    let created: Vec<KindSet> = a.creations.iter().map(|(_, c)| c.kinds).collect();
    check(
        created
            == [
                KindSet::one(Kind::User),
                KindSet::one(Kind::Pid),
                KindSet::one(Kind::Uts),
                KindSet::one(Kind::Ipc),
            ],
        format!("creations {created:?}"),
    )?;
    check(
        a.joins.len() == 1 && a.joins[0].ret == Ret::Err("EPERM".into()),
        format!("joins {:?}", a.joins),
    )?;
    check(
        a.joins[0].cloexec == Some(false),
        "youki opens namespace paths without O_CLOEXEC",
    )?;
    let net = f.world.join("net").display().to_string();
    let v = f.verdict()?;
    check(
        v == Verdict::Differs(vec![Difference::RejectedValid {
            message: format!("failed to set namespace network {net}: EPERM"),
        }]),
        format!("verdict {v:?}"),
    )
}

fn youki_refuses_a_regular_file_late_with_a_decoded_reason() -> Result<(), Failed> {
    let f = fixture("youki-bad-regular-file")?;
    let v = f.verdict()?;
    let file = f.world.join("file").display().to_string();
    match &v {
        Verdict::RejectedCorrectly { late, message } => {
            check(!late.is_empty(), "youki created namespaces first")?;
            check(
                message == &format!("failed to set namespace network {file}: EINVAL"),
                format!("message {message:?}"),
            )
        }
        _ => Err(format!("verdict {v:?}").into()),
    }
}

/// crun 1.28 writes the id maps through a detached procfs (`/<pid>/uid_map`).
fn crun_1_28_writes_maps_through_its_own_procfs() -> Result<(), Failed> {
    let f = fixture("crun@sid-user")?;
    let a = f.activity()?;
    check(
        a.written("uid_map") == Some("0 100000 65536\n")
            && a.written("gid_map") == Some("0 100000 65536\n"),
        format!("writes {:?}", a.writes),
    )?;
    let v = f.verdict()?;
    check(v == Verdict::Pass, format!("verdict {v:?}"))
}

/// crun 1.28 adds CLONE_NEWPID to the time namespace's unshare.
fn crun_1_28_creates_a_pid_namespace_with_time() -> Result<(), Failed> {
    let f = fixture("crun@sid-time-without-pid")?;
    let a = f.activity()?;
    check(
        a.creations
            .iter()
            .any(|(_, c)| c.kinds == kinds(&[Kind::Pid, Kind::Time]) && c.call == "unshare"),
        format!("creations {:?}", a.creations),
    )?;
    check(
        a.written("timens_offsets").is_some(),
        "offsets written (1.8.1 did not)",
    )?;
    let v = f.verdict()?;
    check(
        matches!(&v, Verdict::Differs(d) if d.iter().any(|d| matches!(d, Difference::Created { .. }))),
        format!("verdict {v:?}"),
    )
}

/// runc 1.3 joins the container's own mount namespace from `runc run`:
/// not a config join.
fn runc_1_3_own_mount_join_is_not_a_config_join() -> Result<(), Failed> {
    let f = fixture("runc@sid-default")?;
    let a = f.activity()?;
    check(
        a.own_joins.len() == 1 && a.own_joins[0].nstype == Some(Kind::Mount),
        format!("own joins {:?}", a.own_joins),
    )?;
    check(a.joins.is_empty(), format!("joins {:?}", a.joins))?;
    let v = f.verdict()?;
    check(v == Verdict::Pass, format!("verdict {v:?}"))
}

/// An exec fixture judged again: its record's plan, and what the runner
/// observed (the fixture keeps no exit status: the exec succeeded when
/// the command printed its namespaces).
fn exec_fixture(name: &str) -> Result<(Verdict, Activity, ExecRecord), Failed> {
    let f = fixture(name)?;
    check(f.case.exec, format!("{name}: not an exec case"))?;
    let dir = root().join("conformance/fixtures").join(name);
    let text = std::fs::read_to_string(dir.join("exec.json"))
        .map_err(|e| format!("{}/exec.json: {e}", dir.display()))?;
    let record: ExecRecord = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    let plan = record.plan().map_err(|e| e.to_string())?;
    let activity = observe::activity(&f.events, bundle::CONTAINER_PROGRAM, &BTreeSet::new());
    let view = observe::container_view(&f.stdout);
    let success = !view.inodes.is_empty();
    let seen = ExecObserved {
        activity: activity.clone(),
        view: success.then_some(view),
        success,
        timed_out: false,
        message: error_line(&f.stderr),
        init: record.init_inodes(),
    };
    Ok((conform_exec::judge(&plan, &seen), activity, record))
}

fn ks(list: &str) -> KindSet {
    list.parse().expect("kinds")
}

/// runc 1.1.5: every /proc/<pid>/ns file opened first without O_CLOEXEC,
/// user joined first (nsexec's order), then a fork for pid; the command
/// is in every namespace of the init.
fn runc_1_1_exec_joins_per_path_user_first() -> Result<(), Failed> {
    let (v, a, record) = exec_fixture("runc-exec-user")?;
    check(
        record.kinds == ks("user,pid,uts,ipc,network,cgroup,mount"),
        format!("kinds {}", record.kinds),
    )?;
    check(
        a.pidfd_joins.is_empty() && a.joins.len() == 7,
        format!("{a:?}"),
    )?;
    check(a.joins[0].nstype == Some(Kind::User), "user joined first")?;
    let d = v.exec_differences();
    check(
        d == [
            ExecDifference::NoPidfd { calls: 7 },
            ExecDifference::NotCloexec {
                kinds: record.kinds,
            },
            ExecDifference::UserFirst {
                before: ks("pid,uts,ipc,network,cgroup,mount"),
            },
        ],
        format!("{v:?}"),
    )
}

/// runc 1.1.5 into a container that joined a host-owned network namespace
/// (runc issue 4390): user first, then EPERM on the network namespace.
fn runc_1_1_exec_fails_on_a_host_owned_network_namespace() -> Result<(), Failed> {
    let (v, a, _) = exec_fixture("runc-exec-host-netns-new-user")?;
    check(!a.container_started, "the command never ran")?;
    let d = v.exec_differences();
    check(
        matches!(d.first(), Some(ExecDifference::ExecFailed { message })
            if message.ends_with("failed to setns into net namespace: Operation not permitted")),
        format!("{d:?}"),
    )?;
    check(
        d.contains(&ExecDifference::UserFirst {
            before: ks("uts,ipc,network"),
        }),
        format!("{d:?}"),
    )
}

/// runc 1.3.6 joins the non-user namespaces first, user last: the same
/// container's exec works; per path and without O_CLOEXEC still.
fn runc_1_3_exec_joins_user_last() -> Result<(), Failed> {
    let (v, a, record) = exec_fixture("runc@sid-exec-host-netns-new-user")?;
    check(
        a.joins.last().and_then(|j| j.nstype) == Some(Kind::User),
        format!("{:?}", a.joins),
    )?;
    let d = v.exec_differences();
    check(
        d == [
            ExecDifference::NoPidfd { calls: 6 },
            ExecDifference::NotCloexec {
                kinds: record.kinds,
            },
        ],
        format!("{v:?}"),
    )
}

/// crun 1.8.1: the user namespace alone through the pidfd, then every
/// kind (EINVAL: user again), then the files opened from inside the user
/// namespace and joined untyped, three passes (crun issue 1264's order).
fn crun_1_8_exec_joins_user_alone_through_its_pidfd() -> Result<(), Failed> {
    let (v, a, _) = exec_fixture("crun-exec-user")?;
    let calls: Vec<(KindSet, bool)> = a
        .pidfd_joins
        .iter()
        .map(|j| (j.kinds, j.ret.is_ok()))
        .collect();
    check(
        calls == [(KindSet::one(Kind::User), true), (KindSet::ALL, false)],
        format!("{calls:?}"),
    )?;
    let d = v.exec_differences();
    for want in [
        ExecDifference::OpenedAfterJoin {
            kinds: KindSet::ALL,
            after: KindSet::one(Kind::User),
        },
        ExecDifference::UserFirst {
            before: ks("pid,uts,ipc,network,cgroup,mount"),
        },
        ExecDifference::Untyped {
            kinds: KindSet::ALL,
        },
    ] {
        check(d.contains(&want), format!("no {want:?} in {d:?}"))?;
    }
    check(
        !d.iter().any(|d| {
            matches!(
                d,
                ExecDifference::Missing { .. } | ExecDifference::NotTargetNamespace { .. }
            )
        }),
        format!("the command is in the container: {d:?}"),
    )
}

/// crun 1.28: one setns(pidfd) with every kind; the runtime's own time
/// namespace is the only difference in what is joined.
fn crun_1_28_exec_joins_every_kind_through_one_pidfd() -> Result<(), Failed> {
    let (v, _, record) = exec_fixture("crun@sid-exec-user")?;
    let d = v.exec_differences();
    check(
        d == [
            ExecDifference::PidfdCalls {
                expected: Some(record.kinds),
                got: vec![(KindSet::ALL, Ret::Ok(0))],
            },
            ExecDifference::Extra {
                kinds: KindSet::one(Kind::Time),
            },
        ],
        format!("{v:?}"),
    )
}

/// crun 1.28 into a container without a user namespace: its pidfd call
/// asks for the runtime's own user namespace too, which the kernel
/// refuses (EINVAL), so it falls back to `<pid>/ns/<name>` opened
/// O_CLOEXEC under its own procfs fd.
fn crun_1_28_exec_falls_back_when_it_asks_for_its_own_user_namespace() -> Result<(), Failed> {
    let (v, a, _) = exec_fixture("crun@sid-exec-default")?;
    check(
        a.ns_opens.len() == 8
            && a.ns_opens
                .iter()
                .all(|o| o.cloexec && !o.path.starts_with('/') && o.kind.is_some()),
        format!("{:?}", a.ns_opens),
    )?;
    let d = v.exec_differences();
    check(
        matches!(d.first(), Some(ExecDifference::PidfdCalls { got, .. })
            if got == &[(KindSet::ALL, Ret::Err("EINVAL".into()))]),
        format!("{d:?}"),
    )?;
    check(
        d.contains(&ExecDifference::FailedJoins {
            calls: vec![(Some(Kind::User), "EINVAL".into(), 2)],
        }) && d.contains(&ExecDifference::Extra {
            kinds: ks("cgroup,time"),
        }),
        format!("{d:?}"),
    )
}

/// youki 0.7.0 never joins the user namespace: the command runs as the
/// host's root in the container's other namespaces.
fn youki_exec_does_not_join_the_user_namespace() -> Result<(), Failed> {
    let (v, a, _) = exec_fixture("youki-exec-user")?;
    check(
        !a.joins.iter().any(|j| j.nstype == Some(Kind::User)),
        "no user join",
    )?;
    let d = v.exec_differences();
    for want in [
        ExecDifference::Missing {
            kinds: KindSet::one(Kind::User),
        },
        ExecDifference::NotTargetNamespace {
            kinds: KindSet::one(Kind::User),
        },
    ] {
        check(d.contains(&want), format!("no {want:?} in {d:?}"))?;
    }
    Ok(())
}

fn decoder_joins_unfinished_and_resumed_halves() -> Result<(), Failed> {
    let text = "7 clone(child_stack=NULL, flags=0x6c020000|17 <unfinished ...>\n\
                8 unshare(0x80) = 0\n\
                7 <... clone resumed>) = 8\n\
                9 ???( <detached ...>\n\
                7 close(8</x/exec.fifo>(deleted)) = 0\n";
    let e = strace::decode(text).map_err(|e| e.to_string())?;
    check(e.len() == 3, format!("{e:?}"))?;
    check(
        e[1] == Event::Clone {
            pid: 7,
            flags: 0x6c02_0000,
            ret: Ret::Ok(8),
        },
        format!("{:?}", e[1]),
    )?;
    check(
        matches!(&e[2], Event::Close { fd, .. } if fd.num == 8 && fd.path.as_deref() == Some("/x/exec.fifo")),
        format!("{:?}", e[2]),
    )
}

fn decoder_rejects_garbled_calls() -> Result<(), Failed> {
    for bad in [
        "5 setns(3</a>, 0x40000000 = 0",
        "5 unshare(CLONE_NEWNET) = 0",
        "5 openat(-100</>, \"/x\", O_RDONLY) = 3",
    ] {
        check(strace::decode(bad).is_err(), format!("{bad:?} decoded"))?;
    }
    Ok(())
}

const REQUIRED_CASES: &[&str] = &[
    "default",
    "user",
    "cgroup-time",
    "join-net-ipc-uts",
    "join-user-and-owned",
    "host-netns-new-user",
    "time-without-pid",
    "bad-duplicate-type",
    "bad-relative-path",
    "bad-missing-path",
    "bad-regular-file",
    "bad-wrong-type",
    "bad-unknown-type",
    "bad-time-offsets-without-time",
    "exec-default",
    "exec-user",
    "exec-host-netns-new-user",
];

fn corpus_has_every_required_case() -> Result<(), Failed> {
    let cases =
        case::load_corpus(&root().join("conformance/cases"), &[]).map_err(|e| e.to_string())?;
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    let want: BTreeSet<&str> = REQUIRED_CASES.iter().copied().collect();
    check(names == want, format!("corpus {names:?}"))?;
    for c in &cases {
        let uses_world = c.linux.to_string().contains(case::WORLD_PLACEHOLDER);
        check(
            !uses_world || c.world.is_some() || c.name == "bad-missing-path",
            format!("{}: uses ${{WORLD}} paths but has no world", c.name),
        )?;
        check(
            (c.expect == Expect::Accept) != c.name.starts_with("bad-"),
            format!("{}: bad- names go with reject", c.name),
        )?;
        check(
            c.exec == c.name.starts_with("exec-"),
            format!("{}: exec- names go with \"exec\": true", c.name),
        )?;
    }
    Ok(())
}

/// nsapply's own verdict on each case is the case's `expect`: the corpus
/// states what the reference does, and this keeps it true.
fn nsapply_gives_each_expected_verdict() -> Result<(), Failed> {
    let cases =
        case::load_corpus(&root().join("conformance/cases"), &[]).map_err(|e| e.to_string())?;
    for c in &cases {
        let inst = c.instantiate(Path::new("/tmp/nsapply-conform-test/world"))?;
        let r = case::reference(&bundle::config(&inst.linux), &inst.world);
        check(
            r.expect() == c.expect,
            format!(
                "{}: nsapply says {:?}, the case expects {:?}",
                c.name,
                r.expect(),
                c.expect
            ),
        )?;
    }
    Ok(())
}

fn a_broken_case_is_refused() -> Result<(), Failed> {
    for (text, why) in [
        (
            r#"{"description":"x","linux":[],"expect":{"outcome":"accept"}}"#,
            "linux not an object",
        ),
        (
            r#"{"description":"x","linux":{},"expect":{"outcome":"maybe"}}"#,
            "unknown outcome",
        ),
        (
            r#"{"description":"x","linux":{},"expect":{"outcome":"accept"},"extra":1}"#,
            "unknown field",
        ),
        (
            r#"{"description":"x","linux":{},"world":{"namespaces":[{"name":"a"}]},"expect":{"outcome":"accept"}}"#,
            "world without a type",
        ),
        (
            r#"{"description":"x","linux":{},"exec":true,"expect":{"outcome":"reject","code":"unknown-type","stage":"validation"}}"#,
            "an exec case whose container config is bad",
        ),
    ] {
        check(
            Case::from_json("x", text).is_err(),
            format!("accepted: {why}"),
        )?;
    }
    Ok(())
}

fn busybox_elf_check_tells_static_from_dynamic() -> Result<(), Failed> {
    check(
        !bundle::elf_is_static(b"#!/bin/sh\n"),
        "a script is not a static ELF",
    )?;
    let sh = Path::new("/bin/sh");
    if sh.exists() {
        // Debian's /bin/sh (dash) is dynamically linked.
        check(!bundle::is_static_elf(sh), "/bin/sh is dynamic")?;
    }
    Ok(())
}

/// Runs the binary's `conform` with `args`; returns its stdout and pid.
fn conform(args: &[&str]) -> Result<(String, u32), Failed> {
    let child = Command::new(env!("CARGO_BIN_EXE_nsapply"))
        .arg("conform")
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nsapply conform: {e}"))?;
    let pid = child.id();
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nsapply conform: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    check(
        out.status.success(),
        format!(
            "nsapply conform {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    )?;
    Ok((stdout, pid))
}

fn row<'a>(stdout: &'a str, case: &str) -> Option<&'a str> {
    stdout.lines().find_map(|l| {
        let (name, rest) = l.split_once(' ')?;
        (name == case).then(|| rest.trim_start())
    })
}

fn mounts_with(marker: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(marker))
        .count()
}

/// The scratch directories (`<tmp>/nsapply-<pid>-<n>`) that process `pid` left.
fn scratch_dirs_of(pid: u32) -> Vec<String> {
    let prefix = format!("nsapply-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn end_to_end_runc() -> Result<(), Failed> {
    let (out, pid) = conform(&[
        "--runtime",
        "runc",
        "default",
        "host-netns-new-user",
        "bad-duplicate-type",
        "bad-relative-path",
    ])?;
    let expect = [
        ("default", "pass"),
        (
            "host-netns-new-user",
            "differs: opened ${WORLD}/net without O_CLOEXEC",
        ),
        ("bad-duplicate-type", "rejected-correctly"),
        (
            "bad-relative-path",
            "accepted-wrongly (nsapply: relative-path)",
        ),
    ];
    for (case, want) in expect {
        let got = row(&out, case).unwrap_or("(no row)");
        check(
            got.starts_with(want),
            format!("{case}: {got:?}, want {want:?}\n{out}"),
        )?;
    }
    check(
        mounts_with(&format!("nsapply-{pid}-")) == 0,
        "a bind mount was left in this mount namespace",
    )?;
    let left = scratch_dirs_of(pid);
    check(
        left.is_empty(),
        format!("scratch directories left: {left:?}"),
    )
}

/// The processes whose command line names `marker` (an exec case's
/// container init carries its container id as its last argument).
fn processes_naming(marker: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(marker)
                .then(|| format!("{}: {text}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// runc's exec rows, and nothing left behind: no container process, no
/// mount, no scratch directory.
fn end_to_end_runc_exec() -> Result<(), Failed> {
    let (out, pid) = conform(&["--runtime", "runc", "exec-user", "exec-host-netns-new-user"])?;
    let expect = [
        (
            "exec-user",
            "differs: joined per /proc/<pid>/ns path (7 setns), no setns(pidfd)",
        ),
        (
            "exec-host-netns-new-user",
            "differs: exec failed: nsexec-1[N]: failed to setns into net namespace: Operation not permitted",
        ),
    ];
    for (case, want) in expect {
        let got = row(&out, case).unwrap_or("(no row)");
        check(
            got.starts_with(want),
            format!("{case}: {got:?}, want {want:?}\n{out}"),
        )?;
    }
    let marker = format!("nsapply-conform-{pid}-");
    let left = processes_naming(&marker);
    check(left.is_empty(), format!("processes left: {left:?}"))?;
    check(
        mounts_with(&format!("nsapply-{pid}-")) == 0,
        "a bind mount was left in this mount namespace",
    )?;
    let left = scratch_dirs_of(pid);
    check(
        left.is_empty(),
        format!("scratch directories left: {left:?}"),
    )
}

/// A container runc runs detached, deleted when dropped.
struct RuncContainer {
    state: PathBuf,
    id: String,
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.state)
            .args(["delete", "--force", &self.id])
            .status();
    }
}

/// nsapply's own exec, traced and judged as a runtime's is, passes: the
/// verdict is not one that nothing can meet. The container is runc's
/// (exec-user's config), the exec `nsapply exec PID -- COMMAND`.
fn end_to_end_nsapply_exec_passes_the_exec_verdict() -> Result<(), Failed> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cases = case::load_corpus(&root().join("conformance/cases"), &["exec-user".to_owned()])
        .map_err(|e| e.to_string())?;
    let inst = cases[0].instantiate(&tmp.path().join("world"))?;
    let id = format!("nsapply-conform-test-{}", std::process::id());
    let config = bundle::config_running(&inst.linux, &conform_exec::init_args(&id));
    let busybox = std::fs::read("/bin/busybox").map_err(|e| format!("/bin/busybox: {e}"))?;
    let dir = tmp.path().join("bundle");
    bundle::build(&dir, &busybox, &config).map_err(|e| e.to_string())?;
    let container = RuncContainer {
        state: tmp.path().join("state"),
        id: id.clone(),
    };
    // Files, not pipes: the detached container keeps runc's stdout and
    // stderr, and a pipe would only end with it.
    let runc = |args: &[&str]| -> Result<String, Failed> {
        let (out, err) = (tmp.path().join("runc.out"), tmp.path().join("runc.err"));
        let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        let status = Command::new("runc")
            .arg("--root")
            .arg(&container.state)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .status()
            .map_err(|e| format!("runc {args:?}: {e}"))?;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        check(
            status.success(),
            format!("runc {args:?}: {status}: {}", read(&err)),
        )?;
        Ok(read(&out))
    };
    let dir_arg = dir.to_str().ok_or("temp path")?;
    runc(&["run", "-d", "--bundle", dir_arg, &id])?;
    let state: serde_json::Value =
        serde_json::from_str(&runc(&["state", &id])?).map_err(|e| e.to_string())?;
    let pid = state["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or("no pid in runc state")?;
    let target = nsapply::exec::resolve(pid, None).map_err(|e| e.to_string())?;
    let plan = target.plan().map_err(|e| e.to_string())?;
    let init: BTreeMap<Kind, u64> = Kind::ALL
        .into_iter()
        .map(|k| nsapply_harness::host::ns_inode(Some(pid), k.proc_name()).map(|i| (k, i)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("/proc/{pid}/ns: {e}"))?;
    let trace = tmp.path().join("trace");
    let out = Command::new("strace")
        .args(strace::STRACE_ARGS)
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_nsapply"))
        .args([
            "exec",
            &pid.to_string(),
            "--",
            bundle::CONTAINER_PROGRAM,
            "sh",
            "-c",
        ])
        .arg(observe::exec_script())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("strace nsapply exec: {e}"))?;
    drop(container);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check(
        out.status.success(),
        format!("nsapply exec: {}: {stderr}", out.status),
    )?;
    let text = std::fs::read_to_string(&trace).map_err(|e| e.to_string())?;
    let events = strace::decode(&text).map_err(|e| e.to_string())?;
    let activity = observe::activity(&events, bundle::CONTAINER_PROGRAM, &BTreeSet::new());
    check(
        activity.pidfd_joins.len() == 1 && activity.pidfd_joins[0].kinds == target.kinds,
        format!("{:?}", activity.pidfd_joins),
    )?;
    let seen = ExecObserved {
        activity,
        view: Some(observe::container_view(&String::from_utf8_lossy(
            &out.stdout,
        ))),
        success: true,
        timed_out: false,
        message: String::new(),
        init,
    };
    let v = conform_exec::judge(&plan, &seen);
    check(v == Verdict::Pass, format!("{}\n{stderr}", v.summary()))?;
    let left = processes_naming(&id);
    check(left.is_empty(), format!("processes left: {left:?}"))
}

/// `NAME@RELEASE` with no root built, or no name, is refused with the
/// command that builds the root.
fn a_runtime_of_a_missing_root_is_refused() -> Result<(), Failed> {
    use nsapply_conform::{ConformError, Runtime};
    let e = Runtime::find("runc@/nonexistent/nsapply-root").err();
    check(
        matches!(&e, Some(ConformError::Runtime { message, .. })
            if message.contains("conformance/install --root /nonexistent/nsapply-root")),
        format!("{e:?}"),
    )?;
    for bad in ["@sid", "a/b@sid", "runc@"] {
        check(
            matches!(Runtime::find(bad), Err(ConformError::Runtime { .. })),
            format!("{bad:?} accepted"),
        )?;
    }
    Ok(())
}

/// crun 1.28 from the sid root, run through `NAME@RELEASE`: the user case
/// passes (its id maps go through its own procfs), and the version row
/// names the root and its strace.
fn end_to_end_crun_of_sid() -> Result<(), Failed> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let report = tmp.path().join("REPORT.md");
    let (out, pid) = conform(&[
        "--runtime",
        "crun@sid",
        "--report",
        report.to_str().ok_or("temp path")?,
        "user",
        "time-without-pid",
    ])?;
    check(
        row(&out, "user") == Some("pass"),
        format!("user: {:?}\n{out}", row(&out, "user")),
    )?;
    check(
        row(&out, "time-without-pid").is_some_and(|r| r.contains("created [pid,mount,time]")),
        format!("time-without-pid: {out}"),
    )?;
    let text = std::fs::read_to_string(&report).map_err(|e| e.to_string())?;
    check(
        text.lines()
            .any(|l| l.starts_with("| crun@sid | crun version 1.28 (Debian sid root file system")),
        format!("version row:\n{text}"),
    )?;
    check(
        scratch_dirs_of(pid).is_empty() && mounts_with(&format!("nsapply-{pid}-")) == 0,
        "left scratch directories or mounts",
    )
}

/// The committed report's runc and crun columns (verdict per case) and
/// version rows are what a fresh run of both runtimes gives.
fn committed_report_matches_a_fresh_run() -> Result<(), Failed> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fresh = tmp.path().join("REPORT.md");
    let (_, pid) = conform(&[
        "--runtime",
        "runc",
        "--runtime",
        "crun",
        "--report",
        fresh.to_str().ok_or("temp path")?,
    ])?;
    // The runc and crun columns and version rows; the committed report
    // has more runtimes (youki, other releases: conformance/ci runs them).
    let rows = |text: &str| -> Vec<String> {
        let mut out: Vec<String> = report::verdicts(text)
            .into_iter()
            .filter(|((_, rt), _)| ["nsapply", "runc", "crun"].contains(&rt.as_str()))
            .map(|((case, rt), v)| format!("{case} {rt}: {v}"))
            .collect();
        out.extend(
            text.lines()
                .filter(|l| {
                    (l.starts_with("| runc | ") || l.starts_with("| crun | ")) && !l.contains('`')
                })
                .map(str::to_owned),
        );
        out
    };
    let left = scratch_dirs_of(pid);
    check(
        left.is_empty(),
        format!("scratch directories left: {left:?}"),
    )?;
    let committed = std::fs::read_to_string(root().join("conformance/REPORT.md"))
        .map_err(|e| format!("conformance/REPORT.md: {e}"))?;
    let fresh = std::fs::read_to_string(&fresh).map_err(|e| e.to_string())?;
    let (c, f) = (rows(&committed), rows(&fresh));
    check(!c.is_empty(), "the committed report has no table")?;
    check(
        c == f,
        format!(
            "conformance/REPORT.md is stale; regenerate it.\ncommitted:\n{}\nfresh:\n{}",
            c.join("\n"),
            f.join("\n")
        ),
    )
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test(
            "fixtures::every_fixture_decodes_and_is_listed",
            every_fixture_decodes_and_is_listed,
        ),
        Trial::test(
            "fixtures::runc_joins_first_creates_user_alone_without_cloexec",
            runc_joins_first_creates_user_alone_without_cloexec,
        ),
        Trial::test(
            "fixtures::crun_opens_cloexec_and_joins_in_its_child",
            crun_opens_cloexec_and_joins_in_its_child,
        ),
        Trial::test(
            "fixtures::runc_leaves_every_joined_fd_without_cloexec",
            runc_leaves_every_joined_fd_without_cloexec,
        ),
        Trial::test("fixtures::runc_user_case_passes", runc_user_case_passes),
        Trial::test(
            "fixtures::crun_refuses_a_regular_file_late",
            crun_refuses_a_regular_file_late,
        ),
        Trial::test(
            "fixtures::crun_accepts_a_duplicate_type",
            crun_accepts_a_duplicate_type,
        ),
        Trial::test(
            "fixtures::crun_fails_time_with_pid",
            crun_fails_time_with_pid,
        ),
        Trial::test(
            "fixtures::runc_joins_a_relative_path",
            runc_joins_a_relative_path,
        ),
        Trial::test(
            "fixtures::youki_joins_after_creating_the_user_namespace",
            youki_joins_after_creating_the_user_namespace,
        ),
        Trial::test(
            "fixtures::youki_refuses_a_regular_file_late_with_a_decoded_reason",
            youki_refuses_a_regular_file_late_with_a_decoded_reason,
        ),
        Trial::test(
            "fixtures::crun_1_28_writes_maps_through_its_own_procfs",
            crun_1_28_writes_maps_through_its_own_procfs,
        ),
        Trial::test(
            "fixtures::crun_1_28_creates_a_pid_namespace_with_time",
            crun_1_28_creates_a_pid_namespace_with_time,
        ),
        Trial::test(
            "fixtures::runc_1_3_own_mount_join_is_not_a_config_join",
            runc_1_3_own_mount_join_is_not_a_config_join,
        ),
        Trial::test(
            "fixtures::runc_1_1_exec_joins_per_path_user_first",
            runc_1_1_exec_joins_per_path_user_first,
        ),
        Trial::test(
            "fixtures::runc_1_1_exec_fails_on_a_host_owned_network_namespace",
            runc_1_1_exec_fails_on_a_host_owned_network_namespace,
        ),
        Trial::test(
            "fixtures::runc_1_3_exec_joins_user_last",
            runc_1_3_exec_joins_user_last,
        ),
        Trial::test(
            "fixtures::crun_1_8_exec_joins_user_alone_through_its_pidfd",
            crun_1_8_exec_joins_user_alone_through_its_pidfd,
        ),
        Trial::test(
            "fixtures::crun_1_28_exec_joins_every_kind_through_one_pidfd",
            crun_1_28_exec_joins_every_kind_through_one_pidfd,
        ),
        Trial::test(
            "fixtures::crun_1_28_exec_falls_back_when_it_asks_for_its_own_user_namespace",
            crun_1_28_exec_falls_back_when_it_asks_for_its_own_user_namespace,
        ),
        Trial::test(
            "fixtures::youki_exec_does_not_join_the_user_namespace",
            youki_exec_does_not_join_the_user_namespace,
        ),
        Trial::test(
            "decoder::joins_unfinished_and_resumed_halves",
            decoder_joins_unfinished_and_resumed_halves,
        ),
        Trial::test(
            "decoder::rejects_garbled_calls",
            decoder_rejects_garbled_calls,
        ),
        Trial::test(
            "corpus::has_every_required_case",
            corpus_has_every_required_case,
        ),
        Trial::test(
            "corpus::nsapply_gives_each_expected_verdict",
            nsapply_gives_each_expected_verdict,
        ),
        Trial::test("corpus::a_broken_case_is_refused", a_broken_case_is_refused),
        Trial::test(
            "runtime::a_runtime_of_a_missing_root_is_refused",
            a_runtime_of_a_missing_root_is_refused,
        ),
        Trial::test(
            "bundle::busybox_elf_check_tells_static_from_dynamic",
            busybox_elf_check_tells_static_from_dynamic,
        ),
    ];
    let is_root = nsapply_harness::host::euid() == 0;
    let have = |t: &str| find_on_path(t).is_some();
    let runc = is_root && have("runc") && have("strace");
    let both = runc && have("crun");
    if !is_root {
        eprintln!("conform end-to-end tests skipped: not root (runtimes create namespaces)");
    } else if !runc {
        eprintln!(
            "conform end-to-end tests skipped: runc or strace missing (run conformance/install)"
        );
    } else if !both {
        eprintln!("conform report test skipped: crun missing (run conformance/install)");
    }
    trials.push(Trial::test("e2e::runc", end_to_end_runc).with_ignored_flag(!runc));
    trials.push(Trial::test("e2e::runc_exec", end_to_end_runc_exec).with_ignored_flag(!runc));
    trials.push(
        Trial::test(
            "e2e::nsapply_exec_passes_the_exec_verdict",
            end_to_end_nsapply_exec_passes_the_exec_verdict,
        )
        .with_ignored_flag(!runc),
    );
    let sid = nsapply_conform::userland::cache_dir().join("roots/sid/.nsapply-root");
    let crun_sid = is_root && sid.is_file();
    if is_root && !crun_sid {
        eprintln!(
            "conform e2e::crun_of_sid skipped: no sid root at {} (conformance/install --root sid)",
            sid.display()
        );
    }
    trials
        .push(Trial::test("e2e::crun_of_sid", end_to_end_crun_of_sid).with_ignored_flag(!crun_sid));
    // The committed report holds Debian 12's runc and crun; elsewhere (an
    // Ubuntu runner) other versions would be compared with it.
    let same_versions = both
        && ["runc", "crun"].iter().all(|name| {
            let committed = std::fs::read_to_string(root().join("conformance/REPORT.md"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(&format!("| {name} | ")).map(str::to_owned))
                .unwrap_or_default();
            let here = nsapply_conform::Runtime::find(name)
                .map(|r| format!("{} |", r.version))
                .unwrap_or_default();
            let same = committed == here;
            if !same {
                eprintln!(
                    "conform report test skipped: {name} here is {here:?}, the committed report has {committed:?}"
                );
            }
            same
        });
    trials.push(
        Trial::test(
            "e2e::committed_report_matches_a_fresh_run",
            committed_report_matches_a_fresh_run,
        )
        .with_ignored_flag(!same_versions),
    );
    libtest_mimic::run(&args, trials).exit();
}
