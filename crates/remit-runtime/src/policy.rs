//! Policy folders on disk and the live engine built from them.
//!
//! A policy folder holds `manifest.json` (preset, engine, escalation mode),
//! the preset copied as `preset.cedar` (or `preset.rego`), the operator's
//! tuning under `overrides/`, and an optional `entities.json` used by
//! `remit policy eval`. `remit serve` keeps one in `<data>/policy`, written
//! from the configured preset on first start and never overwritten.
//!
//! Decisions record the folder's [`PolicyVersion`]: the hash of the files
//! the loader reads, which anyone recomputes with `sha256sum`
//! ([`PolicyVersion::of_files`]; [`PolicyFolder::version`]).
//!
//! The server does not decide with `entities.json`: it builds the entity
//! [`Directory`] from its registry ([`directory_from_registry`]) and rebuilds
//! the engine when the registry changes, so decisions see the agents, servers
//! and tools that exist now.

use std::path::{Path, PathBuf};

use remit_policy::model::{self, Directory, RiskTier};
use remit_policy::{
    EngineKind, LoadError, Manifest, PolicyEngine, PolicySource, PolicyVersion, Preset,
    VersionError,
};
use remit_store::{Status, Store, StoreError};

/// Why a policy folder could not be read, written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFolderError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `remit policy new` refuses to write into a non-empty folder.
    #[error("{path} exists and is not empty; choose a new folder")]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// The manifest, policies or entities do not load.
    #[error("{path}: {source}")]
    Load {
        /// The folder.
        path: PathBuf,
        /// What the policy crate said.
        #[source]
        source: LoadError,
    },
    /// A file name cannot be versioned.
    #[error("{path}: {source}")]
    Version {
        /// The folder.
        path: PathBuf,
        /// What the policy crate said.
        #[source]
        source: VersionError,
    },
    /// `entities.json` does not parse.
    #[error("{path}: {detail}")]
    Entities {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PolicyFolderError {
    let path = path.to_owned();
    move |source| PolicyFolderError::Io {
        action,
        path,
        source,
    }
}

fn read_text(path: &Path) -> Result<String, PolicyFolderError> {
    std::fs::read_to_string(path).map_err(io("reading", path))
}

/// A policy folder read from disk.
#[derive(Debug, Clone)]
pub struct PolicyFolder {
    path: PathBuf,
    manifest: Manifest,
    /// `manifest.json` as read: its bytes are part of the version.
    manifest_text: String,
    sources: Vec<PolicySource>,
    entities: Option<String>,
}

/// `manifest.json` as [`PolicyFolder::create`] writes it.
fn manifest_text(manifest: &Manifest) -> Result<String, serde_json::Error> {
    Ok(format!("{}\n", serde_json::to_string_pretty(manifest)?))
}

/// The version of the files `manifest.json` (as `manifest_text`) and
/// `sources` (named by their paths in the folder).
fn files_version(
    manifest_text: &str,
    sources: &[PolicySource],
) -> Result<PolicyVersion, VersionError> {
    PolicyVersion::of_files(
        std::iter::once(("manifest.json", manifest_text.as_bytes()))
            .chain(sources.iter().map(|s| (s.name.as_str(), s.text.as_bytes()))),
    )
}

/// The built-in `standard` preset (Cedar), for a process without a policy
/// folder, versioned as the folder `remit policy new --preset standard`
/// writes.
pub fn builtin_standard(directory: Directory) -> Result<Box<dyn PolicyEngine>, PolicyFolderError> {
    let (preset, engine) = (Preset::Standard, EngineKind::Cedar);
    let path = PathBuf::from("(built-in standard preset)");
    let manifest = Manifest::new(preset, engine);
    let load = |source| PolicyFolderError::Load {
        path: path.clone(),
        source,
    };
    let text = manifest_text(&manifest).map_err(|e| {
        load(LoadError::Manifest {
            message: e.to_string(),
        })
    })?;
    let sources = [preset.source(engine)];
    let version = files_version(&text, &sources).map_err(|source| PolicyFolderError::Version {
        path: path.clone(),
        source,
    })?;
    let mut loaded = manifest.load(&sources, directory).map_err(load)?;
    loaded.set_version(version);
    Ok(loaded)
}

impl PolicyFolder {
    /// Writes a new folder: the preset, an empty `overrides/` with a README,
    /// and sample entities. Refuses a folder that exists and is not empty.
    pub fn create(
        dir: &Path,
        preset: Preset,
        engine: EngineKind,
    ) -> Result<Self, PolicyFolderError> {
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(io("reading", dir))?
                .next()
                .is_some()
        {
            return Err(PolicyFolderError::NotEmpty {
                path: dir.to_owned(),
            });
        }
        let overrides = dir.join("overrides");
        std::fs::create_dir_all(&overrides).map_err(io("creating", &overrides))?;
        let manifest = Manifest::new(preset, engine);
        let ext = engine.extension();
        let write = |path: PathBuf, text: &str| -> Result<(), PolicyFolderError> {
            std::fs::write(&path, text).map_err(io("writing", &path))
        };
        let manifest_text = manifest_text(&manifest).map_err(|e| PolicyFolderError::Load {
            path: dir.to_owned(),
            source: LoadError::Manifest {
                message: e.to_string(),
            },
        })?;
        write(dir.join("manifest.json"), &manifest_text)?;
        write(dir.join(format!("preset.{ext}")), preset.text(engine))?;
        write(
            overrides.join("README.md"),
            &format!(
                "Put your tuning here as *.{ext} files. They are layered on preset.{ext} and \
                 validated together with it.\n\nEvery policy needs a unique @id(\"...\") and a \
                 @reason(\"...\"). A forbid always wins; a permit annotated @escalate(\"why\") \
                 holds the call for a human approval. Check with `remit policy validate`.\n"
            ),
        )?;
        write(
            dir.join("entities.json"),
            remit_policy::preset::SAMPLE_ENTITIES,
        )?;
        Self::read(dir)
    }

    /// Reads a folder: the manifest, the preset, then `overrides/*.<ext>` in
    /// name order (not hidden files), and `entities.json` if present.
    pub fn read(dir: &Path) -> Result<Self, PolicyFolderError> {
        let manifest_path = dir.join("manifest.json");
        let manifest_text = read_text(&manifest_path)?;
        let manifest =
            Manifest::from_json(&manifest_text).map_err(|source| PolicyFolderError::Load {
                path: manifest_path.clone(),
                source,
            })?;
        let ext = manifest.engine.extension();
        let mut sources = vec![PolicySource::new(
            format!("preset.{ext}"),
            read_text(&dir.join(format!("preset.{ext}")))?,
        )];
        let overrides = dir.join("overrides");
        if overrides.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&overrides)
                .map_err(io("reading", &overrides))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                // As `overrides/*.<ext>` in a shell: hidden files are not read.
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            for file in files {
                let name = format!(
                    "overrides/{}",
                    file.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                );
                sources.push(PolicySource::new(name, read_text(&file)?));
            }
        }
        let entities_path = dir.join("entities.json");
        let entities = if entities_path.exists() {
            Some(read_text(&entities_path)?)
        } else {
            None
        };
        let folder = Self {
            path: dir.to_owned(),
            manifest,
            manifest_text,
            sources,
            entities,
        };
        folder.version()?;
        Ok(folder)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The folder's version: the hash of `manifest.json`, the preset and
    /// the overrides as read ([`PolicyVersion::of_files`]), what every
    /// decision loaded from it records.
    pub fn version(&self) -> Result<PolicyVersion, PolicyFolderError> {
        files_version(&self.manifest_text, &self.sources).map_err(|source| {
            PolicyFolderError::Version {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// The policy sources: the preset first, then the overrides.
    pub fn sources(&self) -> &[PolicySource] {
        &self.sources
    }

    /// The folder's `entities.json`, or an empty directory without one.
    pub fn entities(&self) -> Result<Directory, PolicyFolderError> {
        match &self.entities {
            Some(text) => Directory::from_json(text).map_err(|e| PolicyFolderError::Entities {
                path: self.path.join("entities.json"),
                detail: e.to_string(),
            }),
            None => Ok(Directory::default()),
        }
    }

    /// Loads the engine over these sources plus `extra` (a policy under
    /// test), deciding against `directory`.
    pub fn load(
        &self,
        extra: Option<PolicySource>,
        directory: Directory,
    ) -> Result<Box<dyn PolicyEngine>, PolicyFolderError> {
        let mut sources = self.sources.clone();
        sources.extend(extra);
        let mut engine =
            self.manifest
                .load(&sources, directory)
                .map_err(|source| PolicyFolderError::Load {
                    path: self.path.clone(),
                    source,
                })?;
        // A policy under test is versioned as one more file.
        let version = files_version(&self.manifest_text, &sources).map_err(|source| {
            PolicyFolderError::Version {
                path: self.path.clone(),
                source,
            }
        })?;
        engine.set_version(version);
        Ok(engine)
    }
}

/// The policy entity directory mirroring the registry: every agent (its
/// owner becomes a user), every server and its tools (`server/tool`).
///
/// Disabled agents are kept with `registered: false` so a policy can name
/// them; disabled servers are not blessed.
pub async fn directory_from_registry<S: Store>(store: &S) -> Result<Directory, StoreError> {
    let mut dir = Directory::default();
    for agent in store.agents().await? {
        dir.users.insert(agent.owner.clone(), model::User {});
        let tier = match agent.risk_tier {
            remit_store::RiskTier::Low => 0,
            remit_store::RiskTier::Medium => 1,
            remit_store::RiskTier::High => 2,
            remit_store::RiskTier::Critical => 3,
        };
        dir.agents.insert(
            agent.id.to_string(),
            model::Agent {
                owner: agent.owner,
                risk_tier: RiskTier::try_from(tier).map_err(|e| StoreError::Corrupt {
                    what: "agent risk tier",
                    detail: e.to_string(),
                })?,
                registered: agent.status == Status::Active,
            },
        );
    }
    for server in store.servers().await? {
        let tools = store.tools(&server.id).await?;
        let pinned = pinned_description_hash(&tools);
        dir.servers.insert(
            server.id.to_string(),
            model::Server {
                blessed: server.status == Status::Active,
                pinned_description_hash: pinned,
            },
        );
        for tool in tools {
            dir.tools.insert(
                format!("{}/{}", server.id, tool.name),
                model::Tool {
                    server: server.id.to_string(),
                    name: tool.name.to_string(),
                    risk: risk(tool.risk),
                    destination_clearance: tool.clearance,
                    external: false,
                },
            );
        }
    }
    Ok(dir)
}

/// The hash pinned for a server's whole tool list: SHA-256 (hex) over the
/// sorted `name:description_sha256` lines. Any tool added, removed or changed
/// changes it.
pub fn description_hash<'a>(tools: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<String> = tools.map(|(n, d)| format!("{n}:{d}\n")).collect();
    lines.sort();
    hex::encode(crate::setup::sha256(lines.concat().as_bytes()))
}

/// [`description_hash`] over a server's blessed tools and their pins.
pub fn pinned_description_hash(tools: &[remit_store::Tool]) -> String {
    description_hash(
        tools
            .iter()
            .map(|t| (t.name.as_str(), t.description_sha256.as_str())),
    )
}

/// The store's tool risk in the policy's words (`critical` is `irreversible`).
pub fn risk(risk: remit_store::RiskTier) -> model::Risk {
    match risk {
        remit_store::RiskTier::Low => model::Risk::Low,
        remit_store::RiskTier::Medium => model::Risk::Medium,
        remit_store::RiskTier::High => model::Risk::High,
        remit_store::RiskTier::Critical => model::Risk::Irreversible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_folder_reads_back_and_loads_with_the_presets_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy");
        let folder = PolicyFolder::create(&path, Preset::Standard, EngineKind::Cedar).unwrap();
        assert_eq!(folder.manifest().preset, Preset::Standard);
        assert_eq!(folder.sources().len(), 1);
        let engine = folder.load(None, Directory::default()).unwrap();
        let again = PolicyFolder::read(&path)
            .unwrap()
            .load(None, Directory::default())
            .unwrap();
        assert_eq!(engine.version(), again.version());
        let err = PolicyFolder::create(&path, Preset::Lockdown, EngineKind::Cedar).unwrap_err();
        assert!(matches!(err, PolicyFolderError::NotEmpty { .. }), "{err}");
    }

    #[test]
    fn decisions_record_the_folder_hash_that_sha256sum_recomputes() {
        let dir = tempfile::tempdir().unwrap();
        let folder = PolicyFolder::create(dir.path(), Preset::Standard, EngineKind::Cedar).unwrap();
        let v = folder.version().unwrap();
        let engine = folder.load(None, Directory::default()).unwrap();
        assert_eq!(engine.version(), &v, "the engine carries the folder's hash");
        // The documented procedure, with standard tools only.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(
                "LC_ALL=C sha256sum manifest.json preset.cedar overrides/*.cedar 2>/dev/null \
                 | LC_ALL=C sort -k 2 | sha256sum",
            )
            .current_dir(dir.path())
            .output()
            .unwrap();
        let shell = String::from_utf8(out.stdout).unwrap();
        assert_eq!(format!("sha256:{}", &shell[..64]), v.to_string());
        // The built-in preset is versioned as the folder `policy new` writes.
        let builtin = builtin_standard(Directory::default()).unwrap();
        assert_eq!(builtin.version(), &v);
        // A comment added in an override is a new version, and so is the
        // same shell pipeline's answer.
        std::fs::write(dir.path().join("overrides/b.cedar"), "// tuning\n").unwrap();
        std::fs::write(dir.path().join("overrides/.hidden.cedar"), "x").unwrap();
        std::fs::write(dir.path().join("overrides/notes.txt"), "x").unwrap();
        let edited = PolicyFolder::read(dir.path()).unwrap();
        let v2 = edited.version().unwrap();
        assert_ne!(v2, v);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("LC_ALL=C sha256sum manifest.json preset.cedar overrides/*.cedar | LC_ALL=C sort -k 2 | sha256sum")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let shell = String::from_utf8(out.stdout).unwrap();
        assert_eq!(format!("sha256:{}", &shell[..64]), v2.to_string());
    }

    #[test]
    fn an_override_that_does_not_parse_is_refused_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let folder = PolicyFolder::create(dir.path(), Preset::Standard, EngineKind::Cedar).unwrap();
        std::fs::write(dir.path().join("overrides/bad.cedar"), "permit (").unwrap();
        let folder2 = PolicyFolder::read(dir.path()).unwrap();
        assert_eq!(folder2.sources().len(), folder.sources().len() + 1);
        let err = folder2
            .load(None, Directory::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.cedar"), "{err}");
    }

    #[test]
    fn the_pinned_hash_changes_with_any_tool_description() {
        let a = description_hash([("read", "aa"), ("write", "bb")].into_iter());
        let b = description_hash([("write", "bb"), ("read", "aa")].into_iter());
        let c = description_hash([("read", "aa"), ("write", "bc")].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
