//! `dingsync report <target>`: the run reports a SyncTarget keeps in its report ConfigMaps,
//! read from the cluster (the kubeconfig's current context, like `kubectl`), filtered and
//! printed as a table, JSON or YAML. Installed as `kubectl-dingsync` it is `kubectl dingsync
//! report`.

use std::fmt::Write as _;

use kube::Client;

use crate::report::{ReportFailure, RunReport, store};

/// Failures a table shows per report without `--failed` (which lists them all).
const TABLE_FAILURES: usize = 10;

/// Options of `dingsync report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SyncTarget.
    pub target: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only the failures: every failed object of every kept report.
    #[arg(long)]
    pub failed: bool,
    /// Only failures with this reason (e.g. `TemplateError`); implies `--failed`.
    #[arg(long)]
    pub reason: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Which reports and failures to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub failed: bool,
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no Kubernetes client (KUBECONFIG or in-cluster config): {0}")]
    Client(#[source] Box<kube::Error>),
    #[error(transparent)]
    Store(#[from] Box<store::StoreError>),
    #[error("SyncTarget {namespace}/{name} has no run reports yet")]
    NoReports { namespace: String, name: String },
    #[error("printing the reports: {0}")]
    Encode(String),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = crate::runtime::block_on(report(args))??;
    print!("{out}");
    Ok(())
}

async fn report(args: Args) -> Result<String, ReportError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = Client::try_default()
        .await
        .map_err(|e| ReportError::Client(Box::new(e)))?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let filter = Filter {
        failed: args.failed || args.reason.is_some(),
        reason: args.reason.clone(),
    };
    let reports = fetch(&client, &ns, &args.target).await?;
    render(&select(reports, &filter), args.output, &filter)
}

/// The target's kept reports, newest first.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<Vec<RunReport>, ReportError> {
    let reports = store::load(client, namespace, target)
        .await
        .map_err(Box::new)?;
    if reports.is_empty() {
        return Err(ReportError::NoReports {
            namespace: namespace.into(),
            name: target.into(),
        });
    }
    Ok(reports)
}

/// The reports `filter` asks for: with `failed`, only those with failures (or that could
/// not run), each keeping only its failures of the asked reason.
pub fn select(reports: Vec<RunReport>, filter: &Filter) -> Vec<RunReport> {
    if !filter.failed {
        return reports;
    }
    reports
        .into_iter()
        .filter_map(|mut r| {
            if let Some(reason) = &filter.reason {
                r.failures.retain(|f| &f.reason == reason);
                if r.failures.is_empty() {
                    return None;
                }
            }
            (!r.failures.is_empty() || r.error.is_some()).then_some(r)
        })
        .collect()
}

/// The failures of `reports`, each with the report it came from, in report order.
pub fn failures(reports: &[RunReport]) -> Vec<(&RunReport, &ReportFailure)> {
    reports
        .iter()
        .flat_map(|r| r.failures.iter().map(move |f| (r, f)))
        .collect()
}

pub fn render(
    reports: &[RunReport],
    format: Format,
    filter: &Filter,
) -> Result<String, ReportError> {
    match format {
        Format::Json => serde_json::to_string_pretty(reports)
            .map(|s| s + "\n")
            .map_err(|e| ReportError::Encode(e.to_string())),
        Format::Yaml => {
            serde_yaml::to_string(reports).map_err(|e| ReportError::Encode(e.to_string()))
        }
        Format::Table if filter.failed => Ok(failure_table(reports)),
        Format::Table => Ok(run_table(reports)),
    }
}

/// `--failed` as a table: one line per failed object.
fn failure_table(reports: &[RunReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:<10} {:<20} {:<20} {:<18} {:<40} MESSAGE",
        "RUN", "KIND", "ID", "NAME", "REASON", "DN"
    );
    for (r, f) in failures(reports) {
        let _ = writeln!(
            out,
            "{:<26} {:<10} {:<20} {:<20} {:<18} {:<40} {}",
            r.id(),
            f.kind,
            f.id,
            f.name,
            f.reason,
            f.dn.as_deref().unwrap_or("-"),
            one_line(&f.message)
        );
    }
    for r in reports.iter().filter(|r| r.error.is_some()) {
        let _ = writeln!(
            out,
            "{:<26} run failed: {}",
            r.id(),
            one_line(r.error.as_deref().unwrap_or(""))
        );
    }
    out
}

/// Each report: what ran, its counts, held removals, who lacks what, and its first failures.
fn run_table(reports: &[RunReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let counts: Vec<String> = r.counts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        let end = r.end_time.map(|t| format!(" → {t}")).unwrap_or_default();
        let start = r.start_time.map(|t| t.to_string()).unwrap_or_default();
        let _ = writeln!(out, "{:?} ({}) {start}{end}", r.run, r.trigger);
        let complete = if r.complete { "" } else { "; INCOMPLETE read" };
        let batches = if r.batches > 0 {
            format!("; {} batches", r.batches)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}; failed {}{complete}{batches}",
            counts.join(", "),
            r.failures.len()
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  ERROR: {}", one_line(e));
        }
        if let Some(h) = &r.held {
            let _ = writeln!(
                out,
                "  HELD: {} (approve with token {})",
                h.message, h.token
            );
        }
        let l = &r.lacking;
        if l.missing_mobile + l.missing_email > 0 {
            let _ = writeln!(
                out,
                "  without a mobile: {}, without an email: {}",
                l.missing_mobile, l.missing_email
            );
        }
        for f in r.failures.iter().take(TABLE_FAILURES) {
            let _ = writeln!(
                out,
                "  FAILED {} {} {} ({}): {}",
                f.kind,
                f.id,
                f.name,
                f.reason,
                one_line(&f.message)
            );
        }
        if r.failures.len() > TABLE_FAILURES {
            let _ = writeln!(
                out,
                "  … and {} more (--failed lists them)",
                r.failures.len() - TABLE_FAILURES
            );
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}
