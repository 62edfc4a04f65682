//! Runtimes from another Debian release: `NAME@RELEASE` (`runc@sid`).
//!
//! Newer runtimes are built against a newer C library than this host's
//! (Debian 12): runc 1.3 needs glibc 2.38, crun 1.28 `libblake3`. So
//! `conformance/install --root sid` builds a minimal root file system of
//! that release with mmdebstrap (its runc, crun and strace), cached outside
//! the clone in `${NSAPPLY_CACHE:-/var/cache/nsapply}/roots/<release>/`.
//!
//! The runtime runs in that userland by a bind mount of the root's `/usr`
//! on `/usr` and of its `/etc` on `/etc`, inside the private mount
//! namespace where the runtime runs (Debian's root is merged-`/usr`:
//! `/bin`, `/sbin`, `/lib` and `/lib64` are links into `/usr`, so those
//! two mounts swap every program and library). Everything else is the
//! host's: `/proc`, `/sys` with the cgroup file systems, `/dev`, `/run`,
//! `/tmp` where the bundles and worlds live. The runtime is then traced
//! exactly as a host runtime is (same strace arguments), by that
//! release's strace, whose version the report gives.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{mount, MsFlags};

/// The stamp `conformance/install` writes last into a complete root.
pub const STAMP: &str = ".nsapply-root";

/// A Debian root file system a runtime runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Userland {
    /// The release as given after `@` (`sid`), or the directory.
    pub release: String,
    /// The root directory.
    pub dir: PathBuf,
    /// The first line of that root's `strace -V`.
    pub tracer: String,
}

/// The cache directory of the project (`NSAPPLY_CACHE`, default
/// `/var/cache/nsapply`), shared with `conformance/install`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("NSAPPLY_CACHE")
        .filter(|c| !c.is_empty())
        .map_or_else(|| PathBuf::from("/var/cache/nsapply"), PathBuf::from)
}

impl Userland {
    /// The root for `release`: a directory if it contains a `/`, else
    /// `<cache>/roots/<release>`. It must be complete (its stamp written).
    ///
    /// # Errors
    ///
    /// The root is missing or incomplete, or its strace does not run.
    pub fn find(release: &str) -> Result<Userland, String> {
        if release.is_empty() {
            return Err("empty release after '@' (for example runc@sid)".to_owned());
        }
        let dir = if release.contains('/') {
            PathBuf::from(release)
        } else {
            cache_dir().join("roots").join(release)
        };
        if !dir.join(STAMP).is_file() {
            return Err(format!(
                "no root file system for {release} at {} (build it with conformance/install --root {release})",
                dir.display()
            ));
        }
        let mut u = Userland {
            release: release.to_owned(),
            dir,
            tracer: String::new(),
        };
        u.tracer = u
            .first_line("strace", &["-V"])
            .map_err(|e| format!("strace in {}: {e}", u.dir.display()))?;
        Ok(u)
    }

    /// The path, inside this root, of the program `name` (`/usr/sbin/runc`).
    pub fn program(&self, name: &str) -> Option<PathBuf> {
        ["usr/sbin", "usr/bin", "usr/local/sbin", "usr/local/bin"]
            .iter()
            .map(|d| Path::new("/").join(d).join(name))
            .find(|p| self.dir.join(p.strip_prefix("/").unwrap_or(p)).is_file())
    }

    /// The first line `program args` prints on stdout when run in this
    /// userland (a child in a mount namespace of its own, made by
    /// util-linux `unshare`, so this process's namespaces are untouched;
    /// the host's `/proc` stays, which crun needs to re-execute itself).
    ///
    /// # Errors
    ///
    /// It could not be run, failed, or printed nothing.
    pub fn first_line(&self, program: &str, args: &[&str]) -> Result<String, String> {
        // `mount` is the host's: /etc is swapped first, /usr last, then
        // the shell (already loaded) executes the root's program.
        let script = r#"root=$1; shift; mount --bind "$root/etc" /etc && mount --bind "$root/usr" /usr && exec "$@""#;
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&self.dir)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running unshare(1): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if !out.status.success() || line.is_empty() {
            return Err(format!(
                "{program} {} in the {} root: {}: {}",
                args.join(" "),
                self.release,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(line)
    }

    /// Makes this process's mount namespace see the root's `/etc` and
    /// `/usr` (module docs). Call it only in a private mount namespace made
    /// for the runtime: programs started afterwards are the root's.
    ///
    /// # Errors
    ///
    /// The errno of the bind mount, with the paths.
    pub fn enter(&self) -> Result<(), String> {
        for d in ["etc", "usr"] {
            let from = self.dir.join(d);
            let to = Path::new("/").join(d);
            mount(
                Some(from.as_os_str()),
                &to,
                None::<&OsStr>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&OsStr>,
            )
            .map_err(|e| format!("bind mount {} on {}: {e}", from.display(), to.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_root_names_the_install_command() {
        let e = Userland::find("/nonexistent/nsapply-root").unwrap_err();
        assert!(
            e.contains("conformance/install --root /nonexistent/nsapply-root"),
            "{e}"
        );
        assert!(Userland::find("").is_err());
    }

    #[test]
    fn programs_are_looked_up_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::write(dir.path().join("usr/bin/crun"), "").unwrap();
        let u = Userland {
            release: "test".to_owned(),
            dir: dir.path().to_owned(),
            tracer: String::new(),
        };
        assert_eq!(u.program("crun"), Some(PathBuf::from("/usr/bin/crun")));
        assert_eq!(u.program("runc"), None);
    }
}
