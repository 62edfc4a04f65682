//! Fault scripts and the call record.

use std::path::Path;

use super::*;

#[test]
fn fault_by_position_hits_the_nth_fallible_call() {
    let mut m = model(World::new());
    m.set_faults(FaultScript::parse("3=ENOMEM").unwrap());
    let fd = open(&mut m, "/proc/self/ns/net"); // 1
    assert_eq!(m.thread_count(), Ok(1)); // not counted
    assert_eq!(m.ns_get_nstype(&fd), Ok(Kind::Network.clone_flag())); // 2
    m.close(fd); // not counted
    assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Err(Errno::ENOMEM)); // 3
    assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Ok(())); // 4
    let injected: Vec<bool> = m.calls().iter().map(|c| c.injected).collect();
    assert_eq!(injected, [false, false, false, false, true, false]);
}

#[test]
fn fault_by_op_and_kind_hits_every_matching_call() {
    let world = World::new()
        .namespace(NsSpec::new("n", Kind::Network).at("/run/n"))
        .namespace(NsSpec::new("i", Kind::Ipc).at("/run/i"));
    let mut m = model(world);
    m.set_faults(FaultScript::parse("setns:network=EPERM, open:ipc=EACCES").unwrap());
    assert_eq!(m.open_ns(Path::new("/run/i")).err(), Some(Errno::EACCES));
    assert_eq!(
        m.open_ns(Path::new("/proc/self/ns/ipc")).err(),
        Some(Errno::EACCES)
    );
    let n = open(&mut m, "/run/n");
    assert_eq!(m.setns(&n, Kind::Network), Err(Errno::EPERM));
    assert_eq!(m.setns(&n, Kind::Network), Err(Errno::EPERM));
    m.close(n);
    assert_eq!(m.calls().iter().filter(|c| c.injected).count(), 4);
}

#[test]
fn a_faulted_call_changes_no_state() {
    let mut m = model(rootless());
    m.set_faults(
        FaultScript::parse("setns:user=EIO,unshare=ENOMEM,fork=EAGAIN,open:network=EMFILE")
            .unwrap(),
    );
    let user = open(&mut m, "/run/u");
    assert_eq!(m.setns(&user, Kind::User), Err(Errno::EIO));
    assert_eq!(m.current(Kind::User), "host:user");
    assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::ENOMEM));
    assert!(m.namespace("new:user:1").is_none());
    assert_eq!(m.fork(), Err(Errno::EAGAIN));
    assert!(!m.has_forked());
    assert_eq!(m.open_ns(Path::new("/run/n")).err(), Some(Errno::EMFILE));
    assert_eq!(m.open_fd_count(), 1);
    m.close(user);
    assert_eq!(m.open_fd_count(), 0);
}

#[test]
fn a_threads_fault_fails_thread_count() {
    let mut m = model(World::new());
    m.set_faults(FaultScript::parse("threads=EIO").unwrap());
    assert_eq!(
        m.thread_count(),
        Err(ThreadCountError {
            errno: Some(Errno::EIO)
        })
    );
    assert_eq!(m.calls()[0].op, CallOp::Threads);
}

#[test]
fn fault_rules_parse_print_and_serialize() {
    for rule in [
        "3=EPERM",
        "setns=EINVAL",
        "setns:network=EPERM",
        "threads=EIO",
        "open:user=EACCES",
        "time-offsets=EACCES",
    ] {
        assert_eq!(FaultScript::parse_rule(rule).unwrap().to_string(), rule);
    }
    for bad in [
        "",
        "3",
        "0=EPERM",
        "x=EPERM",
        "setns:net=EPERM",
        "setns=EWHAT",
        "close=EIO",
    ] {
        assert!(FaultScript::parse_rule(bad).is_err(), "{bad:?}");
    }
    let script = FaultScript::parse("2=EIO,unshare:pid=EINVAL").unwrap();
    let json = serde_json::to_string(&script).unwrap();
    assert_eq!(json, r#"{"faults":["2=EIO","unshare:pid=EINVAL"]}"#);
    assert_eq!(serde_json::from_str::<FaultScript>(&json).unwrap(), script);
}

#[test]
fn calls_serialize_with_kebab_ops_and_errno_names() {
    let mut m = model(World::new());
    m.unshare(KindSet::one(Kind::Time)).unwrap();
    m.write_time_offsets(&[offset(1, 2_000_000_000)])
        .unwrap_err();
    let json = serde_json::to_string(&m.calls()[1]).unwrap();
    assert_eq!(
        json,
        r#"{"op":"time-offsets","type":"time","path":"/proc/self/timens_offsets","result":"EINVAL"}"#
    );
    let back: Call = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m.calls()[1]);
}

/// The call record as JSON (a library caller's log): an unshare's kinds
/// and an injected result are written and read back; the fields that say
/// nothing (no kinds, not injected) are left out.
#[test]
fn calls_round_trip_through_json_and_empty_fields_are_left_out() {
    let mut m = model(World::new());
    m.set_faults(FaultScript::parse("1=ENOMEM").unwrap());
    assert_eq!(m.unshare("uts,ipc".parse().unwrap()), Err(Errno::ENOMEM));
    assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Ok(()));
    let calls = m.calls().to_vec();
    let json = serde_json::to_value(&calls).unwrap();
    assert_eq!(
        json[0]["kinds"],
        serde_json::json!(["uts", "ipc"]),
        "{json}"
    );
    assert_eq!(json[0]["injected"], serde_json::json!(true), "{json}");
    assert!(json[1].get("injected").is_none(), "{json}");
    let back: Vec<Call> = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, calls);
    // A call of one kind has its kind and no list.
    let open = {
        let mut m = model(World::new());
        let fd = open(&mut m, "/proc/self/ns/net");
        m.close(fd);
        serde_json::to_value(&m.calls()[0]).unwrap()
    };
    assert!(open.get("kinds").is_none(), "{open}");
}
