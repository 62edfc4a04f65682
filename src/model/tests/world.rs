//! Worlds: JSON round trips and the errors of worlds that cannot exist.

use super::*;

#[test]
fn world_json_round_trips() {
    let world = rootless()
        .namespace(
            NsSpec::new("p", Kind::Pid)
                .owned_by("u")
                .at("/proc/42/ns/pid"),
        )
        .namespace(NsSpec::new("t", Kind::Time).entered(false))
        .namespace(NsSpec::new("host:network", Kind::Network).at("/run/hostnet"))
        .file("/etc/hostname", FileSpec::Regular)
        .file("/srv", FileSpec::Directory)
        .file("/root/x", FileSpec::Unreadable)
        .file("/run/fifo", FileSpec::Fifo)
        .file("/run/sock", FileSpec::Socket)
        .file("/dev/x", FileSpec::Device)
        .caller(
            CallerSpec::unprivileged(1000, 1000)
                .threads(2)
                .in_ns(Kind::Pid, "p"),
        );
    let json = world.to_json();
    assert_eq!(World::from_json(&json).unwrap(), world);
    assert_eq!(World::from_json("{}").unwrap(), World::default());
    // A process's state is written unless it is running (the default).
    use crate::model::{ProcessSpec, ProcessState};
    let with = |state| World::new().process(ProcessSpec::new(7).state(state));
    let running = with(ProcessState::Running).to_json();
    assert!(!running.contains("state"), "{running}");
    let exited = with(ProcessState::Exited);
    assert!(
        exited.to_json().contains(r#""state": "exited""#),
        "{}",
        exited.to_json()
    );
    assert_eq!(World::from_json(&exited.to_json()).unwrap(), exited);
    let parsed = World::from_json(
        r#"{"caller":{"uid":1000,"gid":1000,"namespaces":{"network":"n"}},
            "namespaces":[{"name":"n","type":"network","paths":["/run/n"]}],
            "files":{"/etc/x":"regular"}}"#,
    )
    .unwrap();
    let m = model(parsed);
    assert_eq!(m.current(Kind::Network), "n");
    assert!(!m.capable_in("host:user"), "caps default to uid == 0");
}

#[test]
fn world_json_errors_name_the_problem() {
    let err = |json: &str| World::from_json(json).unwrap_err();
    assert!(matches!(
        err("{\n  \"caller\": 3\n}"),
        WorldError::Json { line: 2, .. }
    ));
    assert!(matches!(err(r#"{"bogus":1}"#), WorldError::Json { .. }));
    assert!(matches!(
        err(r#"{"namespaces":[{"name":"n","type":"network","owner":"nope"}]}"#),
        WorldError::UnknownReference { .. }
    ));
    assert!(matches!(
        err(
            r#"{"namespaces":[{"name":"i","type":"ipc"},{"name":"n","type":"network","owner":"i"}]}"#
        ),
        WorldError::WrongKind {
            expected: Kind::User,
            found: Kind::Ipc,
            ..
        }
    ));
    assert!(matches!(
        err(r#"{"namespaces":[{"name":"n","type":"network"},{"name":"n","type":"uts"}]}"#),
        WorldError::DuplicateName { .. }
    ));
    assert!(matches!(
        err(
            r#"{"namespaces":[{"name":"n","type":"network","paths":["/a"]}],"files":{"/a":"regular"}}"#
        ),
        WorldError::DuplicatePath { .. }
    ));
    assert!(matches!(
        err(r#"{"namespaces":[{"name":"n","type":"network","parent":"host:pid"}]}"#),
        WorldError::FieldOnWrongKind {
            field: "parent",
            ..
        }
    ));
    assert!(matches!(
        err(
            r#"{"namespaces":[{"name":"a","type":"user","owner":"b"},{"name":"b","type":"user","owner":"a"}]}"#
        ),
        WorldError::Cycle { .. }
    ));
    assert!(matches!(
        err(r#"{"namespaces":[{"name":"new:net:1","type":"network"}]}"#),
        WorldError::InvalidName { .. }
    ));
    assert!(matches!(
        err(r#"{"namespaces":[{"name":"host:network","type":"network","owner":"host:user"}]}"#),
        WorldError::InvalidName { .. }
    ));
    assert!(matches!(
        err(r#"{"files":{"etc/x":"regular"}}"#),
        WorldError::InvalidPath { .. }
    ));
    assert!(matches!(
        err(r#"{"files":{"/proc/self/ns/net":"regular"}}"#),
        WorldError::InvalidPath { .. }
    ));
    assert!(matches!(
        err(r#"{"caller":{"namespaces":{"pid":"host:uts"}}}"#),
        WorldError::WrongKind {
            expected: Kind::Pid,
            ..
        }
    ));
    assert!(matches!(
        err(r#"{"caller":{"threads":0}}"#),
        WorldError::InvalidCaller { .. }
    ));
    assert!(matches!(
        err(
            r#"{"caller":{"namespaces":{"time":"t"}},"namespaces":[{"name":"t","type":"time","entered":false}]}"#
        ),
        WorldError::InvalidCaller { .. }
    ));
    assert!(matches!(
        err(
            r#"{"namespaces":[{"name":"u","type":"user","uid_map":[{"containerID":0,"hostID":0,"size":0}]}]}"#
        ),
        WorldError::InvalidMap {
            which: "uid_map",
            ..
        }
    ));
    let e = err(r#"{"namespaces":[{"name":"n","type":"network","owner":"nope"}]}"#);
    assert_eq!(e.to_string(), r#"n: owner names unknown namespace "nope""#);
    // The reason names what is wrong with the line: id 4294967295 on either
    // side (the kernel's (u32)-1 is "no id"), not a range that wraps.
    for line in [
        r#"{"containerID":0,"hostID":4294967295,"size":1}"#,
        r#"{"containerID":4294967295,"hostID":0,"size":1}"#,
    ] {
        let e = err(&format!(
            r#"{{"namespaces":[{{"name":"u","type":"user","uid_map":[{line}]}}]}}"#
        ));
        assert!(
            e.to_string().contains("id 4294967295 cannot be mapped"),
            "{line}: {e}"
        );
    }
}

#[test]
fn nesting_deeper_than_the_kernel_allows_is_refused() {
    let mut world = World::new();
    let mut parent = "host:pid".to_owned();
    for i in 0..33 {
        let name = format!("p{i}");
        world = world.namespace(NsSpec::new(name.clone(), Kind::Pid).child_of(parent));
        parent = name;
    }
    assert!(matches!(
        Model::new(&world).unwrap_err(),
        WorldError::TooDeep {
            level: 33,
            max: 32,
            ..
        }
    ));
}

#[test]
fn host_and_first_created_names_follow_the_kinds() {
    for kind in Kind::ALL {
        let s = kind.spec_name();
        assert_eq!(kernel::host_name(kind), format!("host:{s}"));
        assert_eq!(kernel::created_name(kind, 1), format!("new:{s}:1"));
        assert_eq!(kernel::created_name(kind, 2), format!("new:{s}:2"));
    }
}

#[test]
fn a_limit_beyond_u32_is_no_limit() {
    let mut world = World::new();
    world.limits.insert(Kind::Network, u64::from(u32::MAX) + 1);
    world.limits.insert(Kind::Uts, u64::MAX);
    let mut m = model(world);
    assert_eq!(m.unshare("network,uts".parse().unwrap()), Ok(()));
}

#[test]
fn kernel_versions_come_from_uname_and_set_the_kernel_properties() {
    use crate::model::KernelVersion;
    let v = KernelVersion::new;
    // The pinned kernels of the VM tests and this host, as uname gives them.
    let unames = [
        (
            "6.1.0-50-cloud-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)",
            v(6, 1, 176),
        ),
        (
            "6.12.117+deb12-cloud-amd64",
            "#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2026-11-14)",
            v(6, 12, 117),
        ),
        (
            "5.10.0-32-cloud-amd64",
            "#1 SMP Debian 5.10.223-1 (2024-08-10)",
            v(5, 10, 223),
        ),
        ("6.18.44-fc-v1045", "#1 SMP PREEMPT_DYNAMIC", v(6, 18, 44)),
        ("7.2-rc1", "#1 SMP", v(7, 2, 0)),
    ];
    for (release, version, want) in unames {
        assert_eq!(KernelVersion::from_uname(release, version), Some(want));
    }
    assert_eq!(KernelVersion::parse("6"), None);
    assert_eq!(KernelVersion::parse("x.1"), None);
    assert_eq!(v(6, 12, 117).to_string(), "6.12.117");
    // The properties: pidfd setns from 5.8; the caller's fs_struct tested
    // by mntns_install in 6.12.117 to the end of 6.12.
    for (version, pidfd, caller_fs) in [
        (v(5, 7, 19), false, false),
        (v(5, 8, 0), true, false),
        (v(6, 1, 192), true, false),
        (v(6, 12, 116), true, false),
        (v(6, 12, 117), true, true),
        (v(6, 12, 200), true, true),
        (v(6, 13, 0), true, false),
        (v(6, 18, 44), true, false),
        (v(7, 2, 13), true, false),
    ] {
        let w = World::new().on_kernel(version);
        assert_eq!(w.pidfd_setns, Some(pidfd), "{version}");
        assert_eq!(w.mntns_checks_caller_fs, Some(caller_fs), "{version}");
        assert_eq!(World::from_json(&w.to_json()).unwrap(), w);
    }
}

#[test]
fn a_clock_reads_from_0_to_half_of_ktime_sec_max_seconds() {
    // At most KTIME_SEC_MAX / 2 = 4611686018 s: the uptime the kernel's
    // offset check assumes (a clock near i64::MAX would overflow the
    // model's now + offset).
    let world = |secs: i64, nanosecs: u32| {
        let mut w = World::new();
        w.clocks.boottime = ClockValue { secs, nanosecs };
        w
    };
    for (secs, nanosecs, ok) in [
        (0, 0, true),
        (4_611_686_018, 999_999_999, true),
        (-1, 0, false),
        (4_611_686_019, 0, false),
        (i64::MAX, 0, false),
        (100, 1_000_000_000, false),
    ] {
        match Model::new(&world(secs, nanosecs)) {
            Ok(_) => assert!(ok, "{secs}.{nanosecs:09} was taken"),
            Err(e) => {
                assert!(!ok, "{secs}.{nanosecs:09} was refused: {e}");
                assert!(
                    matches!(
                        e,
                        WorldError::InvalidClock {
                            clock: "boottime",
                            ..
                        }
                    ),
                    "{e:?}"
                );
                assert!(e.to_string().contains("at most 4611686018 s"), "{e}");
            }
        }
    }
}

#[test]
fn the_views_list_every_namespace_with_a_user_namespaces_parent() {
    let mut m = model(World::new().namespace(NsSpec::new("n", Kind::Network)));
    m.unshare(KindSet::one(Kind::User)).unwrap();
    let names: Vec<String> = m.namespaces().into_iter().map(|v| v.name).collect();
    assert_eq!(names.len(), Kind::ALL.len() + 2, "{names:?}");
    assert!(
        names[..Kind::ALL.len()]
            .iter()
            .all(|n| n.starts_with("host:")),
        "{names:?}"
    );
    assert_eq!(names[Kind::ALL.len()..], ["n", "new:user:1"]);
    let user = m.namespace("new:user:1").unwrap();
    assert_eq!(user.parent.as_deref(), Some("host:user"));
    assert_eq!(user.owner.as_deref(), Some("host:user"));
    assert_eq!(m.namespace("n").unwrap().parent, None);
}

#[test]
fn clocks_are_written_unless_they_are_the_default_day() {
    let json = World::new().to_json();
    assert!(!json.contains("clocks"), "{json}");
    let mut world = World::new();
    world.clocks.boottime.secs = 7;
    let json = world.to_json();
    assert!(json.contains("clocks"), "{json}");
    assert_eq!(World::from_json(&json).unwrap(), world);
}

#[test]
fn a_callers_flags_are_written_only_when_set() {
    let json = World::new().to_json();
    assert!(
        !json.contains("chroot") && !json.contains("fs_shared"),
        "{json}"
    );
    let world = World::new().caller(CallerSpec::root().chrooted().sharing_fs());
    let json = world.to_json();
    assert!(
        json.contains("chroot") && json.contains("fs_shared"),
        "{json}"
    );
    assert_eq!(World::from_json(&json).unwrap(), world);
}

#[test]
fn a_caller_may_be_in_an_entered_time_namespace_and_no_file_is_the_root() {
    // Entered (the default) is what a process in it means; only a time
    // namespace that no process entered cannot hold the caller.
    let world = World::new()
        .namespace(NsSpec::new("t", Kind::Time))
        .caller(CallerSpec::root().in_ns(Kind::Time, "t"));
    assert_eq!(model(world).current(Kind::Time), "t");
    let err = World::from_json(r#"{"files":{"/":"directory"}}"#).unwrap_err();
    assert!(
        matches!(&err, WorldError::InvalidPath { reason, .. } if reason.contains("root directory")),
        "{err:?}"
    );
}
