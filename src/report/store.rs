//! Run reports in ConfigMaps the target owns. The index, `<target>-reports` (the one
//! `status.lastReport` names), lists the kept reports newest first, one line each
//! (`kubectl get cm <target>-reports -o jsonpath='{.data.index}'`); each report is its own
//! ConfigMap, `<target>-report-<seq>`, its JSON split into pages of at most [`PAGE_BYTES`]
//! (`<target>-report-<seq>-1`, …) since a ConfigMap holds at most 1 MiB: 10,000 failures
//! fit. A new report writes its own pages and the index, and deletes the reports it pushes
//! out; kept reports are never rewritten. Deleting the target deletes them all (owner
//! reference).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};

use super::{Entry, RunReport};

/// Bytes of report JSON one ConfigMap holds, below its 1 MiB limit with room for metadata.
pub const PAGE_BYTES: usize = 900 * 1024;
/// The data key of a report page's part of the report's JSON.
pub const REPORT_KEY: &str = "report.json";
/// The index's data key of its entries (JSON, newest first).
pub const ENTRIES_KEY: &str = "entries.json";
/// The index's one line per report.
pub const INDEX_KEY: &str = "index";
/// The label naming the target a report ConfigMap belongs to.
pub const TARGET_LABEL: &str = "dingsync.io/reports-of";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("report ConfigMap {name}: {source}")]
    Kube {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("report ConfigMap {name} does not parse: {source}")]
    Decode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The index's name: the one `status.lastReport` names.
pub fn name(target: &str) -> String {
    // Room for "-report-<seq>-<page>" within the 253 characters of a name.
    format!("{}-reports", base(target))
}

fn base(target: &str) -> String {
    target.chars().take(210).collect()
}

/// The name of page `page` of report `seq`.
pub fn page_name(target: &str, seq: u64, page: usize) -> String {
    match page {
        0 => format!("{}-report-{seq}", base(target)),
        k => format!("{}-report-{seq}-{k}", base(target)),
    }
}

fn config_map(name: String, target: &str, owner: Option<&OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (TARGET_LABEL.to_string(), target.to_string()),
                ("app.kubernetes.io/managed-by".into(), "dingsync".into()),
            ])),
            owner_references: owner.map(|o| vec![o.clone()]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The pages of report `seq`.
pub fn encode_report(
    target: &str,
    owner: Option<&OwnerReference>,
    seq: u64,
    report: &RunReport,
) -> Vec<ConfigMap> {
    let json = serde_json::to_string(report).expect("reports always serialise");
    (split(&json, PAGE_BYTES).into_iter().enumerate())
        .map(|(k, chunk)| {
            let mut cm = config_map(page_name(target, seq, k), target, owner);
            cm.data = Some(BTreeMap::from([(
                REPORT_KEY.to_string(),
                chunk.to_string(),
            )]));
            cm
        })
        .collect()
}

/// The index listing `entries` (newest first).
pub fn encode_index(target: &str, owner: Option<&OwnerReference>, entries: &[Entry]) -> ConfigMap {
    let json = serde_json::to_string(entries).expect("entries always serialise");
    let index: String = entries.iter().map(|e| e.line.clone() + "\n").collect();
    let mut cm = config_map(name(target), target, owner);
    cm.data = Some(BTreeMap::from([
        (ENTRIES_KEY.to_string(), json),
        (INDEX_KEY.to_string(), index),
    ]));
    cm
}

/// `text` cut into parts of at most `max` bytes, never inside a character.
fn split(text: &str, max: usize) -> Vec<&str> {
    let mut out = vec![];
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

fn data<'a>(page: &'a ConfigMap, key: &str) -> Option<&'a str> {
    page.data.as_ref()?.get(key).map(String::as_str)
}

fn cm_name(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap_or_default()
}

/// The entries an index lists, newest first.
pub fn decode_index(index: &ConfigMap) -> Result<Vec<Entry>, StoreError> {
    let json = data(index, ENTRIES_KEY).unwrap_or("[]");
    serde_json::from_str(json).map_err(|source| StoreError::Decode {
        name: cm_name(index),
        source,
    })
}

/// The report its pages (in order) hold.
pub fn decode_report(pages: &[ConfigMap]) -> Result<RunReport, StoreError> {
    let json: String = pages
        .iter()
        .map(|p| data(p, REPORT_KEY).unwrap_or_default())
        .collect();
    serde_json::from_str(&json).map_err(|source| StoreError::Decode {
        name: pages.first().map(cm_name).unwrap_or_default(),
        source,
    })
}

fn kube_error(name: &str) -> impl FnOnce(kube::Error) -> StoreError + '_ {
    move |source| StoreError::Kube {
        name: name.to_string(),
        source: Box::new(source),
    }
}

/// The target's index entries, newest first; none before its first report.
pub async fn load_index(api: &Api<ConfigMap>, target: &str) -> Result<Vec<Entry>, StoreError> {
    let n = name(target);
    match api.get_opt(&n).await.map_err(kube_error(&n))? {
        Some(index) => decode_index(&index),
        None => Ok(vec![]),
    }
}

/// One kept report; `None` when a page is gone (pushed out while being read).
pub async fn load_report(
    api: &Api<ConfigMap>,
    target: &str,
    e: &Entry,
) -> Result<Option<RunReport>, StoreError> {
    let mut pages = vec![];
    for k in 0..e.pages {
        let n = page_name(target, e.seq, k);
        match api.get_opt(&n).await.map_err(kube_error(&n))? {
            Some(p) => pages.push(p),
            None => return Ok(None),
        }
    }
    decode_report(&pages).map(Some)
}

/// The target's kept reports, newest first; none when it has no reports yet.
pub async fn load(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<Vec<RunReport>, StoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut out = vec![];
    for e in load_index(&api, target).await? {
        out.extend(load_report(&api, target, &e).await?);
    }
    Ok(out)
}

/// Creates the ConfigMap, or replaces it when it exists.
async fn write(api: &Api<ConfigMap>, mut cm: ConfigMap) -> Result<(), StoreError> {
    let n = cm_name(&cm);
    let pp = PostParams::default();
    match api.create(&pp, &cm).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let current = api.get(&n).await.map_err(kube_error(&n))?;
            cm.metadata.resource_version = current.metadata.resource_version;
            api.replace(&n, &pp, &cm).await.map_err(kube_error(&n))?;
            Ok(())
        }
        Err(e) => Err(kube_error(&n)(e)),
    }
}

async fn delete(api: &Api<ConfigMap>, name: &str) -> Result<(), StoreError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(kube_error(name)(e)),
    }
}

/// Adds `new` (oldest first) to the target's reports and keeps the newest `keep`: writes the
/// new reports' pages, then the index, then deletes the reports pushed out. Returns the
/// index's name and its entries, newest first.
pub async fn append(
    client: &Client,
    namespace: &str,
    target: &str,
    owner: Option<&OwnerReference>,
    new: &[RunReport],
    keep: usize,
) -> Result<(String, Vec<Entry>), StoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut entries = match load_index(&api, target).await {
        Ok(e) => e,
        // An index that does not parse is started over rather than stop all reporting.
        Err(StoreError::Decode { .. }) => vec![],
        Err(e) => return Err(e),
    };
    let mut seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
    for r in new {
        seq += 1;
        let pages = encode_report(target, owner, seq, r);
        entries.insert(0, Entry::of(seq, pages.len(), r));
        for page in pages {
            write(&api, page).await?;
        }
    }
    let gone = entries.split_off(keep.clamp(1, entries.len().max(1)));
    write(&api, encode_index(target, owner, &entries)).await?;
    for e in gone {
        for k in 0..e.pages {
            delete(&api, &page_name(target, e.seq, k)).await?;
        }
    }
    Ok((name(target), entries))
}
