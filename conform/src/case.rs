//! The conformance corpus: one JSON file per case in `conformance/cases/`.
//!
//! A case is plain JSON that any project can read without nsapply:
//!
//! ```json
//! {
//!   "description": "joins a host-owned network namespace, creates a user namespace",
//!   "linux": {"namespaces": [{"type": "network", "path": "${WORLD}/net"}, {"type": "user"}],
//!             "uidMappings": [...], "gidMappings": [...]},
//!   "world": {"namespaces": [{"name": "net", "type": "network", "paths": ["${WORLD}/net"]}]},
//!   "expect": {"outcome": "accept"}
//! }
//! ```
//!
//! * `linux` is merged into the bundle's `config.json` as is (a bad input
//!   keeps its duplicate or unknown type: it is never parsed into a typed
//!   config first);
//! * `world` is what must exist before the runtime runs, in the format of
//!   nsapply's kernel model (`nsapply::model::World`: namespaces with their
//!   owner user namespace, id maps and paths; regular files). Every
//!   `${WORLD}` in `linux` and `world` is replaced by a fresh, absolute
//!   directory that holds the world's files;
//! * `expect` is the reference verdict: `accept`, or `reject` with the
//!   stable nsapply error code and the stage (`validation`: before any
//!   system call; `open`: opening a namespace path, before any namespace
//!   is joined or created). `tests/conform.rs` checks that nsapply itself
//!   gives exactly this verdict for every case;
//! * `exec: true` (optional) makes it an exec case ([`crate::exec`]): the
//!   runtime starts the container detached, and what is compared is
//!   `RUNTIME exec` into it. Its config must be valid (`accept`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use nsapply::model::{Model, World};
use nsapply::simulate::simulate;
use nsapply::{plan, NsConfig, Plan};

/// The placeholder replaced by the world directory.
pub const WORLD_PLACEHOLDER: &str = "${WORLD}";

/// When a reference rejection happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Validation of config.json, before any system call.
    Validation,
    /// Opening a namespace path, before any namespace is joined or created.
    Open,
}

impl Stage {
    /// The name used in the corpus.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Validation => "validation",
            Stage::Open => "open",
        }
    }
}

/// The reference verdict of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase", deny_unknown_fields)]
pub enum Expect {
    /// A valid config: the container runs in the namespaces it asks for.
    Accept,
    /// A bad input: rejected with `code`, at `stage`.
    Reject {
        /// nsapply's stable error code (`duplicate-namespace`).
        code: String,
        /// When.
        stage: Stage,
    },
}

/// One case of the corpus, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The name: the file name without `.json`.
    #[serde(skip)]
    pub name: String,
    /// One line saying what the case checks.
    pub description: String,
    /// The `linux` object merged into config.json (with `${WORLD}`).
    pub linux: serde_json::Value,
    /// What must exist before the run (with `${WORLD}`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<serde_json::Value>,
    /// An exec case: the container runs detached and `RUNTIME exec` is
    /// what is traced and judged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec: bool,
    /// The reference verdict.
    pub expect: Expect,
}

/// A corpus file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file or directory cannot be read.
    #[error("cannot read {path:?}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a case.
    #[error("{path:?} is not a conformance case: {message}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A case named on the command line is not in the corpus.
    #[error("no case {name:?} in {dir:?}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The corpus directory.
        dir: PathBuf,
    },
}

/// A case with `${WORLD}` replaced: what a run uses.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The case name.
    pub name: String,
    /// The `linux` object of config.json.
    pub linux: serde_json::Value,
    /// The world.
    pub world: World,
}

impl Case {
    /// Parses one case; `name` is its file stem.
    ///
    /// # Errors
    ///
    /// Not JSON, unknown fields, or a `world` that is not a model world.
    pub fn from_json(name: &str, text: &str) -> Result<Case, String> {
        let mut case: Case = serde_json::from_str(text).map_err(|e| e.to_string())?;
        case.name = name.to_owned();
        if !case.linux.is_object() {
            return Err("\"linux\" must be an object".to_owned());
        }
        if case.exec && case.expect != Expect::Accept {
            return Err(
                "an exec case runs a container: its config must be valid (accept)".to_owned(),
            );
        }
        // The world must parse once its placeholder is filled.
        case.instantiate(Path::new("/nonexistent-world"))?;
        Ok(case)
    }

    /// Replaces `${WORLD}` with `dir` (absolute) in `linux` and `world`.
    ///
    /// # Errors
    ///
    /// The world does not parse as a model world.
    pub fn instantiate(&self, dir: &Path) -> Result<Instance, String> {
        let dir = dir.to_string_lossy();
        let fill = |v: &serde_json::Value| -> Result<serde_json::Value, String> {
            let text = v.to_string().replace(WORLD_PLACEHOLDER, &dir);
            serde_json::from_str(&text).map_err(|e| e.to_string())
        };
        let world = match &self.world {
            None => World::default(),
            Some(w) => {
                World::from_json(&fill(w)?.to_string()).map_err(|e| format!("world: {e}"))?
            }
        };
        Ok(Instance {
            name: self.name.clone(),
            linux: fill(&self.linux)?,
            world,
        })
    }
}

/// What nsapply does with an instance: its plan, or its rejection.
#[derive(Clone, Debug)]
pub enum Reference {
    /// Accepted: the plan nsapply applies.
    Accept(Plan),
    /// Rejected with a code at a stage.
    Reject {
        /// The error code.
        code: String,
        /// When.
        stage: Stage,
        /// nsapply's message.
        message: String,
    },
}

impl Reference {
    /// The verdict part, for comparison with [`Case::expect`].
    pub fn expect(&self) -> Expect {
        match self {
            Reference::Accept(_) => Expect::Accept,
            Reference::Reject { code, stage, .. } => Expect::Reject {
                code: code.clone(),
                stage: *stage,
            },
        }
    }
}

/// nsapply's verdict on `config` (a whole config.json) in `world`:
/// validation, then the plan run on the kernel model of that world.
pub fn reference(config: &serde_json::Value, world: &World) -> Reference {
    let cfg = match NsConfig::from_json(&config.to_string()) {
        Ok(cfg) => cfg,
        Err(e) => {
            return Reference::Reject {
                code: e.code().as_str().to_owned(),
                stage: Stage::Validation,
                message: e.to_string(),
            }
        }
    };
    let p = plan(&cfg);
    let mut model = match Model::new(world) {
        Ok(m) => m,
        Err(e) => {
            return Reference::Reject {
                code: "invalid-world".to_owned(),
                stage: Stage::Validation,
                message: e.to_string(),
            }
        }
    };
    let run = simulate(&p, &mut model);
    match run.error() {
        None => Reference::Accept(p),
        Some(e) => Reference::Reject {
            code: e.code.as_str().to_owned(),
            stage: Stage::Open,
            message: e.message,
        },
    }
}

/// Loads every `*.json` case of `dir`: the valid ones, the bad inputs,
/// then the exec cases, each sorted by name; with `names`, only those, in
/// that order.
///
/// # Errors
///
/// A file that cannot be read or parsed, or a name not in the corpus.
pub fn load_corpus(dir: &Path, names: &[String]) -> Result<Vec<Case>, CaseError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CaseError::Read { path, source }
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).map_err(read_err(path))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let case = Case::from_json(&name, &text).map_err(|message| CaseError::Invalid {
            path: path.clone(),
            message,
        })?;
        cases.push(case);
    }
    if names.is_empty() {
        // Valid cases first, then the bad inputs, then exec; by name within each.
        cases.sort_by_key(|c| (c.exec, c.expect != Expect::Accept, c.name.clone()));
        return Ok(cases);
    }
    names
        .iter()
        .map(|n| {
            cases
                .iter()
                .find(|c| &c.name == n)
                .cloned()
                .ok_or_else(|| CaseError::Unknown {
                    name: n.clone(),
                    dir: dir.to_owned(),
                })
        })
        .collect()
}
