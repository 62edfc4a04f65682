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
