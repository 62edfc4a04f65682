//! The host runner's errors: what failed, on which path or command, and
//! the OS error (errno) or the tool's output. Each is a setup error (exit
//! status 2); a guest that fails is not an error but a verdict.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::pins::PinsError;
use crate::vmlinux::ExtractError;

/// Why the runner could not prepare or start the run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the runner was doing (`read`, `write`, `create directory`, ...).
        what: &'static str,
        /// The path it was doing it on.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `KERNELS` has a line the runner does not understand.
    #[error("{}:{line}: {problem}", path.display())]
    Pins {
        /// The pins file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: PinsError,
    },
    /// `--kernel` named a kernel that has no pin.
    #[error("no kernel {name:?} in KERNELS (have {known:?})")]
    UnknownKernel {
        /// The name asked for.
        name: String,
        /// The pinned names.
        known: Vec<String>,
    },
    /// A command could not be started.
    #[error("{command}: {source}")]
    Spawn {
        /// The command, as `Command`'s `Debug` shows it.
        command: String,
        /// The OS error.
        source: io::Error,
    },
    /// A command exited with a failure status.
    #[error("{command}: {status}\n{output}")]
    Command {
        /// The command, as `Command`'s `Debug` shows it.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard output, then its standard error.
        output: String,
    },
    /// `apt-get download` succeeded but left no package.
    #[error("apt-get download left no .deb in {}", dir.display())]
    NoDeb {
        /// The directory it ran in.
        dir: PathBuf,
    },
    /// The package holds no kernel image where Debian puts one.
    #[error("{}: no boot/vmlinuz-* nor usr/lib/modules/*/vmlinuz*", deb.display())]
    NoImage {
        /// The package.
        deb: PathBuf,
    },
    /// The kernel image holds no usable `vmlinux`.
    #[error("{}: {source}", image.display())]
    Extract {
        /// The kernel image (`vmlinuz`).
        image: PathBuf,
        /// Why.
        source: ExtractError,
    },
}

impl Error {
    /// An [`Error::Io`] for `what` on `path`, to use with `map_err`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

/// What the runner's fallible functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;
