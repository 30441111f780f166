//! Run reports in ConfigMaps the target owns: the kept reports, newest first, as one JSON
//! array split into pages of at most [`PAGE_BYTES`] (a ConfigMap holds at most 1 MiB), so
//! 10,000 failures fit. Page 0 is `<target>-reports` and says how many pages there are and,
//! one line per report, what each run did (`kubectl get cm <target>-reports -o yaml`);
//! page k is `<target>-reports-<k>`. Deleting the target deletes them (owner reference).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};

use super::RunReport;

/// Bytes of report JSON one ConfigMap holds, below its 1 MiB limit with room for metadata.
pub const PAGE_BYTES: usize = 900 * 1024;
/// The data key of each page's part of the JSON array.
pub const DATA_KEY: &str = "reports.json";
/// Page 0's count of pages.
pub const PAGES_KEY: &str = "pages";
/// Page 0's one line per report.
pub const INDEX_KEY: &str = "index";
/// The label naming the target a report page belongs to.
pub const TARGET_LABEL: &str = "dingsync.io/reports-of";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("report ConfigMap {name}: {source}")]
    Kube {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("report ConfigMap {0} is missing (the reports are being rewritten; try again)")]
    MissingPage(String),
    #[error("the reports do not parse: {0}")]
    Decode(#[source] serde_json::Error),
}

/// The first page's name: the one `status.lastReport` names.
pub fn name(target: &str) -> String {
    // Room for "-reports-NNN" within the 253 characters of a name.
    let base: String = target.chars().take(238).collect();
    format!("{base}-reports")
}

fn page_name(target: &str, page: usize) -> String {
    match page {
        0 => name(target),
        k => format!("{}-{k}", name(target)),
    }
}

/// The pages holding `reports` (newest first) for `target`, owned by `owner`.
pub fn encode(
    target: &str,
    owner: Option<&OwnerReference>,
    reports: &[RunReport],
) -> Vec<ConfigMap> {
    let json = serde_json::to_string(reports).expect("reports always serialise");
    let chunks = split(&json, PAGE_BYTES);
    let index: String = reports.iter().map(|r| index_line(r) + "\n").collect();
    chunks
        .iter()
        .enumerate()
        .map(|(k, chunk)| {
            let mut data = BTreeMap::from([(DATA_KEY.to_string(), chunk.to_string())]);
            if k == 0 {
                data.insert(PAGES_KEY.into(), chunks.len().to_string());
                data.insert(INDEX_KEY.into(), index.clone());
            }
            ConfigMap {
                metadata: ObjectMeta {
                    name: Some(page_name(target, k)),
                    labels: Some(BTreeMap::from([
                        (TARGET_LABEL.to_string(), target.to_string()),
                        ("app.kubernetes.io/managed-by".into(), "dingsync".into()),
                    ])),
                    owner_references: owner.map(|o| vec![o.clone()]),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            }
        })
        .collect()
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

/// One line of page 0's index: the run, when, its counts and failures.
fn index_line(r: &RunReport) -> String {
    let counts: Vec<String> = r.counts.iter().map(|(v, n)| format!("{v}={n}")).collect();
    let held = r
        .held
        .as_ref()
        .map(|h| format!(" held={}", h.removals))
        .unwrap_or_default();
    format!(
        "{} {} {} failed={}{held}",
        r.id(),
        r.trigger,
        counts.join(" "),
        r.failures.len()
    )
}

fn data<'a>(page: &'a ConfigMap, key: &str) -> Option<&'a str> {
    page.data.as_ref()?.get(key).map(String::as_str)
}

/// How many pages page 0 says there are.
pub fn page_count(first: &ConfigMap) -> usize {
    data(first, PAGES_KEY)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The reports the pages (in order) hold, newest first.
pub fn decode(pages: &[ConfigMap]) -> Result<Vec<RunReport>, StoreError> {
    let json: String = pages
        .iter()
        .map(|p| data(p, DATA_KEY).unwrap_or_default())
        .collect();
    if json.is_empty() {
        return Ok(vec![]);
    }
    serde_json::from_str(&json).map_err(StoreError::Decode)
}

fn kube_error(name: &str) -> impl FnOnce(kube::Error) -> StoreError + '_ {
    move |source| StoreError::Kube {
        name: name.to_string(),
        source: Box::new(source),
    }
}

/// The target's kept reports, newest first; none when it has no report ConfigMap yet.
pub async fn load(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<Vec<RunReport>, StoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let first_name = name(target);
    let Some(first) = api
        .get_opt(&first_name)
        .await
        .map_err(kube_error(&first_name))?
    else {
        return Ok(vec![]);
    };
    let mut pages = vec![first];
    for k in 1..page_count(&pages[0]) {
        let n = page_name(target, k);
        let page = api.get_opt(&n).await.map_err(kube_error(&n))?;
        pages.push(page.ok_or(StoreError::MissingPage(n))?);
    }
    decode(&pages)
}

/// Writes `reports` (newest first) as the target's pages, and removes pages a longer
/// earlier set left over. Returns page 0's name.
pub async fn save(
    client: &Client,
    namespace: &str,
    target: &str,
    owner: Option<&OwnerReference>,
    reports: &[RunReport],
) -> Result<String, StoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let pages = encode(target, owner, reports);
    let first_name = name(target);
    let before = match api
        .get_opt(&first_name)
        .await
        .map_err(kube_error(&first_name))?
    {
        Some(first) => page_count(&first),
        None => 0,
    };
    // The later pages first, page 0 (which says how many there are) last: a reader never
    // follows page 0 to pages that are not written yet.
    for (k, page) in pages.iter().enumerate().rev() {
        write(&api, page.clone(), k < before).await?;
    }
    for k in pages.len()..before {
        let n = page_name(target, k);
        match api.delete(&n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_error(&n)(e)),
        }
    }
    Ok(first_name)
}

/// Creates the page, or replaces it when it exists.
async fn write(api: &Api<ConfigMap>, mut page: ConfigMap, exists: bool) -> Result<(), StoreError> {
    let n = page.metadata.name.clone().unwrap_or_default();
    let pp = PostParams::default();
    let current = if exists {
        api.get_opt(&n).await.map_err(kube_error(&n))?
    } else {
        None
    };
    match current {
        Some(cur) => {
            page.metadata.resource_version = cur.metadata.resource_version;
            api.replace(&n, &pp, &page).await.map_err(kube_error(&n))?;
        }
        None => match api.create(&pp, &page).await {
            Ok(_) => {}
            // Left over from a set whose page 0 was not rewritten: replace it.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let cur = api.get(&n).await.map_err(kube_error(&n))?;
                page.metadata.resource_version = cur.metadata.resource_version;
                api.replace(&n, &pp, &page).await.map_err(kube_error(&n))?;
            }
            Err(e) => return Err(kube_error(&n)(e)),
        },
    }
    Ok(())
}

/// Adds `new` (oldest first) to the target's reports, keeps the newest `keep`, and writes
/// them. Returns page 0's name and the kept reports, newest first.
pub async fn append(
    client: &Client,
    namespace: &str,
    target: &str,
    owner: Option<&OwnerReference>,
    new: Vec<RunReport>,
    keep: usize,
) -> Result<(String, Vec<RunReport>), StoreError> {
    let mut kept = match load(client, namespace, target).await {
        Ok(k) => k,
        // Unreadable (a half-written set from a crash): start over rather than stop reporting.
        Err(StoreError::Decode(_) | StoreError::MissingPage(_)) => vec![],
        Err(e) => return Err(e),
    };
    for r in new {
        kept.insert(0, r);
    }
    kept.truncate(keep.max(1));
    let name = save(client, namespace, target, owner, &kept).await?;
    Ok((name, kept))
}
