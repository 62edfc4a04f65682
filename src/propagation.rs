//! The propagation of mounts between `/` of a new mount namespace and its
//! peers (mount_namespaces(7), "Shared subtrees"): the values of
//! `linux.rootfsPropagation`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How mounts propagate between `/` of a new mount namespace and its peers
/// (mount_namespaces(7), "Shared subtrees"): the `linux.rootfsPropagation`
/// values of the runtime-spec, applied right after `unshare(CLONE_NEWNS)`.
///
/// Without `rootfsPropagation`, nsapply makes `/` recursively `slave`, as
/// runc does (`rslave`): mounts the container makes do not reach the host,
/// and the host's later mounts still reach the container. util-linux
/// `unshare --mount` makes it `private` instead.
///
/// ```
/// use nsapply::config::Propagation;
/// let p: Propagation = "rslave".parse().unwrap();
/// assert_eq!(p, Propagation::DEFAULT);
/// assert!(p.recursive);
/// assert_eq!(p.to_string(), "rslave");
/// assert!("sideways".parse::<Propagation>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Propagation {
    /// The propagation type.
    pub mode: PropagationMode,
    /// Whether it applies to every mount below `/` too (`MS_REC`, the
    /// `r` forms).
    pub recursive: bool,
}

/// A propagation type of mount(2) (`MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`,
/// `MS_UNBINDABLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropagationMode {
    /// `MS_SHARED`: mount events propagate both ways among peers.
    Shared,
    /// `MS_SLAVE`: events come in from the master, none go out.
    Slave,
    /// `MS_PRIVATE`: no propagation either way.
    Private,
    /// `MS_UNBINDABLE`: private, and cannot be bind-mounted.
    Unbindable,
}

impl Propagation {
    /// runc's default: `rslave`.
    pub const DEFAULT: Propagation = Propagation {
        mode: PropagationMode::Slave,
        recursive: true,
    };

    /// The runtime-spec name (`"rslave"`).
    pub const fn name(self) -> &'static str {
        match (self.mode, self.recursive) {
            (PropagationMode::Shared, false) => "shared",
            (PropagationMode::Slave, false) => "slave",
            (PropagationMode::Private, false) => "private",
            (PropagationMode::Unbindable, false) => "unbindable",
            (PropagationMode::Shared, true) => "rshared",
            (PropagationMode::Slave, true) => "rslave",
            (PropagationMode::Private, true) => "rprivate",
            (PropagationMode::Unbindable, true) => "runbindable",
        }
    }

    /// Every value, in the order of the runtime-spec's list.
    pub const ALL: [Propagation; 8] = {
        use PropagationMode::{Private, Shared, Slave, Unbindable};
        const fn p(mode: PropagationMode, recursive: bool) -> Propagation {
            Propagation { mode, recursive }
        }
        [
            p(Shared, false),
            p(Slave, false),
            p(Private, false),
            p(Unbindable, false),
            p(Shared, true),
            p(Slave, true),
            p(Private, true),
            p(Unbindable, true),
        ]
    };
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Propagation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Propagation::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown propagation {s:?}"))
    }
}

impl Serialize for Propagation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Propagation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_propagation_name_round_trips() {
        let names: Vec<&str> = Propagation::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "shared",
                "slave",
                "private",
                "unbindable",
                "rshared",
                "rslave",
                "rprivate",
                "runbindable"
            ]
        );
        for p in Propagation::ALL {
            assert_eq!(p.name().parse::<Propagation>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Propagation>(&json).unwrap(), p);
        }
    }
}
