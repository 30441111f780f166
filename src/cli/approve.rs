//! `dingsync approve <target>`: approves the removals the deletion gate holds for a
//! SyncTarget. Reads the pending token from its status, shows what will be removed, asks
//! (unless `--yes`) and sets the approve annotation to that token, exactly as
//! `kubectl annotate st <target> dingsync.io/approve-deletions=<token>` would.

use std::io::{BufRead, Write};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use crate::{
    api::{
        SyncTarget,
        target::{APPROVE_ANNOTATION, PendingApproval},
    },
    report::{RunReport, store},
};

/// Removals listed before asking; the report holds them all.
const SHOWN: usize = 50;

/// Options of `dingsync approve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SyncTarget.
    pub target: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Approve without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("no Kubernetes client (KUBECONFIG or in-cluster config): {0}")]
    Client(#[source] Box<kube::Error>),
    #[error("SyncTarget {name}: {source}")]
    Target {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("SyncTarget {0} holds no removals for approval")]
    NothingHeld(String),
    #[error("reading the answer: {0}")]
    Prompt(#[source] std::io::Error),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::runtime::block_on(approve(args))??;
    Ok(())
}

async fn approve(args: Args) -> Result<(), ApproveError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default()
        .await
        .map_err(|e| ApproveError::Client(Box::new(e)))?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let held = pending(&client, &ns, &args.target).await?;
    // The newest report that held removals names them, when the run reported them.
    let reports = store::load(&client, &ns, &args.target)
        .await
        .unwrap_or_default();
    println!("{}", describe(&args.target, &held, &reports));
    if !args.yes && !confirm()? {
        println!("not approved");
        return Ok(());
    }
    annotate(&client, &ns, &args.target, &held.token).await?;
    println!(
        "approved: {APPROVE_ANNOTATION}={} set on {ns}/{}",
        held.token, args.target
    );
    Ok(())
}

/// The removals the target's status says are held.
pub async fn pending(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<PendingApproval, ApproveError> {
    let api: Api<SyncTarget> = Api::namespaced(client.clone(), namespace);
    let t = api
        .get(target)
        .await
        .map_err(|source| ApproveError::Target {
            name: target.into(),
            source: Box::new(source),
        })?;
    t.status
        .and_then(|s| s.pending_approval)
        .ok_or_else(|| ApproveError::NothingHeld(format!("{namespace}/{target}")))
}

/// What approving will let through.
pub fn describe(target: &str, held: &PendingApproval, reports: &[RunReport]) -> String {
    let mut out = format!(
        "SyncTarget {target}: {}\n  {} removals of {} owned entries; token {}",
        held.message, held.removals, held.owned, held.token
    );
    let report = reports.iter().find_map(|r| {
        let h = r.held.as_ref().filter(|h| h.token == held.token)?;
        Some((r, h))
    });
    let Some((r, h)) = report else {
        return out;
    };
    let started = r.start_time.map(|t| t.to_string()).unwrap_or_default();
    out.push_str(&format!(
        "\n  held by the {:?} run ({}) started {started}",
        r.run, r.trigger
    ));
    for line in h.entries.iter().take(SHOWN) {
        out.push_str(&format!("\n    {line}"));
    }
    if h.entries.len() > SHOWN {
        let more = h.entries.len() - SHOWN;
        out.push_str(&format!(
            "\n    … and {more} more (dingsync report {target} -o yaml lists them)"
        ));
    }
    out
}

fn confirm() -> Result<bool, ApproveError> {
    print!("Approve these removals? [y/N] ");
    std::io::stdout().flush().map_err(ApproveError::Prompt)?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(ApproveError::Prompt)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Sets the approve annotation to `token` (a merge patch of that one annotation).
pub async fn annotate(
    client: &Client,
    namespace: &str,
    target: &str,
    token: &str,
) -> Result<(), ApproveError> {
    let api: Api<SyncTarget> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({ "metadata": { "annotations": { APPROVE_ANNOTATION: token } } });
    api.patch(target, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| ApproveError::Target {
            name: target.into(),
            source: Box::new(source),
        })?;
    Ok(())
}
