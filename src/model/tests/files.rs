//! The file system and the fd table: what paths name, `/proc/self/ns`,
//! fd numbers and ownership.

use std::path::Path;

use super::*;

#[test]
fn open_of_a_missing_path_is_enoent() {
    let mut m = model(World::new().file("/run/a", FileSpec::Regular));
    assert_eq!(m.open_ns(Path::new("/run/b")).err(), Some(Errno::ENOENT));
    assert_eq!(
        m.open_ns(Path::new("/nowhere/b")).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        m.open_ns(Path::new("/proc/self/ns/bogus")).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(m.open_fd_count(), 0);
}

#[test]
fn nstype_of_a_non_namespace_file_is_enotty() {
    let mut m = model(
        World::new()
            .file("/etc/hostname", FileSpec::Regular)
            .file("/srv", FileSpec::Directory),
    );
    for path in ["/etc/hostname", "/srv", "/etc"] {
        let fd = open(&mut m, path);
        assert_eq!(m.ns_get_nstype(&fd), Err(Errno::ENOTTY), "{path}");
        m.close(fd);
    }
}

#[test]
fn setns_with_a_non_namespace_fd_is_ebadf() {
    // Not EINVAL, as for an fd opened for reading: a file that is not a
    // namespace is held as an O_PATH reference, which setns refuses.
    let mut m = model(World::new().file("/etc/hostname", FileSpec::Regular));
    let fd = open(&mut m, "/etc/hostname");
    assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EBADF));
    m.close(fd);
}

#[test]
fn proc_self_ns_ipc_resolves_to_the_current_ipc_ns() {
    let mut m = model(World::new());
    let before = open(&mut m, "/proc/self/ns/ipc");
    m.unshare(KindSet::one(Kind::Ipc)).unwrap();
    let after = open(&mut m, "/proc/self/ns/ipc");
    assert_eq!(m.current(Kind::Ipc), "new:ipc:1");
    let views = m.open_fds();
    assert_eq!(views[0].namespace.as_deref(), Some("host:ipc"));
    assert_eq!(views[1].namespace.as_deref(), Some("new:ipc:1"));
    // The fd keeps its namespace: joining it goes back.
    assert_eq!(m.setns(&before, Kind::Ipc), Ok(()));
    assert_eq!(m.current(Kind::Ipc), "host:ipc");
    m.close(before);
    m.close(after);
}

#[test]
fn proc_self_ns_for_children_entries_follow_unshare() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Pid).with(Kind::Time)).unwrap();
    // pidns_for_children_get: hidden until the new pid namespace has an
    // init (found by the model-vs-kernel state machine on 6.18).
    let hidden = m.open_ns(Path::new("/proc/self/ns/pid_for_children"));
    assert_eq!(hidden.err(), Some(Errno::ENOENT));
    let pid = open(&mut m, "/proc/self/ns/pid");
    let time_children = open(&mut m, "/proc/self/ns/time_for_children");
    let names: Vec<Option<String>> = m.open_fds().into_iter().map(|f| f.namespace).collect();
    assert_eq!(names, [Some("host:pid".into()), Some("new:time:1".into())]);
    for fd in [pid, time_children] {
        m.close(fd);
    }
    // The child is the init of the new pid namespace: visible from there.
    assert_eq!(m.fork(), Ok(Forked::Child));
    let pid = open(&mut m, "/proc/self/ns/pid_for_children");
    let names: Vec<Option<String>> = m.open_fds().into_iter().map(|f| f.namespace).collect();
    assert_eq!(names, [Some("new:pid:1".into())]);
    m.close(pid);
}

#[test]
fn every_file_that_is_not_a_namespace_opens_and_is_enotty() {
    // Opening a namespace path takes a reference only (O_PATH): no
    // permission is needed, a FIFO does not block, no driver runs; the
    // type check then refuses the file.
    let mut world = World::new();
    let specs = [
        FileSpec::Regular,
        FileSpec::Directory,
        FileSpec::Unreadable,
        FileSpec::Fifo,
        FileSpec::Socket,
        FileSpec::Device,
    ];
    for (i, spec) in specs.iter().enumerate() {
        world = world.file(format!("/f/{i}"), *spec);
    }
    let mut m = model(world);
    for (i, spec) in specs.iter().enumerate() {
        let fd = m.open_ns(Path::new(&format!("/f/{i}"))).unwrap();
        assert_eq!(m.ns_get_nstype(&fd), Err(Errno::ENOTTY), "{spec:?}");
        assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EBADF), "{spec:?}");
        m.close(fd);
    }
    assert_eq!(m.open_fd_count(), 0);
}

/// A world path below a path the world makes a file: the file stays a file
/// (it is not made the directory the path below it would need), so the
/// path below is ENOTDIR, as the kernel's walk would find it. cargo-mutants:
/// the missing ancestors gathered with `||` for `&&` turned the file into a
/// directory.
#[test]
fn a_world_path_below_a_world_file_is_enotdir() {
    let world = World::new()
        .file("/etc/hostname", FileSpec::Regular)
        .namespace(NsSpec::new("n", Kind::Network).at("/etc/hostname/net"))
        .file("/root/secret", FileSpec::Unreadable)
        .file("/root/secret/below", FileSpec::Regular);
    let mut m = model(world);
    for p in ["/etc/hostname/net", "/root/secret/below"] {
        assert_eq!(m.open_ns(Path::new(p)).err(), Some(Errno::ENOTDIR), "{p}");
    }
    let fd = m.open_ns(Path::new("/etc/hostname")).unwrap();
    assert_eq!(m.ns_get_nstype(&fd), Err(Errno::ENOTTY));
    m.close(fd);
    assert_eq!(m.open_fd_count(), 0);
}

#[test]
fn open_through_a_file_is_enotdir() {
    let world = World::new()
        .file("/etc/hostname", FileSpec::Regular)
        .file("/root/secret", FileSpec::Unreadable)
        .namespace(NsSpec::new("n", Kind::Network).at("/run/netns/n"));
    let mut m = model(world);
    let open_err = |m: &mut Model, p: &str| m.open_ns(Path::new(p)).err();
    assert_eq!(open_err(&mut m, "/etc/hostname/x"), Some(Errno::ENOTDIR));
    assert_eq!(open_err(&mut m, "/etc/hostname/"), Some(Errno::ENOTDIR));
    assert_eq!(open_err(&mut m, "/run/netns/n/x"), Some(Errno::ENOTDIR));
    assert_eq!(
        open_err(&mut m, "/proc/self/ns/net/x"),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(open_err(&mut m, "/root/secret/x"), Some(Errno::ENOTDIR));
    assert_eq!(open_err(&mut m, "/root/secret"), None);
    assert_eq!(open_err(&mut m, "/run/netns/../netns/n"), None);
    assert_eq!(m.open_fd_count(), 2);
}

#[test]
fn fds_are_lowest_free_numbers_and_close_on_exec() {
    let mut m = model(World::new());
    let a = open(&mut m, "/proc/self/ns/net");
    let b = open(&mut m, "/proc/self/ns/uts");
    assert_eq!((a.number(), b.number()), (3, 4));
    m.close(a);
    let c = open(&mut m, "/proc/self/ns/ipc");
    assert_eq!(c.number(), 3);
    assert!(m.open_fds().iter().all(|f| f.cloexec));
    m.close(b);
    m.close(c);
}

#[test]
fn an_fd_of_another_model_is_not_open_here() {
    let mut one = model(World::new());
    let mut two = model(World::new());
    let theirs = open(&mut two, "/proc/self/ns/net");
    let _ours = open(&mut one, "/proc/self/ns/uts");
    assert_eq!(one.ns_get_nstype(&theirs), Err(Errno::EBADF));
    assert_eq!(one.setns(&theirs, Kind::Network), Err(Errno::EBADF));
    one.close(theirs);
    assert_eq!((one.bad_closes(), one.open_fd_count()), (1, 1));
    assert_eq!(
        two.open_fd_count(),
        1,
        "leaked in two: it was never closed there"
    );
}

#[test]
fn paths_of_path_max_bytes_or_with_a_component_past_name_max_are_enametoolong() {
    let world = World::new().file("/srv/f", FileSpec::Regular);
    let mut m = model(world);
    let err = |m: &mut Model, p: &str| m.open_ns(Path::new(p)).err();
    // 4096 bytes in all: too long before any lookup; 4095: looked up.
    let long = format!("/{}", "a/".repeat(2047));
    assert_eq!(long.len(), 4095);
    assert_eq!(err(&mut m, &long), Some(Errno::ENOENT));
    assert_eq!(err(&mut m, &format!("{long}b")), Some(Errno::ENAMETOOLONG));
    // A 256-byte component where the walk reaches it; 255 is fine.
    let name = |n: usize| "x".repeat(n);
    assert_eq!(
        err(&mut m, &format!("/srv/{}", name(256))),
        Some(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        err(&mut m, &format!("/srv/{}", name(255))),
        Some(Errno::ENOENT)
    );
    // A missing directory before it answers first.
    assert_eq!(
        err(&mut m, &format!("/gone/{}", name(300))),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        err(&mut m, &format!("/{}/f", name(300))),
        Some(Errno::ENAMETOOLONG)
    );
}

#[test]
fn a_forbidden_path_is_eacces_even_for_a_reference_only_open() {
    let mut m = model(World::new().file("/proc/4242/ns/net", FileSpec::Forbidden));
    assert_eq!(
        m.open_ns(Path::new("/proc/4242/ns/net")).err(),
        Some(Errno::EACCES)
    );
    assert_eq!(m.open_fd_count(), 0);
}

#[test]
fn a_processs_namespace_files_follow_its_state_and_the_ptrace_check() {
    use crate::model::{ProcessSpec, ProcessState};
    let world = World::new()
        .namespace(NsSpec::new("n", Kind::Network))
        .process(ProcessSpec::new(10).in_ns(Kind::Network, "n"))
        .process(ProcessSpec::new(11).state(ProcessState::Exited))
        .process(ProcessSpec::new(12).state(ProcessState::Reaped));
    let mut m = model(world.clone());
    let net = open(&mut m, "/proc/10/ns/net");
    assert_eq!(m.ns_get_nstype(&net), Ok(Kind::Network.clone_flag()));
    m.setns(&net, Kind::Network).unwrap();
    assert_eq!(m.current(Kind::Network), "n");
    // A zombie has no namespaces; a reaped process has no directory.
    assert_eq!(
        m.open_ns(Path::new("/proc/11/ns/net")).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        m.open_ns(Path::new("/proc/12/ns/net")).err(),
        Some(Errno::ENOENT)
    );
    // Another uid without capabilities: the link is not followed.
    let mut m = model(world.clone().caller(CallerSpec::unprivileged(1000, 1000)));
    assert_eq!(
        m.open_ns(Path::new("/proc/10/ns/net")).err(),
        Some(Errno::EACCES)
    );
    // __ptrace_may_access wants the uid and the gid alike: a process of
    // uid and gid 1000 is reachable by a caller with both, not by one with
    // its uid and another gid, nor its gid and another uid.
    let world = world.process(ProcessSpec::new(13).uid(1000));
    for (uid, gid, reached) in [(1000, 1000, true), (1000, 2000, false), (2000, 1000, false)] {
        let mut m = model(world.clone().caller(CallerSpec::unprivileged(uid, gid)));
        let r = m.open_ns(Path::new("/proc/13/ns/net"));
        assert_eq!(
            r.is_ok(),
            reached,
            "caller {uid}:{gid}: {:?}",
            r.as_ref().err()
        );
        if let Ok(fd) = r {
            m.close(fd);
        }
    }
}

#[test]
fn a_pidfd_joins_every_kind_asked_or_none() {
    use crate::model::{ProcessSpec, ProcessState};
    let world = World::new()
        .namespace(NsSpec::new("u", Kind::User).created_by(1000))
        .namespace(NsSpec::new("n", Kind::Network).owned_by("u"))
        .namespace(NsSpec::new("s", Kind::Uts))
        .process(
            ProcessSpec::new(20)
                .uid(1000)
                .in_ns(Kind::User, "u")
                .in_ns(Kind::Network, "n"),
        )
        .process(ProcessSpec::new(21).state(ProcessState::Exited));
    // Rootless: the network namespace alone is out of reach (EPERM), with
    // its owner first it joins, all at once.
    let mut m = model(world.clone().caller(CallerSpec::unprivileged(1000, 1000)));
    let fd = m.pidfd_open(20).unwrap();
    assert_eq!(
        m.setns_pidfd(&fd, KindSet::one(Kind::Network)),
        Err(Errno::EPERM)
    );
    assert_eq!(m.current(Kind::Network), "host:network");
    let both = KindSet::one(Kind::User).with(Kind::Network);
    assert_eq!(m.setns_pidfd(&fd, both), Ok(()));
    assert_eq!(
        (m.current(Kind::User), m.current(Kind::Network)),
        ("u", "n")
    );
    m.close(fd);
    // No kinds, an exited process, a kernel without pidfd setns.
    let mut m = model(world.clone());
    let fd = m.pidfd_open(21).unwrap();
    assert_eq!(m.setns_pidfd(&fd, KindSet::EMPTY), Err(Errno::EINVAL));
    assert_eq!(
        m.setns_pidfd(&fd, KindSet::one(Kind::Uts)),
        Err(Errno::ESRCH)
    );
    m.close(fd);
    assert_eq!(m.pidfd_open(99).err(), Some(Errno::ESRCH));
    let mut old = world;
    old.pidfd_setns = Some(false);
    let mut m = model(old);
    let fd = m.pidfd_open(20).unwrap();
    assert_eq!(
        m.setns_pidfd(&fd, KindSet::one(Kind::Uts)),
        Err(Errno::EINVAL)
    );
    m.close(fd);
    assert_eq!(m.open_fd_count(), 0);
}

#[test]
fn a_shared_fs_struct_joins_mount_with_another_kind_through_a_pidfd_but_on_6_12_117() {
    use crate::model::{KernelVersion, ProcessSpec};
    let world = World::new()
        .namespace(NsSpec::new("m", Kind::Mount))
        .namespace(NsSpec::new("s", Kind::Uts))
        .process(
            ProcessSpec::new(20)
                .in_ns(Kind::Mount, "m")
                .in_ns(Kind::Uts, "s"),
        );
    let mount = KindSet::one(Kind::Mount);
    let mount_uts = mount.with(Kind::Uts);
    // (caller, kernel, mount with uts): CLONE_FS sharing or threads, on
    // kernels testing the nsset's copy (the default: 6.18; 6.1.176,
    // 6.12.116, 7.2.13) and on 6.12.117 and later 6.12, which test the
    // caller's own fs_struct.
    let callers = [
        CallerSpec::root().sharing_fs(),
        CallerSpec::root().threads(2),
    ];
    let kernels = [
        (None, Ok(())),
        (Some(KernelVersion::new(6, 1, 176)), Ok(())),
        (Some(KernelVersion::new(6, 12, 116)), Ok(())),
        (Some(KernelVersion::new(6, 12, 117)), Err(Errno::EINVAL)),
        (Some(KernelVersion::new(6, 12, 118)), Err(Errno::EINVAL)),
        (Some(KernelVersion::new(6, 18, 44)), Ok(())),
        (Some(KernelVersion::new(7, 2, 13)), Ok(())),
    ];
    for caller in callers {
        for (kernel, want) in kernels {
            let mut w = world.clone().caller(caller.clone());
            if let Some(v) = kernel {
                w = w.on_kernel(v);
            }
            let mut m = model(w);
            let fd = m.pidfd_open(20).unwrap();
            // Mount alone: EINVAL on every kernel.
            assert_eq!(m.setns_pidfd(&fd, mount), Err(Errno::EINVAL), "{kernel:?}");
            assert_eq!(m.setns_pidfd(&fd, mount_uts), want, "{kernel:?} {caller:?}");
            let joined = want.is_ok();
            assert_eq!(m.current(Kind::Mount) == "m", joined, "{kernel:?}");
            assert_eq!(m.current(Kind::Uts) == "s", joined, "all or nothing");
            m.close(fd);
        }
    }
    // A caller of its own fs_struct joins on every kernel.
    let mut m = model(
        world
            .caller(CallerSpec::root())
            .on_kernel(KernelVersion::new(6, 12, 117)),
    );
    let fd = m.pidfd_open(20).unwrap();
    assert_eq!(m.setns_pidfd(&fd, mount_uts), Ok(()));
    m.close(fd);
}

/// The lexical normal form of a path, and the fast path that keeps a path
/// already in normal form as it is (no allocation): the root is the empty
/// path, `.` and empty components go, `..` takes one back, a trailing
/// slash is said apart.
#[test]
fn paths_are_normalized_lexically_and_normal_ones_borrowed() {
    use super::super::fs::normalize;
    use std::borrow::Cow;
    for (path, want, slash) in [
        ("/", "", false),
        ("/.", "", false),
        ("/..", "", false),
        ("//", "", true),
        ("/a/./b", "/a/b", false),
        ("/a//b", "/a/b", false),
        ("/a/../b", "/b", false),
        ("/a/b/..", "/a", false),
        ("/a/b/.", "/a/b", false),
        ("/a/b/", "/a/b", true),
        ("/run/netns/x", "/run/netns/x", false),
    ] {
        let (norm, trailing) = normalize(Path::new(path));
        assert_eq!((norm.as_ref(), trailing), (want, slash), "{path:?}");
    }
    for normal in ["/a", "/run/netns/x", "/a.b/..c/.d"] {
        assert!(
            matches!(normalize(Path::new(normal)).0, Cow::Borrowed(p) if p == normal),
            "{normal:?} is in normal form"
        );
    }
}

/// A world process's `time_for_children` is its own file, naming the
/// namespace its children get, not its active one.
#[test]
fn a_processs_time_for_children_names_its_childrens_namespace() {
    use crate::model::ProcessSpec;
    let mut p = ProcessSpec::new(10).in_ns(Kind::Time, "t");
    p.time_for_children = Some("c".into());
    let world = World::new()
        .namespace(NsSpec::new("t", Kind::Time))
        .namespace(NsSpec::new("c", Kind::Time))
        .process(p);
    let mut m = model(world);
    let active = open(&mut m, "/proc/10/ns/time");
    let children = open(&mut m, "/proc/10/ns/time_for_children");
    let named: Vec<Option<String>> = m.open_fds().into_iter().map(|f| f.namespace).collect();
    assert_eq!(named, [Some("t".to_owned()), Some("c".to_owned())]);
    m.close(active);
    m.close(children);
}

#[test]
fn an_exec_target_is_a_running_process_the_caller_may_ptrace() {
    use crate::exec::ExecError;
    use crate::model::{ProcessSpec, ProcessState};
    let world = World::new()
        .namespace(NsSpec::new("n", Kind::Network))
        .process(ProcessSpec::new(10).in_ns(Kind::Network, "n"))
        .process(ProcessSpec::new(11).state(ProcessState::Exited));
    let m = model(world.clone());
    for pid in [0, -1] {
        assert!(
            matches!(
                m.exec_target(pid, None),
                Err(ExecError::InvalidTarget { errno: None, .. })
            ),
            "pid {pid}"
        );
    }
    let target = m.exec_target(10, None).unwrap();
    assert_eq!(
        (target.pid, target.kinds),
        (10, KindSet::one(Kind::Network))
    );
    let asked = KindSet::one(Kind::Uts);
    assert_eq!(m.exec_target(10, Some(asked)).unwrap().kinds, asked);
    assert!(matches!(
        m.exec_target(11, None),
        Err(ExecError::TargetExited {
            errno: Some(Errno::ESRCH),
            ..
        })
    ));
    assert!(matches!(
        m.exec_target(12, None),
        Err(ExecError::TargetExited { .. })
    ));
    let rootless = model(world.caller(CallerSpec::unprivileged(1000, 1000)));
    assert!(matches!(
        rootless.exec_target(10, None),
        Err(ExecError::InvalidTarget {
            errno: Some(Errno::EACCES),
            ..
        })
    ));
}

#[test]
fn an_exec_target_differs_in_pid_and_time_from_the_callers_namespaces_for_children() {
    // After unshare(pid|time) the caller is still in the host's pid and time
    // namespaces, but its children would not be: a process of the host's
    // differs in those two kinds (what /proc/self/ns/*_for_children say).
    use crate::model::ProcessSpec;
    let mut m = model(World::new().process(ProcessSpec::new(10)));
    assert_eq!(m.exec_target(10, None).unwrap().kinds, KindSet::EMPTY);
    m.unshare([Kind::Pid, Kind::Time].into_iter().collect())
        .unwrap();
    assert_eq!(
        m.exec_target(10, None).unwrap().kinds,
        [Kind::Pid, Kind::Time].into_iter().collect::<KindSet>()
    );
}
