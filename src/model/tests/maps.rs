//! Id maps written by the runtime parent: who may write which lines.

use super::*;

#[test]
fn uid_map_written_twice_is_eperm() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.write_uid_map(&map(100_000, 65_536)), Ok(()));
    assert_eq!(m.write_uid_map(&map(100_000, 65_536)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&map(200_000, 1)), Err(Errno::EPERM));
}

#[test]
fn unprivileged_parent_maps_only_its_own_ids() {
    let world = World::new().caller(CallerSpec::unprivileged(1000, 1000));
    let mut m = model(world.clone());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.write_uid_map(&map(100_000, 65_536)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&map(1001, 1)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&map(1000, 1)), Ok(()));
    // gid needs setgroups "deny" first.
    assert_eq!(m.write_gid_map(&map(1000, 1)), Err(Errno::EPERM));
    assert_eq!(m.write_setgroups_deny(), Ok(()));
    assert_eq!(m.write_gid_map(&map(1000, 1)), Ok(()));
    assert_eq!(
        m.write_setgroups_deny(),
        Err(Errno::EPERM),
        "gid_map is written"
    );
    assert_eq!(
        m.namespace("new:user:1").unwrap().setgroups_allowed,
        Some(false)
    );

    let mut m = model(world);
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.parent_write_id_maps(&map(1000, 1), &map(1000, 1)), Ok(()));
    assert_eq!(m.set_root_ids(), Ok(()));
    assert_eq!(m.euid(), 1000);
}

#[test]
fn id_map_lines_empty_overlapping_or_of_size_0_are_einval() {
    let line = |c, h, size| IdMapping {
        container_id: c,
        host_id: h,
        size,
    };
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.write_uid_map(&[]), Err(Errno::EINVAL));
    assert_eq!(m.write_uid_map(&[line(0, 1000, 0)]), Err(Errno::EINVAL));
    assert_eq!(
        m.write_uid_map(&[line(0, 1000, 10), line(5, 5000, 10)]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.write_uid_map(&[line(0, 1000, 10), line(100, 1005, 10)]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.write_uid_map(&[line(0, 1000, 10), line(100, 2000, 10)]),
        Ok(())
    );
}

#[test]
fn id_map_lines_that_only_touch_do_not_overlap() {
    // kernel/user_namespace.c, mappings_overlap: a range's last id is
    // first + count - 1, so a line that starts where another ends shares
    // no id with it, on either side of the map and in either order.
    let line = |c, h, size| IdMapping {
        container_id: c,
        host_id: h,
        size,
    };
    for lines in [
        [line(0, 1000, 10), line(10, 1010, 10)],
        [line(10, 1010, 10), line(0, 1000, 10)],
        [line(0, 1000, 10), line(10, 5000, 10)],
        [line(0, 1000, 10), line(100, 1010, 10)],
        [line(10, 1010, 10), line(100, 1000, 10)],
    ] {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.write_uid_map(&lines), Ok(()), "{lines:?}");
    }
}

#[test]
fn parent_write_id_maps_into_the_host_user_ns_is_eperm() {
    let mut m = model(World::new());
    assert_eq!(
        m.parent_write_id_maps(&map(0, 1), &map(0, 1)),
        Err(Errno::EPERM)
    );
}

#[test]
fn nested_maps_need_a_writer_in_the_namespace_or_its_parent() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    m.parent_write_id_maps(&map(100_000, 1000), &map(100_000, 1000))
        .unwrap();
    m.set_root_ids().unwrap();
    m.unshare(KindSet::one(Kind::User)).unwrap();
    // map_write: the opener (host root) is in neither the target nor its
    // parent, so even a valid map is EPERM (found by the model-vs-kernel
    // state machine on 6.18).
    assert_eq!(m.write_uid_map(&map(0, 1000)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&map(500, 1000)), Err(Errno::EPERM));
}

#[test]
fn a_map_text_of_a_page_or_more_is_einval_before_any_other_check() {
    // 340 lines, each "N N 1\n", make a text of about 4.5 KiB.
    let lines: Vec<IdMapping> = (0..340)
        .map(|i| IdMapping {
            container_id: 100_000 + i,
            host_id: 100_000 + i,
            size: 1,
        })
        .collect();
    assert!(crate::config::id_map_text(&lines).len() >= 4096);
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.write_uid_map(&lines), Err(Errno::EINVAL));
    // The size check comes before "written twice" (EPERM).
    m.write_uid_map(&map(100_000, 65_536)).unwrap();
    assert_eq!(m.write_uid_map(&lines), Err(Errno::EINVAL));
    // Under a page, 340 short lines are taken; 341 are not.
    let short: Vec<IdMapping> = (0..341)
        .map(|i| IdMapping {
            container_id: i,
            host_id: i,
            size: 1,
        })
        .collect();
    assert!(crate::config::id_map_text(&short).len() < 4096);
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.write_gid_map(&short), Err(Errno::EINVAL));
    assert_eq!(m.write_gid_map(&short[..340]), Ok(()));
}

#[test]
fn a_process_maps_host_root_in_its_own_namespace_only_if_its_creator_could_setfcap() {
    // verify_root_map: root made the namespace (it had CAP_SETFCAP), so the
    // process in it may map host root in its own uid_map ("0 0 1").
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(
        m.caller_write_map("self", MapFile::UidMap, &map(0, 1)),
        Ok(())
    );
    assert_eq!(m.caller_write_map("self", MapFile::Setgroups, &[]), Ok(()));
    assert_eq!(
        m.caller_write_map("self", MapFile::GidMap, &map(0, 1)),
        Ok(())
    );
    assert_eq!(m.set_root_ids(), Ok(()));
    // An unprivileged creator could not: host root stays unmappable, its
    // own id is fine.
    let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(
        m.caller_write_map("self", MapFile::UidMap, &map(0, 1)),
        Err(Errno::EPERM)
    );
    assert_eq!(
        m.caller_write_map("self", MapFile::UidMap, &map(1000, 1)),
        Ok(())
    );
    // verify_root_map guards the uid_map alone: uid and gid 0 without
    // capabilities (so without CAP_SETFCAP when it made the namespace) map
    // their own gid 0, not their own uid 0.
    let mut m = model(World::new().caller(CallerSpec::unprivileged(0, 0)));
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.caller_write_map("self", MapFile::Setgroups, &[]), Ok(()));
    assert_eq!(
        m.caller_write_map("self", MapFile::GidMap, &map(0, 1)),
        Ok(())
    );
    assert_eq!(
        m.caller_write_map("self", MapFile::UidMap, &map(0, 1)),
        Err(Errno::EPERM)
    );
}

#[test]
fn setgroups_allow_after_deny_is_eperm_and_needs_caps() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::User)).unwrap();
    assert_eq!(m.caller_allow_setgroups("self"), Ok(()));
    assert_eq!(m.caller_write_map("self", MapFile::Setgroups, &[]), Ok(()));
    assert_eq!(m.caller_allow_setgroups("self"), Err(Errno::EPERM));
    assert_eq!(m.caller_allow_setgroups("no-such"), Err(Errno::ENOENT));
    // Without capabilities over it: the open for writing is refused.
    let world = World::new()
        .caller(CallerSpec::unprivileged(1000, 1000))
        .namespace(NsSpec::new("u", Kind::User).created_by(0));
    let mut m = model(world);
    assert_eq!(m.caller_allow_setgroups("u"), Err(Errno::EACCES));
}

#[test]
fn a_line_that_wraps_on_one_side_only_is_einval() {
    // map_write checks first + count and lower_first + count each for
    // wrapping (kernel/user_namespace.c): one side is enough to refuse.
    let line = |c, h, size| IdMapping {
        container_id: c,
        host_id: h,
        size,
    };
    for lines in [[line(0, 4_294_967_290, 10)], [line(4_294_967_290, 0, 10)]] {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.write_uid_map(&lines), Err(Errno::EINVAL), "{lines:?}");
    }
}

/// A caller in user namespace `a` (`1000 100000 65536`: a's id 2000 is
/// kernel id 101000), as that kernel id, without capabilities in `a`.
fn caller_in_an_offset_namespace(kernel_uid: u32) -> World {
    let a_map = vec![IdMapping {
        container_id: 1000,
        host_id: 100_000,
        size: 65_536,
    }];
    World::new()
        .namespace(NsSpec::new("a", Kind::User).maps(a_map.clone(), a_map))
        .caller(CallerSpec::unprivileged(kernel_uid, kernel_uid).in_ns(Kind::User, "a"))
}

#[test]
fn a_nested_creator_maps_its_own_id_as_its_parent_numbers_it() {
    // new_idmap_permitted: one line of size 1 whose parent id is the
    // writer's own kernel id. In `a`, kernel id 101000 is 2000 (100000 +
    // 2000 - 1000): that line is the creator's own; its neighbours are not.
    let mut m = model(caller_in_an_offset_namespace(101_000));
    m.unshare(KindSet::one(Kind::User)).unwrap();
    let own = |id| {
        vec![IdMapping {
            container_id: 0,
            host_id: id,
            size: 1,
        }]
    };
    assert_eq!(m.write_uid_map(&own(1999)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&own(2001)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&own(1000)), Err(Errno::EPERM));
    assert_eq!(m.write_uid_map(&own(2000)), Ok(()));
}

#[test]
fn a_creator_outside_its_namespaces_map_cannot_unshare_a_user_namespace() {
    // create_user_ns: the creator's euid and egid must be mapped in its
    // user namespace. `a` maps kernel ids 100000..=165535: the last one
    // may, the next one may not.
    let mut m = model(caller_in_an_offset_namespace(165_535));
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Ok(()));
    let mut m = model(caller_in_an_offset_namespace(165_536));
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EPERM));
}

#[test]
fn a_creator_two_levels_down_is_found_through_both_maps() {
    // from_kuid through `a` (`1000 100000 65536`: kernel 101000 is a's
    // 2000) and then `b` (`0 2000 1`: a's 2000 is b's 0): a caller in `b`
    // as kernel id 101000 is mapped there and may make a user namespace.
    let a_map = vec![IdMapping {
        container_id: 1000,
        host_id: 100_000,
        size: 65_536,
    }];
    let b_map = vec![IdMapping {
        container_id: 0,
        host_id: 2000,
        size: 1,
    }];
    let world = |uid| {
        World::new()
            .namespace(NsSpec::new("a", Kind::User).maps(a_map.clone(), a_map.clone()))
            .namespace(
                NsSpec::new("b", Kind::User)
                    .owned_by("a")
                    .maps(b_map.clone(), b_map.clone()),
            )
            .caller(CallerSpec::unprivileged(uid, uid).in_ns(Kind::User, "b"))
    };
    assert_eq!(
        model(world(101_000)).unshare(KindSet::one(Kind::User)),
        Ok(())
    );
    // Kernel id 101001 is a's 2001, which `b` does not map.
    assert_eq!(
        model(world(101_001)).unshare(KindSet::one(Kind::User)),
        Err(Errno::EPERM)
    );
}

#[test]
fn a_map_line_must_lie_whole_in_one_line_of_the_parents_map() {
    // map_id_range_down: a privileged writer (root in `a`, with its
    // capabilities: map_write wants the writer in the target or its
    // parent) writes the map of `b`, a child of `a` (`0 100000 1000`);
    // each line's parent ids [host_id, host_id + size) must lie in a's
    // one line.
    let a_map = map(100_000, 1000);
    let world = World::new()
        .namespace(NsSpec::new("a", Kind::User).maps(a_map.clone(), a_map))
        .namespace(NsSpec::new("b", Kind::User).owned_by("a"))
        .caller(
            CallerSpec::unprivileged(100_000, 100_000)
                .with_caps(true)
                .in_ns(Kind::User, "a"),
        );
    let line = |h, size| {
        vec![IdMapping {
            container_id: 0,
            host_id: h,
            size,
        }]
    };
    for (h, size, want) in [
        (100, 100, Ok(())),
        (0, 1000, Ok(())),
        (999, 1, Ok(())),
        (500, 1000, Err(Errno::EPERM)),
        (999, 2, Err(Errno::EPERM)),
        (1000, 1, Err(Errno::EPERM)),
    ] {
        let mut m = model(world.clone());
        assert_eq!(
            m.caller_write_map("b", MapFile::UidMap, &line(h, size)),
            want,
            "b's line 0 {h} {size}"
        );
    }
}

#[test]
fn becoming_root_without_capabilities_works_when_root_is_already_who_it_is() {
    // setresgid/setresuid to the ids a process already holds need no
    // capability: uid 1000 in `u`, whose root is uid 1000, without
    // capabilities in it (it joined and changed nothing), becomes root
    // there. Root mapped to another id needs CAP_SETUID.
    let caller_in = |host_id| {
        World::new()
            .namespace(NsSpec::new("u", Kind::User).maps(map(host_id, 1), map(host_id, 1)))
            .caller(CallerSpec::unprivileged(1000, 1000).in_ns(Kind::User, "u"))
    };
    let mut m = model(caller_in(1000));
    assert_eq!(m.set_root_ids(), Ok(()));
    assert_eq!((m.euid(), m.egid()), (1000, 1000));
    let mut m = model(caller_in(2000));
    assert_eq!(m.set_root_ids(), Err(Errno::EPERM));
}

#[test]
fn a_world_namespace_made_by_root_lets_its_process_map_host_root() {
    // parent_could_setfcap of a world namespace: its creator was root in
    // the host (CAP_SETFCAP) unless it says otherwise. A process inside
    // writes its own, unwritten uid_map.
    let inside = |creator: u32| {
        World::new()
            .namespace(NsSpec::new("u", Kind::User).created_by(creator))
            .caller(
                CallerSpec::unprivileged(creator, creator)
                    .with_caps(true)
                    .in_ns(Kind::User, "u"),
            )
    };
    let mut m = model(inside(0));
    assert_eq!(
        m.caller_write_map("self", MapFile::UidMap, &map(0, 1)),
        Ok(())
    );
    let mut m = model(inside(1000));
    assert_eq!(
        m.caller_write_map("self", MapFile::UidMap, &map(0, 1)),
        Err(Errno::EPERM)
    );
}
