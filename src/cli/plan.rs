//! `dingsync plan -f DIR`: what a sync would change, computed from the same YAML the cluster
//! gets, against the real DingTalk and the real directory, writing nothing.
//! `dingsync apply -f DIR`: the same, then writes it — one full sync per target without a
//! cluster, behind the same deletion threshold and incomplete-read gates as the controller.
//!
//! Secrets come from Secret manifests in DIR or, when absent, from environment variables
//! `DINGSYNC_SECRET_<SECRET NAME>_<KEY>` (upper case, `-` and `.` as `_`), so credentials need
//! not sit next to the manifests.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use serde_json::Value;

use crate::{
    api::{DingTalkBinding, FieldMapping, SyncTarget, target::Direction},
    controller::{Sensitive, adapters::client_config},
    dingtalk::DingTalkClient,
    directory::{
        Directory,
        ldap::{
            LdapDirectory,
            client::{ConnectOptions, Pool, Secret as LdapSecret},
            store::Store,
        },
        scim::{
            ScimDirectory,
            client::{BearerToken, ScimClient},
        },
    },
    mapping::{Mapping, outbound::OutboundMapping},
    sync::{
        self, Op, Options,
        dingtalk_source::DingTalkSource,
        outbound::{self, OutboundOptions},
    },
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
    /// Show every operation instead of the first 50 per section.
    #[arg(long)]
    pub all: bool,
}

/// Exit codes: 0 nothing pending, 2 changes pending, 1 error (returned as Err).
pub fn run(args: Args) -> anyhow::Result<()> {
    let pending = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(plan(args, false))?;
    if pending {
        std::process::exit(2);
    }
    Ok(())
}

/// `dingsync apply`. Exit codes: 0 applied (or nothing to do), 3 some objects failed or the
/// run was held by a gate, 1 error (returned as Err).
pub fn run_apply(args: Args) -> anyhow::Result<()> {
    let unfinished = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(plan(args, true))?;
    if unfinished {
        std::process::exit(3);
    }
    Ok(())
}

#[derive(Default)]
pub(super) struct Manifests {
    pub(super) secrets: HashMap<String, HashMap<String, String>>,
    pub(super) bindings: HashMap<String, DingTalkBinding>,
    pub(super) mappings: HashMap<String, FieldMapping>,
    pub(super) targets: Vec<SyncTarget>,
}

pub(super) fn load(path: &PathBuf) -> anyhow::Result<Manifests> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("-f {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        f.sort();
        f
    } else {
        vec![path.clone()]
    };
    let mut m = Manifests::default();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let v: Value = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("{} document {}", file.display(), i + 1))?;
            if v.is_null() {
                continue;
            }
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let at = || {
                format!(
                    "{} document {} ({} {name})",
                    file.display(),
                    i + 1,
                    v["kind"].as_str().unwrap_or("?")
                )
            };
            match v["kind"].as_str() {
                Some("Secret") => {
                    let mut data = HashMap::new();
                    if let Some(d) = v["data"].as_object() {
                        for (k, val) in d {
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(val.as_str().unwrap_or_default())
                                .with_context(|| format!("{}: data.{k} is not base64", at()))?;
                            data.insert(
                                k.clone(),
                                String::from_utf8(bytes)
                                    .with_context(|| format!("{}: data.{k} is not text", at()))?,
                            );
                        }
                    }
                    if let Some(d) = v["stringData"].as_object() {
                        for (k, val) in d {
                            data.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
                        }
                    }
                    m.secrets.insert(name, data);
                }
                Some("DingTalkBinding") => {
                    let b = serde_json::from_value(v.clone()).with_context(at)?;
                    m.bindings.insert(name, b);
                }
                Some("FieldMapping") => {
                    let f = serde_json::from_value(v.clone()).with_context(at)?;
                    m.mappings.insert(name, f);
                }
                Some("SyncTarget") => m
                    .targets
                    .push(serde_json::from_value(v.clone()).with_context(at)?),
                _ => {}
            }
        }
    }
    Ok(m)
}

pub(super) fn secret(m: &Manifests, name: &str, key: &str, field: &str) -> anyhow::Result<String> {
    if let Some(v) = m.secrets.get(name).and_then(|s| s.get(key)) {
        return Ok(v.trim().to_string());
    }
    let var = format!("DINGSYNC_SECRET_{}_{}", name, key)
        .to_uppercase()
        .replace(['-', '.'], "_");
    std::env::var(&var)
        .map(|v| v.trim().to_string())
        .map_err(|_| {
            anyhow!(
                "{field}: Secret {name:?} key {key:?} is neither in the manifests nor in ${var}"
            )
        })
}

/// Plans every target (`write` false: returns whether changes are pending) or applies it
/// (`write` true: returns whether anything failed or was held).
async fn plan(args: Args, write: bool) -> anyhow::Result<bool> {
    let m = load(&args.path)?;
    let targets: Vec<&SyncTarget> = m
        .targets
        .iter()
        .filter(|t| {
            args.target
                .as_ref()
                .is_none_or(|n| t.metadata.name.as_ref() == Some(n))
        })
        .collect();
    if targets.is_empty() {
        bail!("no SyncTarget found in {}", args.path.display());
    }
    let mut pending = false;
    for t in targets {
        let name = t.metadata.name.clone().unwrap_or_default();
        let spec = &t.spec;
        let outbound = spec.direction == Direction::Outbound;
        let binding = m.bindings.get(&spec.binding_ref.name).ok_or_else(|| {
            anyhow!(
                "SyncTarget {name}: spec.bindingRef: DingTalkBinding {:?} not found",
                spec.binding_ref.name
            )
        })?;
        let fm = m
            .mappings
            .get(&spec.field_mapping_ref.name)
            .ok_or_else(|| {
                anyhow!(
                    "SyncTarget {name}: spec.fieldMappingRef: FieldMapping {:?} not found",
                    spec.field_mapping_ref.name
                )
            })?;
        let mapping_error = |e: crate::mapping::MappingError| {
            anyhow!("FieldMapping {}: {e}", spec.field_mapping_ref.name)
        };
        let (mapping, out_mapping) = if outbound {
            (
                None,
                Some(OutboundMapping::compile(&fm.spec).map_err(mapping_error)?),
            )
        } else {
            (
                Some(Mapping::compile(&fm.spec).map_err(mapping_error)?),
                None,
            )
        };
        let cred = &binding.spec.credentials_secret_ref;
        let app_key = secret(&m, &cred.name, &cred.app_key_key, "credentialsSecretRef")?;
        let app_secret = Sensitive::new(secret(
            &m,
            &cred.name,
            &cred.app_secret_key,
            "credentialsSecretRef",
        )?);
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        let (url, dir): (String, Box<dyn Directory>) =
            match (&spec.directory.ldap, &spec.directory.scim) {
                (Some(ldap), _) => {
                    let password = secret(
                        &m,
                        &ldap.password_secret_ref.name,
                        &ldap.password_secret_ref.key,
                        "directory.ldap.passwordSecretRef",
                    )?;
                    let ca = match &ldap.ca_secret_ref {
                        Some(r) => Some(secret(&m, &r.name, &r.key, "directory.ldap.caSecretRef")?),
                        None => None,
                    };
                    bar.set_message(format!("{name}: reading DingTalk and {}", ldap.url));
                    let mut opts = ConnectOptions::new(
                        ldap.url.clone(),
                        ldap.bind_dn.clone(),
                        LdapSecret::new(password),
                    );
                    opts.start_tls = ldap.start_tls;
                    opts.ca_pem = ca;
                    let pool = Pool::connect(opts)
                        .await
                        .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
                    let layout = spec.layout.unwrap_or_default();
                    let corp = &binding.spec.corp_id;
                    // An Outbound node is the source: never written.
                    let store = if write && !outbound {
                        Store::open(pool, &spec.node, layout, corp).await
                    } else {
                        Store::open_read_only(pool, &spec.node, layout, corp).await
                    }
                    .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
                    (ldap.url.clone(), Box::new(LdapDirectory::new(store)))
                }
                (None, Some(scim)) => {
                    let token = secret(
                        &m,
                        &scim.token_secret_ref.name,
                        &scim.token_secret_ref.key,
                        "directory.scim.tokenSecretRef",
                    )?;
                    let ca = match &scim.ca_secret_ref {
                        Some(r) => Some(secret(&m, &r.name, &r.key, "directory.scim.caSecretRef")?),
                        None => None,
                    };
                    bar.set_message(format!("{name}: reading DingTalk and {}", scim.url));
                    // Connecting only reads ServiceProviderConfig; the plan reads, never writes.
                    let client = ScimClient::connect(
                        &scim.url,
                        BearerToken::new(token),
                        ca.as_deref().map(str::as_bytes),
                    )
                    .await
                    .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
                    (
                        scim.url.clone(),
                        Box::new(ScimDirectory::new(
                            client,
                            &binding.spec.corp_id,
                            &spec.node,
                        )),
                    )
                }
                (None, None) => {
                    bail!("SyncTarget {name}: spec.directory: set exactly one of ldap or scim")
                }
            };
        let client = DingTalkClient::new(client_config(&binding.spec, &app_key, &app_secret));
        let deletion = spec.deletion.clone().unwrap_or_default();
        let approval = t
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::api::target::APPROVE_ANNOTATION).cloned());
        if let Some(out_mapping) = &out_mapping {
            let opts = OutboundOptions::for_target(spec, approval)
                .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
            let root = opts.root;
            bar.set_message(format!(
                "{name}: reading {url} and DingTalk department {root}"
            ));
            let r = outbound::run(&client, dir.as_ref(), out_mapping, &opts, !write)
                .await
                .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
            bar.finish_and_clear();
            print_outbound(&name, &url, &spec.node, root, &r, write);
            pending |= !r.failures.is_empty() || r.held.is_some() || (!write && r.pending > 0);
            continue;
        }
        let mapping = mapping.expect("inbound mapping");
        let source = DingTalkSource::new(client, spec.scope.department_ids.clone());
        let options = Options {
            policy: deletion.policy,
            max_count: deletion.max_count.unwrap_or(50),
            max_percent: deletion.max_percent.unwrap_or(10),
            ou_tree: spec.layout == Some(crate::api::target::Layout::OuTree),
            approval,
        };
        let progress = |phase: &str, n: usize, _: Option<usize>| {
            bar.set_message(format!("{name}: {phase} ({n})"))
        };
        if write {
            let report = sync::run(&source, dir.as_ref(), &mapping, &options, false, &progress)
                .await
                .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
            bar.finish_and_clear();
            print_report(&name, &url, &spec.node, &report);
            pending |= !report.failures.is_empty() || report.held.is_some();
            continue;
        }
        let (snapshot, plan) = sync::compute(&source, dir.as_ref(), &mapping, &options, &progress)
            .await
            .map_err(|e| anyhow!("SyncTarget {name}: {e}"))?;
        bar.finish_and_clear();
        print_plan(&name, &url, &spec.node, &snapshot, &plan, args.all);
        pending |= !plan.steps.is_empty() || plan.held.is_some();
    }
    Ok(pending)
}

fn print_outbound(
    name: &str,
    url: &str,
    node: &str,
    root: i64,
    r: &outbound::OutboundReport,
    written: bool,
) {
    println!("SyncTarget {name} (Outbound): {url} {node} -> DingTalk department {root}");
    println!(
        "  directory: {} departments, {} people{}",
        r.departments,
        r.people,
        if r.complete {
            String::new()
        } else {
            format!(
                "; DingTalk read INCOMPLETE, no removals: {}",
                r.incomplete.join("; ")
            )
        }
    );
    if let Some(h) = &r.held {
        println!("  HELD: {} (approve with token {})", h.message, h.token);
    }
    if written {
        println!(
            "  people: {} created, {} updated, {} moved, {} removed, {} kept, {} unchanged; departments: {} created, {} updated, {} deleted; {} DingTalk writes",
            r.created,
            r.updated,
            r.moved,
            r.deleted,
            r.kept,
            r.unchanged,
            r.departments_created,
            r.departments_updated,
            r.departments_deleted,
            r.writes
        );
    } else {
        println!(
            "  {} DingTalk writes pending; {} people unchanged, {} kept",
            r.pending, r.unchanged, r.kept
        );
        for line in &r.sample {
            println!("    {line}");
        }
    }
    for f in &r.failures {
        println!(
            "  FAILED {} {} {}: {} ({})",
            f.kind, f.id, f.name, f.message, f.reason
        );
    }
}

fn print_report(name: &str, url: &str, node: &str, r: &sync::Report) {
    println!("SyncTarget {name}: {url} {node}");
    println!(
        "  DingTalk: {} departments, {} people{}",
        r.departments,
        r.people,
        if r.complete {
            String::new()
        } else {
            format!(
                " (INCOMPLETE read, {} removals held back: {})",
                r.suppressed_removals,
                r.incomplete.join("; ")
            )
        }
    );
    println!(
        "  created {}, updated {}, moved {}, disabled {}, enabled {}, deleted {}, unchanged {}, failed {}; {} directory writes",
        r.created,
        r.updated,
        r.moved,
        r.disabled,
        r.enabled,
        r.deleted,
        r.unchanged,
        r.failures.len(),
        r.writes
    );
    if let Some(held) = &r.held {
        println!("  HELD, nothing written: {}", held.message);
    }
    for f in r.failures.iter().take(20) {
        println!("  FAILED {} {} ({}): {}", f.kind, f.id, f.reason, f.message);
    }
}

fn print_plan(
    name: &str,
    url: &str,
    node: &str,
    snapshot: &crate::model::SourceSnapshot,
    plan: &sync::Plan,
    all: bool,
) {
    println!("SyncTarget {name}: {url} {node}");
    println!(
        "  DingTalk: {} departments, {} people{}",
        snapshot.departments.len(),
        snapshot.people.len(),
        if snapshot.complete {
            String::new()
        } else {
            format!(" (INCOMPLETE read: {})", snapshot.incomplete.join("; "))
        }
    );
    let mark = |op: &Op| match op {
        Op::CreateDept { .. }
        | Op::CreatePerson { .. }
        | Op::EnablePerson { .. }
        | Op::LinkPerson { .. } => "+",
        Op::DisablePerson { .. } | Op::DeletePerson { .. } | Op::DeleteDept { .. } => "-",
        _ => "~",
    };
    for (title, people) in [("departments", false), ("people", true)] {
        let steps: Vec<&sync::Step> = plan
            .steps
            .iter()
            .filter(|s| !matches!(s.op, Op::AddMembers { .. } | Op::RemoveMembers { .. }))
            .filter(|s| (s.op.subject().0 == "User") == people)
            .collect();
        if steps.is_empty() {
            continue;
        }
        println!("  {title}:");
        for s in steps.iter().take(if all { usize::MAX } else { 50 }) {
            println!(
                "    {} {:<8} {:<28} {}",
                mark(&s.op),
                s.op.verb(),
                s.label,
                s.reason
            );
        }
        if !all && steps.len() > 50 {
            println!("    … {} more (--all shows them)", steps.len() - 50);
        }
    }
    let adds: usize = plan
        .steps
        .iter()
        .map(|s| {
            if let Op::AddMembers { people, .. } = &s.op {
                people.len()
            } else {
                0
            }
        })
        .sum();
    let removes: usize = plan
        .steps
        .iter()
        .map(|s| {
            if let Op::RemoveMembers { people, .. } = &s.op {
                people.len()
            } else {
                0
            }
        })
        .sum();
    if adds + removes > 0 {
        println!("  memberships: +{adds} -{removes}");
    }
    for p in &plan.problems {
        println!(
            "  ! {} {} {}: {} ({})",
            p.kind, p.id, p.name, p.message, p.reason
        );
    }
    if plan.suppressed_removals > 0 {
        println!(
            "  {} disables/deletes left out: the DingTalk read was incomplete",
            plan.suppressed_removals
        );
    }
    if let Some(h) = &plan.held {
        println!(
            "  HELD: {} — approve with annotation dingsync.io/approve-deletions={}",
            h.message, h.token
        );
    }
    println!(
        "  plan: {} create, {} update, {} link, {} move, {} enable, {} disable, {} delete; {} unchanged",
        plan.count("create"),
        plan.count("update"),
        plan.count("link"),
        plan.count("move"),
        plan.count("enable"),
        plan.count("disable"),
        plan.count("delete"),
        plan.unchanged_people + plan.unchanged_departments
    );
}
