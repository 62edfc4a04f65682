//! The kernel's rules: DESIGN §5's errno table row by row, then the
//! finer rules each call follows (capabilities, pid and time namespaces
//! for children, threads).

use super::*;

#[test]
fn setns_with_a_type_other_than_the_namespace_is_einval() {
    let mut m = model(World::new());
    let fd = open(&mut m, "/proc/self/ns/ipc");
    assert_eq!(m.ns_get_nstype(&fd), Ok(Kind::Ipc.clone_flag()));
    assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EINVAL));
    m.close(fd);
}

#[test]
fn setns_user_into_the_callers_own_user_namespace_is_einval() {
    let mut m = model(World::new());
    let fd = open(&mut m, "/proc/self/ns/user");
    assert_eq!(m.setns(&fd, Kind::User), Err(Errno::EINVAL));
    m.close(fd);
}

#[test]
fn setns_user_while_multithreaded_is_einval() {
    let mut m = model(rootless().caller(CallerSpec::root().threads(2)));
    let fd = open(&mut m, "/run/u");
    assert_eq!(m.setns(&fd, Kind::User), Err(Errno::EINVAL));
    assert_eq!(m.current(Kind::User), "host:user");
    m.close(fd);
}

#[test]
fn setns_mount_while_multithreaded_is_einval() {
    let world = World::new()
        .caller(CallerSpec::root().threads(3))
        .namespace(NsSpec::new("m", Kind::Mount).at("/run/m"));
    let mut m = model(world);
    let fd = open(&mut m, "/run/m");
    assert_eq!(m.setns(&fd, Kind::Mount), Err(Errno::EINVAL));
    m.close(fd);
}

#[test]
fn setns_time_while_multithreaded_is_eusers() {
    let world = World::new()
        .caller(CallerSpec::root().threads(2))
        .namespace(NsSpec::new("t", Kind::Time).at("/run/t"));
    let mut m = model(world);
    let fd = open(&mut m, "/run/t");
    assert_eq!(m.setns(&fd, Kind::Time), Err(Errno::EUSERS));
    m.close(fd);
}

#[test]
fn setns_pid_into_an_ancestor_pid_namespace_is_einval() {
    let world = World::new()
        .namespace(NsSpec::new("outer", Kind::Pid).at("/run/outer"))
        .namespace(NsSpec::new("inner", Kind::Pid).child_of("outer"))
        .caller(CallerSpec::root().in_ns(Kind::Pid, "inner"));
    let mut m = model(world);
    let fd = open(&mut m, "/run/outer");
    assert_eq!(m.setns(&fd, Kind::Pid), Err(Errno::EINVAL));
    assert_eq!(m.for_children(Kind::Pid), "inner");
    m.close(fd);
}

#[test]
fn setns_without_cap_sys_admin_over_owner_and_own_user_ns_is_eperm() {
    // No capabilities in its own user namespace.
    let world = World::new()
        .caller(CallerSpec::unprivileged(1000, 1000))
        .namespace(NsSpec::new("n", Kind::Network).at("/run/n"));
    let mut m = model(world.clone());
    let fd = open(&mut m, "/run/n");
    assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EPERM));
    m.close(fd);

    // Root inside a new user namespace has none over the host-owned target.
    let mut m = model(world.caller(CallerSpec::root()));
    let fd = open(&mut m, "/run/n");
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EPERM));
    m.close(fd);
}

#[test]
fn unshare_user_while_multithreaded_is_einval() {
    let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000).threads(2)));
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EINVAL));
    assert_eq!(m.current(Kind::User), "host:user");
}

#[test]
fn unshare_pid_a_second_time_before_a_child_is_einval() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Pid)).unwrap();
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::EINVAL));
    assert_eq!(m.for_children(Kind::Pid), "new:pid:1");
    assert_eq!(m.current(Kind::Pid), "host:pid");
}

#[test]
fn unshare_non_user_without_cap_sys_admin_is_eperm() {
    let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::User) {
        assert_eq!(m.unshare(KindSet::one(kind)), Err(Errno::EPERM), "{kind}");
    }
    // A user namespace created in the same call grants them.
    assert_eq!(
        m.unshare(KindSet::one(Kind::User).with(Kind::Network)),
        Ok(())
    );
    assert_eq!(
        m.namespace("new:network:1").unwrap().owner.as_deref(),
        Some("new:user:1")
    );
}

#[test]
fn time_offsets_after_a_process_entered_is_eacces() {
    // No unshare(time): time_for_children is the host's, which is entered.
    let mut m = model(World::new());
    assert_eq!(m.write_time_offsets(&[offset(10, 0)]), Err(Errno::EACCES));

    // After the first child entered the new namespace.
    m.unshare(KindSet::one(Kind::Time)).unwrap();
    assert_eq!(m.write_time_offsets(&[offset(10, 0)]), Ok(()));
    assert_eq!(m.fork(), Ok(Forked::Child));
    assert_eq!(m.write_time_offsets(&[offset(20, 0)]), Err(Errno::EACCES));
    assert_eq!(m.namespace("new:time:1").unwrap().offsets, [offset(10, 0)]);
}

#[test]
fn time_offsets_with_nanosecs_out_of_range_is_einval() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Time)).unwrap();
    assert_eq!(
        m.write_time_offsets(&[offset(1, 1_000_000_000)]),
        Err(Errno::EINVAL)
    );
    assert_eq!(m.write_time_offsets(&[offset(1, 999_999_999)]), Ok(()));
}

#[test]
fn root_joins_anything() {
    let mut world = World::new().namespace(
        NsSpec::new("u", Kind::User)
            .created_by(1000)
            .maps(map(1000, 1), map(1000, 1)),
    );
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::User) {
        let mut ns = NsSpec::new(format!("x-{kind}"), kind)
            .owned_by("u")
            .at(format!("/run/{kind}"));
        if kind == Kind::Time {
            ns = ns.entered(false);
        }
        world = world.namespace(ns);
    }
    let world = world.namespace(NsSpec::new("u2", Kind::User).owned_by("u").at("/run/user"));
    let mut m = model(world);
    let fds: Vec<(Kind, ModelFd)> = Kind::ALL
        .into_iter()
        .map(|k| (k, open(&mut m, &format!("/run/{k}"))))
        .collect();
    // Every non-user kind first (as the owner is below the host), then user.
    for (kind, fd) in fds.iter().rev() {
        assert_eq!(m.setns(fd, *kind), Ok(()), "{kind}");
    }
    assert_eq!(m.current(Kind::Network), "x-network");
    assert_eq!(m.current(Kind::Pid), "host:pid");
    assert_eq!(m.for_children(Kind::Pid), "x-pid");
    assert_eq!(m.current(Kind::Time), "x-time");
    assert!(m.namespace("x-time").unwrap().entered.unwrap());
    assert_eq!(m.current(Kind::User), "u2");
    for (_, fd) in fds {
        m.close(fd);
    }
    assert_eq!((m.open_fd_count(), m.bad_closes()), (0, 0));
}

#[test]
fn rootless_join_of_a_net_ns_owned_by_its_own_user_ns_needs_that_user_ns_first() {
    let mut m = model(rootless());
    assert!(m.capable_in("u"), "the creator's euid owns u");
    assert!(!m.capable_in("host:user"));
    let net = open(&mut m, "/run/n");
    let user = open(&mut m, "/run/u");
    assert_eq!(m.setns(&net, Kind::Network), Err(Errno::EPERM));
    assert_eq!(m.setns(&user, Kind::User), Ok(()));
    assert_eq!(m.euid(), 1000, "setns keeps the kuid");
    assert_eq!(m.setns(&net, Kind::Network), Ok(()));
    assert_eq!(m.current(Kind::Network), "n");
    m.close(net);
    m.close(user);
}

#[test]
fn rootless_caller_cannot_join_a_user_ns_of_another_uid() {
    let world = rootless().namespace(
        NsSpec::new("other", Kind::User)
            .created_by(2000)
            .at("/run/o"),
    );
    let mut m = model(world);
    let fd = open(&mut m, "/run/o");
    assert_eq!(m.setns(&fd, Kind::User), Err(Errno::EPERM));
    m.close(fd);
}

#[test]
fn setns_mount_checks_capabilities_before_threads() {
    let world = World::new()
        .caller(CallerSpec::unprivileged(1000, 1000).threads(2))
        .namespace(NsSpec::new("m", Kind::Mount).at("/run/m"));
    let mut m = model(world);
    let fd = open(&mut m, "/run/m");
    assert_eq!(m.setns(&fd, Kind::Mount), Err(Errno::EPERM));
    m.close(fd);
}

#[test]
fn setns_time_checks_threads_before_capabilities() {
    let world = World::new()
        .caller(CallerSpec::unprivileged(1000, 1000).threads(2))
        .namespace(NsSpec::new("t", Kind::Time).at("/run/t"));
    let mut m = model(world);
    let fd = open(&mut m, "/run/t");
    assert_eq!(m.setns(&fd, Kind::Time), Err(Errno::EUSERS));
    m.close(fd);
}

#[test]
fn setns_pid_into_a_sibling_is_einval_and_into_a_descendant_is_ok() {
    let world = World::new()
        .namespace(NsSpec::new("a", Kind::Pid))
        .namespace(NsSpec::new("b", Kind::Pid).at("/run/b"))
        .namespace(NsSpec::new("b1", Kind::Pid).child_of("b").at("/run/b1"))
        .caller(CallerSpec::root().in_ns(Kind::Pid, "a"));
    let mut m = model(world);
    let b = open(&mut m, "/run/b");
    assert_eq!(m.setns(&b, Kind::Pid), Err(Errno::EINVAL));
    m.close(b);

    let mut m = model(
        World::new()
            .namespace(NsSpec::new("b", Kind::Pid))
            .namespace(NsSpec::new("b1", Kind::Pid).child_of("b").at("/run/b1")),
    );
    let b1 = open(&mut m, "/run/b1");
    assert_eq!(m.setns(&b1, Kind::Pid), Ok(()));
    assert_eq!(
        (m.current(Kind::Pid), m.for_children(Kind::Pid)),
        ("host:pid", "b1")
    );
    // pid_for_children is not the active one: no new pid namespace now.
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::EINVAL));
    m.close(b1);
}

#[test]
fn unshare_pid_is_allowed_again_in_the_child() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Pid)).unwrap();
    m.fork().unwrap();
    assert_eq!(m.current(Kind::Pid), "new:pid:1");
    assert_eq!(m.namespace("new:pid:1").unwrap().has_init, Some(true));
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Ok(()));
    let view = m.namespace("new:pid:2").unwrap();
    assert_eq!(
        (view.parent.as_deref(), view.level),
        (Some("new:pid:1"), Some(2))
    );
    assert_eq!(view.has_init, Some(false));
}

#[test]
fn fork_moves_the_child_into_pid_and_time_for_children() {
    let mut m = model(World::new().caller(CallerSpec::root().threads(4)));
    m.unshare(KindSet::one(Kind::Pid).with(Kind::Time)).unwrap();
    assert_eq!(m.current(Kind::Time), "host:time");
    assert!(!m.namespace("new:time:1").unwrap().entered.unwrap());
    assert_eq!(m.fork(), Ok(Forked::Child));
    assert!(m.has_forked());
    assert_eq!(m.threads(), 1);
    assert_eq!(m.current(Kind::Pid), "new:pid:1");
    assert_eq!(m.current(Kind::Time), "new:time:1");
    assert!(m.namespace("new:time:1").unwrap().entered.unwrap());
}

#[test]
fn unshare_user_past_32_nested_levels_is_enospc() {
    // A chain of user namespaces u1..u33, each mapping root to its
    // parent's root; the caller starts at the deepest one it is given.
    let chain = |depth: u32| {
        let mut world = World::new();
        for level in 1..=depth {
            let parent = if level == 1 {
                "host:user".to_owned()
            } else {
                format!("u{}", level - 1)
            };
            world = world.namespace(
                NsSpec::new(format!("u{level}"), Kind::User)
                    .owned_by(parent)
                    .maps(map(0, 1), map(0, 1)),
            );
        }
        world.caller(CallerSpec::root().in_ns(Kind::User, format!("u{depth}")))
    };
    let mut m = model(chain(32));
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Ok(()));
    assert_eq!(m.namespace(m.current(Kind::User)).unwrap().level, Some(33));
    let mut m = model(chain(33));
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::ENOSPC));
}

#[test]
fn unshare_user_with_the_callers_uid_unmapped_is_eperm() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    // Maps not written yet: kuid 0 has no id in the new namespace.
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EPERM));
    assert_eq!(m.current(Kind::User), "new:user:1");
}

#[test]
fn unshare_of_several_kinds_is_all_or_nothing() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Pid)).unwrap();
    let set: KindSet = "user,uts,pid".parse().unwrap();
    assert_eq!(m.unshare(set), Err(Errno::EINVAL));
    assert_eq!(m.current(Kind::User), "host:user");
    assert_eq!(m.current(Kind::Uts), "host:uts");
    assert!(m.namespace("new:user:1").is_none());
    let call = m.calls().last().unwrap();
    assert_eq!((call.kind, call.kinds.len()), (None, 3));
}

#[test]
fn unshare_pid_past_level_32_is_enospc() {
    let mut m = model(World::new());
    for _ in 0..32 {
        m.unshare(KindSet::one(Kind::Pid)).unwrap();
        m.fork().unwrap();
    }
    assert_eq!(m.namespace(m.current(Kind::Pid)).unwrap().level, Some(32));
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::ENOSPC));
}

#[test]
fn set_root_ids_without_id_0_mapped_is_einval() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.set_root_ids(), Err(Errno::EINVAL));
    m.write_gid_map(&map(100_000, 10)).unwrap();
    assert_eq!(m.set_root_ids(), Err(Errno::EINVAL), "uid 0 still unmapped");
    assert_eq!(m.egid(), 100_000, "setresgid already succeeded");
}

#[test]
fn set_root_ids_makes_the_mapped_kuid_effective() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    m.parent_write_id_maps(&map(100_000, 65_536), &map(200_000, 65_536))
        .unwrap();
    assert_eq!(m.set_root_ids(), Ok(()));
    assert_eq!((m.euid(), m.egid()), (100_000, 200_000));
    assert!(m.capable_in("new:user:1"));
    assert!(!m.capable_in("host:user"));
}

#[test]
fn set_root_ids_in_the_host_as_unprivileged_is_eperm() {
    let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
    assert_eq!(m.set_root_ids(), Err(Errno::EPERM));
    assert_eq!((m.euid(), m.egid()), (1000, 1000));
}

// The clocks, limits, chroot and shared file-system state (issue 14).

fn clocks(monotonic: i64, boottime: i64) -> Clocks {
    Clocks {
        monotonic: ClockValue {
            secs: monotonic,
            nanosecs: 0,
        },
        boottime: ClockValue {
            secs: boottime,
            nanosecs: 0,
        },
    }
}

fn boottime(secs: i64, nanosecs: u32) -> TimeOffset {
    TimeOffset {
        clock: Clock::Boottime,
        secs,
        nanosecs,
    }
}

#[test]
fn time_offsets_that_take_the_clock_below_0_or_past_half_of_ktime_sec_max_are_erange() {
    // A host up for an hour: minus one day is below 0 (the example).
    let fresh = || {
        let mut world = World::new();
        world.clocks = clocks(3600, 3600);
        let mut m = model(world);
        m.unshare(KindSet::one(Kind::Time)).unwrap();
        m
    };
    assert_eq!(
        fresh().write_time_offsets(&[boottime(-86_400, 0)]),
        Err(Errno::ERANGE)
    );
    // Exactly to 0 is allowed; one nanosecond less is not (the carry).
    assert_eq!(fresh().write_time_offsets(&[boottime(-3600, 0)]), Ok(()));
    assert_eq!(
        fresh().write_time_offsets(&[boottime(-3601, 999_999_999)]),
        Err(Errno::ERANGE)
    );
    // Up to KTIME_SEC_MAX / 2 in all: 4611686018 - 3600 fits, one more not.
    assert_eq!(
        fresh().write_time_offsets(&[offset(4_611_686_018 - 3600, 0)]),
        Ok(())
    );
    assert_eq!(
        fresh().write_time_offsets(&[offset(4_611_686_018 - 3599, 0)]),
        Err(Errno::ERANGE)
    );
    // Beyond KTIME_SEC_MAX itself (LTP timens01), whatever the clock.
    assert_eq!(
        fresh().write_time_offsets(&[offset(-9_223_372_037, 0)]),
        Err(Errno::ERANGE)
    );
    // Each clock is checked against its own value.
    let mut world = World::new();
    world.clocks = clocks(100, 100_000);
    let mut m = model(world);
    m.unshare(KindSet::one(Kind::Time)).unwrap();
    assert_eq!(
        m.write_time_offsets(&[offset(-1000, 0)]),
        Err(Errno::ERANGE)
    );
    assert_eq!(m.write_time_offsets(&[boottime(-1000, 0)]), Ok(()));
}

#[test]
fn the_offset_checks_run_in_the_kernels_order() {
    // nanoseconds (parsing), then CAP_SYS_TIME, then ERANGE, then EACCES.
    let mut world = World::new();
    world.clocks = clocks(10, 10);
    let mut m = model(world.clone());
    m.unshare(KindSet::one(Kind::Time)).unwrap();
    m.fork().unwrap();
    assert_eq!(
        m.write_time_offsets(&[offset(-100, 0)]),
        Err(Errno::ERANGE),
        "ERANGE before EACCES, though a process entered"
    );
    assert_eq!(m.write_time_offsets(&[offset(5, 0)]), Err(Errno::EACCES));
    let mut m = model(world.caller(CallerSpec::unprivileged(1000, 1000)));
    assert_eq!(
        m.write_time_offsets(&[offset(-100, 1_000_000_000)]),
        Err(Errno::EINVAL)
    );
    assert_eq!(m.write_time_offsets(&[offset(-100, 0)]), Err(Errno::EPERM));
}

#[test]
fn unshare_past_max_namespaces_of_the_kind_is_enospc_in_any_ancestor() {
    let mut world = World::new();
    world.limits.insert(Kind::Network, 1);
    let mut m = model(world.clone());
    assert_eq!(m.unshare(KindSet::one(Kind::Network)), Ok(()));
    assert_eq!(m.unshare(KindSet::one(Kind::Network)), Err(Errno::ENOSPC));
    // The host's limit holds below it too: from a new user namespace.
    let mut m = model(world.clone());
    m.unshare(KindSet::one(Kind::Network)).unwrap();
    m.unshare(KindSet::one(Kind::User)).unwrap();
    m.parent_write_id_maps(&map(100_000, 10), &map(100_000, 10))
        .unwrap();
    assert_eq!(m.unshare(KindSet::one(Kind::Network)), Err(Errno::ENOSPC));
    // Other kinds are not limited by it.
    assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Ok(()));
    // A limit of 0 set in a user namespace (as a hardened host sets it).
    let world = World::new()
        .namespace(NsSpec {
            limits: [(Kind::User, 0)].into_iter().collect(),
            ..NsSpec::new("u", Kind::User).maps(map(0, 65_536), map(0, 65_536))
        })
        .caller(CallerSpec::root().in_ns(Kind::User, "u"));
    let mut m = model(world);
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::ENOSPC));
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Ok(()));
}

#[test]
fn existing_namespaces_count_and_a_failed_unshare_charges_nothing() {
    // n exists: of a limit of 2 network namespaces, one is left.
    let mut world = World::new().namespace(NsSpec::new("n", Kind::Network));
    world.limits.insert(Kind::Network, 2);
    world.limits.insert(Kind::Time, 0);
    let mut m = model(world);
    // network is made (and charged) before time fails (create_new_namespaces
    // makes time last): all or nothing, the charge is taken back, so the
    // last network namespace still fits.
    let both: KindSet = [Kind::Network, Kind::Time].into_iter().collect();
    assert_eq!(m.unshare(both), Err(Errno::ENOSPC));
    assert_eq!(m.current(Kind::Network), "host:network");
    assert_eq!(m.unshare(KindSet::one(Kind::Network)), Ok(()));
    assert_eq!(m.unshare(KindSet::one(Kind::Network)), Err(Errno::ENOSPC));
}

#[test]
fn unshare_user_in_a_chroot_is_eperm_after_the_limits() {
    let mut m = model(World::new().caller(CallerSpec::root().chrooted()));
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EPERM));
    // Other kinds do not care.
    assert_eq!(m.unshare(KindSet::one(Kind::Network)), Ok(()));
    let mut world = World::new().caller(CallerSpec::root().chrooted());
    world.limits.insert(Kind::User, 0);
    assert_eq!(
        model(world).unshare(KindSet::one(Kind::User)),
        Err(Errno::ENOSPC)
    );
}

#[test]
fn joining_a_mount_namespace_ends_a_chroot() {
    // mntns_install sets the caller's root and cwd to the joined
    // namespace's root (DESIGN §2: "setns resets root and cwd"), so the
    // caller is no longer chrooted: unshare(user) and the propagation of
    // `/` are allowed again (measured on 6.18, and the external corpus
    // row `setns-mnt-chroot-then-unshare-user-ok`). unshare(mount) keeps
    // the chroot: the copy of its root is not the new namespace's root.
    let world = World::new()
        .namespace(NsSpec::new("m", Kind::Mount).at("/run/m"))
        .process(crate::model::ProcessSpec::new(20).in_ns(Kind::Mount, "m"))
        .caller(CallerSpec::root().chrooted());
    let mut m = model(world.clone());
    m.unshare(KindSet::one(Kind::Mount)).unwrap();
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EPERM));
    let fd = open(&mut m, "/run/m");
    assert_eq!(m.setns(&fd, Kind::Mount), Ok(()));
    m.close(fd);
    assert_eq!(
        m.set_root_propagation(crate::config::Propagation::DEFAULT),
        Ok(())
    );
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Ok(()));
    // Through a pidfd too, alone or with another kind.
    for kinds in [
        KindSet::one(Kind::Mount),
        KindSet::one(Kind::Mount).with(Kind::Uts),
    ] {
        let mut m = model(world.clone());
        let fd = m.pidfd_open(20).unwrap();
        assert_eq!(m.setns_pidfd(&fd, kinds), Ok(()));
        m.close(fd);
        assert_eq!(m.unshare(KindSet::one(Kind::User)), Ok(()), "{kinds:?}");
    }
    // A failed join leaves the chroot.
    let mut m = model(world.caller(CallerSpec::root().chrooted().sharing_fs()));
    let fd = open(&mut m, "/run/m");
    assert_eq!(m.setns(&fd, Kind::Mount), Err(Errno::EINVAL));
    m.close(fd);
    assert_eq!(
        m.set_root_propagation(crate::config::Propagation::DEFAULT),
        Err(Errno::EINVAL)
    );
}

#[test]
fn propagation_of_a_chroots_root_is_einval_after_eperm() {
    let mut m = model(World::new().caller(CallerSpec::root().chrooted()));
    m.unshare(KindSet::one(Kind::Mount)).unwrap();
    assert_eq!(
        m.set_root_propagation(crate::config::Propagation::DEFAULT),
        Err(Errno::EINVAL)
    );
    let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000).chrooted()));
    assert_eq!(
        m.set_root_propagation(crate::config::Propagation::DEFAULT),
        Err(Errno::EPERM)
    );
}

#[test]
fn a_shared_fs_struct_refuses_setns_user_and_mount_but_not_unshare_user() {
    let world = World::new()
        .namespace(
            NsSpec::new("u", Kind::User)
                .maps(map(0, 65_536), map(0, 65_536))
                .at("/run/u"),
        )
        .namespace(NsSpec::new("m", Kind::Mount).at("/run/m"))
        .caller(CallerSpec::root().sharing_fs());
    let mut m = model(world.clone());
    let u = open(&mut m, "/run/u");
    let mnt = open(&mut m, "/run/m");
    assert_eq!(m.setns(&u, Kind::User), Err(Errno::EINVAL));
    assert_eq!(m.setns(&mnt, Kind::Mount), Err(Errno::EINVAL));
    m.close(u);
    m.close(mnt);
    // unshare(user) implies CLONE_FS: the caller gets its own copy.
    let mut m = model(world);
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Ok(()));
}

#[test]
fn a_child_that_exits_leaves_the_parent_outside_pid_for_children() {
    // The parent of a fork stays in its active pid namespace, which is not
    // pid_for_children after unshare(pid): a second unshare(pid) is EINVAL,
    // and the time namespace the child entered has frozen offsets.
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Pid).with(Kind::Time)).unwrap();
    m.fork_child_exits().unwrap();
    assert_eq!(m.current(Kind::Pid), "host:pid");
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::EINVAL));
    assert_eq!(m.namespace("new:time:1").unwrap().entered, Some(true));
}

#[test]
fn one_unshare_fails_with_the_first_namespace_the_kernel_makes() {
    // create_new_namespaces makes mount, uts, ipc, pid, cgroup, net, time
    // in that order (measured on 6.18: with max_uts_namespaces and
    // max_net_namespaces 0 and pid_for_children already new, pid|uts is
    // ENOSPC and pid|net is EINVAL).
    let mut world = World::new();
    world.limits.insert(Kind::Uts, 0);
    world.limits.insert(Kind::Network, 0);
    let mut m = model(world);
    m.unshare(KindSet::one(Kind::Pid)).unwrap();
    let pid = KindSet::one(Kind::Pid);
    assert_eq!(m.unshare(pid.with(Kind::Uts)), Err(Errno::ENOSPC));
    assert_eq!(m.unshare(pid.with(Kind::Network)), Err(Errno::EINVAL));
}

#[test]
fn unshare_user_gives_a_caller_that_shared_its_fs_struct_its_own() {
    let world = World::new().caller(CallerSpec::root().sharing_fs());
    let mut m = model(world);
    let host_user = open(&mut m, "/proc/self/ns/user");
    m.unshare(KindSet::one(Kind::User)).unwrap();
    // userns_install checks a shared fs_struct (EINVAL) before the
    // capabilities: EPERM (none over the host's) shows the caller's is its
    // own now.
    assert_eq!(m.setns(&host_user, Kind::User), Err(Errno::EPERM));
}

#[test]
fn unshare_pid_under_a_pid_namespace_of_another_user_namespace_is_einval() {
    // create_pid_namespace: the new namespace's owner must be the active
    // pid namespace's owner or below it (in_userns). Root in the host user
    // namespace whose process is in a container's pid namespace (nsenter
    // --pid does that) cannot unshare a pid namespace there, neither alone
    // nor with a new user namespace: both EINVAL on this machine's 6.1
    // (`nsenter -t PID --pid -- unshare --pid --fork true`, PID the init
    // of `unshare --user --map-root-user --pid --fork`).
    let world = World::new()
        .namespace(NsSpec::new("u", Kind::User).maps(map(100_000, 65_536), map(100_000, 65_536)))
        .namespace(NsSpec::new("p", Kind::Pid).owned_by("u"))
        .caller(CallerSpec::root().in_ns(Kind::Pid, "p"));
    for kinds in [
        KindSet::one(Kind::Pid),
        KindSet::from_iter([Kind::User, Kind::Pid]),
    ] {
        let mut m = model(world.clone());
        assert_eq!(m.unshare(kinds), Err(Errno::EINVAL), "{kinds}");
        assert_eq!(m.for_children(Kind::Pid), "p", "{kinds}");
    }
    // In the host's pid namespace the same unshare is fine.
    let mut m = model(World::new());
    assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Ok(()));
}

#[test]
fn time_offsets_carry_the_nanoseconds_into_the_seconds() {
    // timespec64_add normalizes: the clock's nanoseconds plus the offset's
    // carry one second, which can take the sum over the upper bound or
    // back up to 0. On this machine's 6.1 (a clock at n.05-n.30 s, offset
    // nanoseconds 999000000): 4611686018 - n s is ERANGE, 500000000 ns
    // instead is fine; -n - 1 s is fine, 100000000 ns instead is ERANGE.
    let fresh = || {
        let mut world = World::new();
        world.clocks.monotonic = ClockValue {
            secs: 1000,
            nanosecs: 100_000_000,
        };
        let mut m = model(world);
        m.unshare(KindSet::one(Kind::Time)).unwrap();
        m
    };
    let top = 4_611_686_018 - 1000;
    assert_eq!(
        fresh().write_time_offsets(&[offset(top, 999_000_000)]),
        Err(Errno::ERANGE)
    );
    assert_eq!(
        fresh().write_time_offsets(&[offset(top, 500_000_000)]),
        Ok(())
    );
    assert_eq!(
        fresh().write_time_offsets(&[offset(-1001, 999_000_000)]),
        Ok(())
    );
    assert_eq!(
        fresh().write_time_offsets(&[offset(-1001, 100_000_000)]),
        Err(Errno::ERANGE)
    );
    // Beyond ±KTIME_SEC_MAX: refused before any sum is made.
    for secs in [i64::MAX, i64::MIN, 9_223_372_037, -9_223_372_037] {
        assert_eq!(
            fresh().write_time_offsets(&[offset(secs, 0)]),
            Err(Errno::ERANGE),
            "{secs}"
        );
    }
}

#[test]
fn one_write_sets_the_offsets_of_both_clocks() {
    // A later line for the same clock replaces the earlier one's; the
    // other clock's stays.
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Time)).unwrap();
    assert_eq!(
        m.write_time_offsets(&[offset(10, 0), boottime(20, 0)]),
        Ok(())
    );
    assert_eq!(m.write_time_offsets(&[offset(30, 0)]), Ok(()));
    assert_eq!(
        m.namespace("new:time:1").unwrap().offsets,
        [boottime(20, 0), offset(30, 0)],
        "one per clock, kept sorted by clock"
    );
}
