//! `dingsync demo`: the whole product on one machine. The DingTalk simulator serves a
//! generated company, the real client reads it at DingTalk's rate limit, the real engine keeps
//! an embedded directory in step, and a few HR changes show what each one does.

use std::{sync::Arc, time::Instant};

use crate::{
    api::{
        FieldMappingSpec,
        mapping::{AttributeRule, MatchRule, UniqueName, UserMapping},
    },
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::{Directory, memory::MemoryDirectory},
    mapping::Mapping,
    sim::{
        self, SimConfig, Simulator, UserWrite,
        generate::{GenSpec, generate},
    },
    sync::{self, Options, Report, dingtalk_source::DingTalkSource},
};

/// Options of `dingsync demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// People in the generated company.
    #[arg(long, default_value_t = 300)]
    pub people: usize,
    /// Departments in the generated company.
    #[arg(long, default_value_t = 24)]
    pub departments: usize,
    /// Seed of the generator (same seed, same company).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Entry point of `dingsync demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(demo(args))
}

fn mapping() -> anyhow::Result<Mapping> {
    let rule = |t: &str, tpl: &str| AttributeRule {
        target: t.into(),
        template: tpl.into(),
        ..Default::default()
    };
    Ok(Mapping::compile(&FieldMappingSpec {
        direction: Default::default(),
        user: UserMapping {
            attributes: vec![
                rule("cn", "{{ name }}"),
                rule("sn", "{{ name[:1] }}"),
                rule("mail", "{{ (email or org_email) | default('') | lower }}"),
                rule("mobile", "{{ mobile | default('') }}"),
                rule("title", "{{ title | default('') }}"),
                rule("employeeNumber", "{{ job_number | default('') }}"),
            ],
            match_rules: vec![MatchRule {
                source: "{{ mobile }}".into(),
                target: "mobile".into(),
            }],
            unique_name: UniqueName {
                attribute: "uid".into(),
                template: "{{ name | pinyin }}".into(),
                ..Default::default()
            },
        },
        department: None,
    })?)
}

fn show(title: &str, r: &Report, took: std::time::Duration) {
    println!("\n== {title}");
    println!(
        "   created {}, updated {}, moved {}, disabled {}, enabled {}, deleted {}, unchanged {}, failed {} — {} directory writes in {:.2?}",
        r.created,
        r.updated,
        r.moved,
        r.disabled,
        r.enabled,
        r.deleted,
        r.unchanged,
        r.failures.len(),
        r.writes,
        took
    );
    for s in r
        .plan
        .steps
        .iter()
        .filter(|s| {
            !matches!(
                s.op,
                sync::Op::AddMembers { .. } | sync::Op::RemoveMembers { .. }
            )
        })
        .take(8)
    {
        println!("   {:<8} {:<24} {}", s.op.verb(), s.label, s.reason);
    }
    let members: Vec<String> = r
        .plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            sync::Op::AddMembers { dept, people } if people.len() <= 3 => {
                Some(format!("+{} → dept {dept}", people.join(",")))
            }
            sync::Op::RemoveMembers { dept, people } if people.len() <= 3 => {
                Some(format!("-{} ← dept {dept}", people.join(",")))
            }
            _ => None,
        })
        .take(6)
        .collect();
    if !members.is_empty() {
        println!("   memberships: {}", members.join("; "));
    }
    for f in r.failures.iter().take(5) {
        println!(
            "   FAILED {} {} ({}): {}",
            f.kind, f.id, f.reason, f.message
        );
    }
}

async fn demo(args: Args) -> anyhow::Result<()> {
    println!(
        "dingsync demo: a simulated DingTalk enterprise → the real sync engine → an embedded directory."
    );
    println!(
        "No cluster and no DingTalk tenant needed. Generating {} people in {} departments (seed {})...",
        args.people, args.departments, args.seed
    );
    let org = generate(&GenSpec {
        people: args.people,
        departments: args.departments,
        seed: args.seed,
        ..Default::default()
    });
    let handle = Simulator::start(SimConfig::default(), org.clone(), "127.0.0.1:0").await?;
    println!(
        "DingTalk simulator at {} (20 calls/s per API, as DingTalk's standard edition)",
        handle.base_url()
    );
    let client = DingTalkClient::new(
        ClientConfig::new(
            &org.corp_id,
            sim::DEFAULT_APP_KEY,
            Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
        )
        .with_base(&handle.base_url()),
    );
    let source = DingTalkSource::new(client.clone(), vec![1]);
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let mapping = mapping()?;
    let opts = Options::default();
    let quiet = |_: &str, _: usize, _: Option<usize>| {};

    let t = Instant::now();
    let r = sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet).await?;
    show("First full sync", &r, t.elapsed());
    let calls = client.calls();
    println!(
        "   DingTalk calls: {} listsub, {} user/list, {} department/get; throttled: {}",
        calls.get("/topapi/v2/department/listsub").unwrap_or(&0),
        calls.get("/topapi/v2/user/list").unwrap_or(&0),
        calls.get("/topapi/v2/department/get").unwrap_or(&0),
        handle.counters().throttled
    );
    println!(
        "   people missing mobile: {}, missing email: {}",
        r.missing_mobile, r.missing_email
    );

    let t = Instant::now();
    let r = sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet).await?;
    show(
        "Second full sync, nothing changed in DingTalk",
        &r,
        t.elapsed(),
    );

    // HR changes, made in the simulated DingTalk through the same calls its admin API offers.
    let people = &org.people;
    let homonym = people[0].name.clone();
    let depts: Vec<_> = org
        .departments
        .iter()
        .filter(|d| d.parent_id.is_some())
        .collect();
    let first_dept = depts[0].id;
    let (moved_user, from, to) = {
        let u = &people[1];
        let to = depts
            .iter()
            .map(|d| d.id)
            .find(|d| !u.departments.contains(d))
            .unwrap_or(first_dept);
        (u.userid.clone(), u.departments.clone(), to)
    };
    let leaver = people[2].userid.clone();
    let renamed = depts[1].clone();
    let new_name = format!("{}（新）", renamed.name);
    handle.hire(UserWrite {
        userid: Some("newhire001".into()),
        name: Some(homonym.clone()),
        departments: Some(vec![first_dept]),
        email: Some("newhire001@corp.example".into()),
        ..Default::default()
    })?;
    handle.rename_department(renamed.id, &new_name)?;
    handle.move_user(&moved_user, vec![to])?;
    handle.leave(&leaver)?;
    println!("\nHR changes in DingTalk:");
    println!(
        "   hire newhire001 named {homonym} (a homonym of {})",
        people[0].userid
    );
    println!(
        "   rename department {} {:?} → {new_name:?}",
        renamed.id, renamed.name
    );
    println!("   move {moved_user} from {from:?} to [{to}]");
    println!("   {leaver} leaves");

    let t = Instant::now();
    let r = sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet).await?;
    show("Full sync after the HR changes", &r, t.elapsed());
    let snap = dir.read().await?;
    let uid = |id: &str| {
        snap.people
            .iter()
            .find(|p| p.id.as_deref() == Some(id))
            .map(|p| {
                (
                    p.attrs.first("uid").unwrap().to_owned(),
                    p.disabled,
                    p.departments.clone(),
                )
            })
    };
    if let (Some(a), Some(b)) = (uid(&people[0].userid), uid("newhire001")) {
        println!(
            "   homonyms: {} → uid {}, newhire001 → uid {} (distinct, and the first keeps its name)",
            people[0].userid, a.0, b.0
        );
    }
    if let Some((name, _, depts)) = uid(&moved_user) {
        println!("   {moved_user} keeps uid {name}, now in departments {depts:?}");
    }
    if let Some((name, disabled, _)) = uid(&leaver) {
        println!(
            "   {leaver} (uid {name}) is {}, not deleted: a rehire re-enables the same account",
            if disabled {
                "disabled"
            } else {
                "still enabled"
            }
        );
    }

    handle.rehire(&leaver, None)?;
    let t = Instant::now();
    let r = sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet).await?;
    show(&format!("{leaver} is rehired"), &r, t.elapsed());

    let t = Instant::now();
    let r = sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet).await?;
    show("And once more: converged", &r, t.elapsed());
    println!(
        "\nThe same engine runs in the Kubernetes controller (`dingsync controller`) against OpenLDAP; see README.md."
    );
    handle.shutdown().await;
    Ok(())
}
