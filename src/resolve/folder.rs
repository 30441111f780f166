//! The objects of a SyncTarget from a folder of manifests: the same YAML the cluster gets.
//! Secrets come from Secret manifests in the folder or, when absent, from environment
//! variables `DINGSYNC_SECRET_<SECRET NAME>_<KEY>` (upper case, `-` and `.` as `_`), so
//! credentials need not sit next to the manifests. Namespaces are not looked at: a folder
//! describes one namespace.

use crate::api::Reason;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use super::{
    Problem,
    objects::{ObjectSource, SecretAt, SourceError},
};
use crate::api::{DingTalkBinding, FieldMapping, SyncTarget};

/// Why a folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {source}")]
    Yaml {
        at: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{at}: {source}")]
    Object {
        at: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{at}: data.{key} is not {what}")]
    SecretData {
        at: String,
        key: String,
        what: &'static str,
    },
}

/// Every object of a folder (or of one file), by name.
#[derive(Default)]
pub struct Manifests {
    pub secrets: HashMap<String, HashMap<String, String>>,
    pub bindings: HashMap<String, DingTalkBinding>,
    pub mappings: HashMap<String, FieldMapping>,
    pub targets: Vec<SyncTarget>,
}

impl Manifests {
    /// Reads every `.yaml`/`.yml` file of `path` (in name order), or the one file it names.
    pub fn load(path: &Path) -> Result<Self, FolderError> {
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |source| FolderError::Io { path, source }
        };
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut f: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io(path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            f.sort();
            f
        } else {
            vec![path.to_path_buf()]
        };
        let mut m = Manifests::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
                let at = format!("{} document {}", file.display(), i + 1);
                let v: Value =
                    serde::Deserialize::deserialize(doc).map_err(|source| FolderError::Yaml {
                        at: at.clone(),
                        source,
                    })?;
                m.add(v, &at)?;
            }
        }
        Ok(m)
    }

    /// Keeps one document if it is one of ours (or a Secret); other kinds are passed over.
    fn add(&mut self, v: Value, at: &str) -> Result<(), FolderError> {
        if v.is_null() {
            return Ok(());
        }
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let at = format!("{at} ({} {name})", v["kind"].as_str().unwrap_or("?"));
        let object = |source| FolderError::Object {
            at: at.clone(),
            source,
        };
        match v["kind"].as_str() {
            Some("Secret") => {
                let data = secret_data(&v, &at)?;
                self.secrets.insert(name, data);
            }
            Some("DingTalkBinding") => {
                self.bindings
                    .insert(name, serde_json::from_value(v).map_err(object)?);
            }
            Some("FieldMapping") => {
                self.mappings
                    .insert(name, serde_json::from_value(v).map_err(object)?);
            }
            Some("SyncTarget") => self
                .targets
                .push(serde_json::from_value(v).map_err(object)?),
            _ => {}
        }
        Ok(())
    }

    /// The value of `key` in Secret `name`, from the manifests or the environment.
    pub fn secret(&self, name: &str, key: &str, field: &str) -> Result<String, Problem> {
        if let Some(v) = self.secrets.get(name).and_then(|s| s.get(key)) {
            return Ok(v.trim().to_string());
        }
        let var = format!("DINGSYNC_SECRET_{name}_{key}")
            .to_uppercase()
            .replace(['-', '.'], "_");
        std::env::var(&var).map(|v| v.trim().to_string()).map_err(|_| {
            let reason = if self.secrets.contains_key(name) {
                Reason::SecretKeyMissing
            } else {
                Reason::SecretNotFound
            };
            Problem::new(
                reason,
                format!(
                    "{field}: Secret {name:?} key {key:?} is neither in the manifests nor in ${var}"
                ),
            )
        })
    }
}

/// A Secret manifest's `data` (base64) and `stringData`, as text.
fn secret_data(v: &Value, at: &str) -> Result<HashMap<String, String>, FolderError> {
    let bad = |key: &str, what| FolderError::SecretData {
        at: at.to_string(),
        key: key.to_string(),
        what,
    };
    let mut data = HashMap::new();
    for (k, val) in v["data"].as_object().into_iter().flatten() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(val.as_str().unwrap_or_default())
            .map_err(|_| bad(k, "base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| bad(k, "text"))?;
        data.insert(k.clone(), text);
    }
    for (k, val) in v["stringData"].as_object().into_iter().flatten() {
        data.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
    }
    Ok(data)
}

#[async_trait]
impl ObjectSource for Manifests {
    async fn binding(&self, _: &str, name: &str) -> Result<Option<DingTalkBinding>, SourceError> {
        Ok(self.bindings.get(name).cloned())
    }

    async fn mapping(&self, _: &str, name: &str) -> Result<Option<FieldMapping>, SourceError> {
        Ok(self.mappings.get(name).cloned())
    }

    async fn target(&self, _: &str, name: &str) -> Result<Option<SyncTarget>, SourceError> {
        Ok(self
            .targets
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(name))
            .cloned())
    }

    async fn secret_key(&self, at: SecretAt<'_>) -> Result<Result<Vec<u8>, Problem>, SourceError> {
        Ok(self
            .secret(at.name, at.key, at.field)
            .map(String::into_bytes))
    }
}
