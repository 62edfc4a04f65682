//! The kernel a world runs on, where its rules differ between kernels:
//! [`KernelVersion`] and [`World::on_kernel`], which sets the world's
//! kernel properties ([`World::pidfd_setns`],
//! [`World::mntns_checks_caller_fs`]) from the version.

use std::fmt;

use super::world::World;

/// A kernel version, `major.minor.patch` (upstream numbering: Debian's
/// 6.1 kernels call themselves `6.1.0-50-amd64`, and
/// [`KernelVersion::from_uname`] finds 6.1.176 elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// `6` of 6.12.117.
    pub major: u32,
    /// `12` of 6.12.117.
    pub minor: u32,
    /// `117` of 6.12.117 (the stable release; 0 for a mainline one).
    pub patch: u32,
}

impl KernelVersion {
    /// `major.minor.patch`.
    #[must_use]
    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// The version a text starts with: `6.12.117` of `6.12.117+deb12-amd64`,
    /// `6.18.0` of `6.18-rc1`. `None` without at least `major.minor`.
    #[must_use]
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut parts = text.split('.').map(|p| {
            let digits = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            (p[..digits].parse::<u32>().ok(), digits == p.len())
        });
        let (Some(major), true) = parts.next()? else {
            return None;
        };
        let (minor, whole) = parts.next()?;
        let minor = minor?;
        let patch = if whole {
            parts.next().and_then(|(p, _)| p).unwrap_or(0)
        } else {
            0
        };
        Some(KernelVersion::new(major, minor, patch))
    }

    /// The version of a running kernel from its `uname -r`
    /// (`/proc/sys/kernel/osrelease`) and `uname -v`
    /// (`/proc/sys/kernel/version`). A Debian kernel names its package
    /// version in the latter (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1
    /// (2026-07-02)`), which is the one to take: its release may be an ABI
    /// name (`6.1.0-50-amd64`) without the stable number.
    #[must_use]
    pub fn from_uname(release: &str, version: &str) -> Option<KernelVersion> {
        version
            .split_once("Debian ")
            .and_then(|(_, v)| KernelVersion::parse(v))
            .or_else(|| KernelVersion::parse(release.trim()))
    }

    /// Whether setns(2) takes a pidfd: Linux 5.8 and later (commit
    /// 303cc571d107, "nsproxy: attach to namespaces via pidfds").
    #[must_use]
    pub fn pidfd_setns(self) -> bool {
        self >= KernelVersion::new(5, 8, 0)
    }

    /// Whether `mntns_install` tests the caller's own fs_struct
    /// (`current->fs->users != 1`) rather than the one it will change
    /// (`nsset->fs`, which `prepare_nsset` makes a private copy, `users`
    /// 1, when `CLONE_NEWNS` comes with another flag).
    ///
    /// Read from the sources Debian ships (`linux-source-*`): 6.12.117
    /// changed the test in fs/namespace.c, the one hunk of the stable
    /// update's "mount: refuse setns() with a shared fs_struct again"
    /// there (Debian changelog of 6.12.117-1, ChangeLog-6.12.117);
    /// 6.12.116, 6.1.176, 6.1.192 and 7.2.13 test `fs->users`, and 6.18.44
    /// answers as they do (measured). So: 6.12.117 and later 6.12 stable
    /// releases. Another series that takes the change in a later stable
    /// release is not known here; the VM tests would show it.
    #[must_use]
    pub fn mntns_checks_caller_fs(self) -> bool {
        (KernelVersion::new(6, 12, 117)..KernelVersion::new(6, 13, 0)).contains(&self)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl World {
    /// The same world on kernel `version`: its kernel properties (those
    /// whose answer differs between kernels) set from the version.
    #[must_use]
    pub fn on_kernel(mut self, version: KernelVersion) -> World {
        self.pidfd_setns = Some(version.pidfd_setns());
        self.mntns_checks_caller_fs = Some(version.mntns_checks_caller_fs());
        self
    }
}
