//! `dingsync plan -f DIR`: what a sync would change, computed from the same YAML the cluster
//! gets, against the real DingTalk and the real directory, writing nothing.
//! `dingsync apply -f DIR`: the same, then writes it — one full sync per target without a
//! cluster, behind the same deletion threshold and incomplete-read gates as the controller.
//!
//! Targets are resolved and opened exactly as the controller does (`resolve`); Secrets come
//! from Secret manifests in DIR or from `DINGSYNC_SECRET_<SECRET NAME>_<KEY>` variables.

use std::{path::PathBuf, time::Duration};

use anyhow::{anyhow, bail};

use super::{
    plan_view,
    plan_view::report_json,
    report::{print_outbound, print_plan, print_report},
};
use crate::{
    api::SyncTarget,
    dingtalk::ClientPool,
    resolve::{self, Access, Inbound, Manifests, Opened, Outbound, Resolved},
    sync::{self, outbound},
};

/// Options of `dingsync plan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory (or file) with the DingTalkBinding, FieldMapping, SyncTarget and Secret YAML.
    #[arg(short = 'f', long = "filename")]
    pub path: PathBuf,
    /// Only this SyncTarget (default: every one found).
    #[arg(long)]
    pub target: Option<String>,
    /// Show every operation instead of the first 50 per section, and everyone without a
    /// mobile or an email instead of the first 20.
    #[arg(long)]
    pub all: bool,
    /// `text` (a tree by department, coloured on a terminal) or `json` (one document with
    /// every target's plan, for machines).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// How `plan` and `apply` print.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Exit codes: 0 nothing pending, 2 changes pending, 1 error (returned as Err).
pub fn run(args: Args) -> anyhow::Result<()> {
    if crate::runtime::block_on(plan(args, false))?? {
        std::process::exit(2);
    }
    Ok(())
}

/// `dingsync apply`. Exit codes: 0 applied (or nothing to do), 3 some objects failed or the
/// run was held by a gate, 1 error (returned as Err).
pub fn run_apply(args: Args) -> anyhow::Result<()> {
    if crate::runtime::block_on(plan(args, true))?? {
        std::process::exit(3);
    }
    Ok(())
}

/// Plans every target (`write` false: returns whether changes are pending) or applies it
/// (`write` true: returns whether anything failed or was held).
async fn plan(args: Args, write: bool) -> anyhow::Result<bool> {
    let m = Manifests::load(&args.path)?;
    let wanted = |t: &&SyncTarget| {
        let name = t.metadata.name.as_ref();
        args.target.as_ref().is_none_or(|n| name == Some(n))
    };
    let targets: Vec<&SyncTarget> = m.targets.iter().filter(wanted).collect();
    if targets.is_empty() {
        bail!("no SyncTarget found in {}", args.path.display());
    }
    let clients = ClientPool::default();
    let mut pending = false;
    let mut json = vec![];
    for t in targets {
        let name = t.metadata.name.clone().unwrap_or_default();
        let r = resolve::resolve(&m, t)
            .await?
            .map_err(|p| anyhow!("SyncTarget {name}: {p}"))?;
        // A spinner on a terminal only (indicatif draws nothing elsewhere), never with JSON.
        let bar = match args.output {
            Output::Text => indicatif::ProgressBar::new_spinner(),
            Output::Json => indicatif::ProgressBar::hidden(),
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        let url = directory_url(&r);
        bar.set_message(format!("{name}: reading DingTalk and {url}"));
        let access = if write {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let opened = resolve::open(&r, access, &clients)
            .await
            .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
        let run = Target {
            name: &name,
            url: &url,
            resolved: &r,
            bar: &bar,
            write,
            all: args.all,
            json: (args.output == Output::Json).then_some(&mut json),
        };
        pending |= match opened {
            Opened::Outbound(o) => run.outbound(o).await?,
            Opened::Inbound(i) => run.inbound(i).await?,
        };
    }
    if args.output == Output::Json {
        let doc = serde_json::json!({ "targets": json });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(pending)
}

/// The server a target's directory is on, for the output.
fn directory_url(r: &Resolved) -> String {
    r.spec.directory.url().unwrap_or_default().to_owned()
}

/// One target being planned or applied.
struct Target<'a> {
    name: &'a str,
    url: &'a str,
    resolved: &'a Resolved,
    bar: &'a indicatif::ProgressBar,
    write: bool,
    all: bool,
    /// With `-o json`: where each target's document goes instead of the text.
    json: Option<&'a mut Vec<serde_json::Value>>,
}

impl Target<'_> {
    /// Returns whether something is pending (plan) or unfinished (apply).
    async fn outbound(mut self, o: Outbound) -> anyhow::Result<bool> {
        let root = o.options.root;
        let (name, url) = (self.name, self.url);
        self.bar.set_message(format!(
            "{name}: reading {url} and DingTalk department {root}"
        ));
        let r = outbound::run(
            &o.client,
            o.dir.as_ref(),
            &o.mapping,
            &o.options,
            !self.write,
        )
        .await
        .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
        self.bar.finish_and_clear();
        let node = &self.resolved.spec.node;
        match self.json.take() {
            Some(out) => out.push(plan_view::outbound_json((name, url, node), root, &r)),
            None => print_outbound(name, url, node, root, &r, self.write),
        }
        Ok(!r.failures.is_empty() || r.held.is_some() || (!self.write && r.pending > 0))
    }

    /// Returns whether something is pending (plan) or unfinished (apply).
    async fn inbound(mut self, i: Inbound) -> anyhow::Result<bool> {
        let name = self.name;
        let node = &self.resolved.spec.node;
        let progress = |phase: &str, n: usize, _: Option<usize>| {
            self.bar.set_message(format!("{name}: {phase} ({n})"))
        };
        let (source, dir) = (i.source.as_ref(), i.dir.as_ref());
        if self.write {
            let report = sync::run(source, dir, &i.mapping, &i.options, false, &progress)
                .await
                .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
            self.bar.finish_and_clear();
            match self.json.take() {
                Some(out) => out.push(report_json((name, self.url, node), &report)),
                None => print_report(name, self.url, node, &report),
            }
            return Ok(!report.failures.is_empty() || report.held.is_some());
        }
        let (snapshot, plan) = sync::compute(source, dir, &i.mapping, &i.options, &progress)
            .await
            .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
        self.bar.finish_and_clear();
        match self.json.take() {
            Some(out) => out.push(plan_view::plan_json(
                (name, self.url, node),
                &snapshot,
                &plan,
            )),
            None => print_plan(name, self.url, node, &snapshot, &plan, self.all),
        }
        Ok(!plan.steps.is_empty() || plan.held.is_some())
    }
}
