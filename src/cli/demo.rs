//! `dingsync demo`: the whole product on one machine. The DingTalk simulator serves a
//! generated company, the real client reads it at DingTalk's rate limit, the real engine keeps
//! an embedded directory in step, and a few HR changes show what each one does.

use std::{sync::Arc, time::Instant};

use crate::{
    api::FieldMappingSpec,
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::{Directory, memory::MemoryDirectory},
    mapping::Mapping,
    sim::{
        self, Org, SimConfig, SimHandle, Simulator, UserWrite,
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
    crate::runtime::block_on(demo(args))?
}

/// The demo's FieldMapping, written as a user would write its `spec`.
const MAPPING: &str = r#"
user:
  attributes:
    - { target: cn, template: "{{ name }}" }
    - { target: sn, template: "{{ name[:1] }}" }
    - { target: mail, template: "{{ (email or org_email) | default('') | lower }}" }
    - { target: mobile, template: "{{ mobile | default('') }}" }
    - { target: title, template: "{{ title | default('') }}" }
    - { target: employeeNumber, template: "{{ job_number | default('') }}" }
  match:
    - { source: "{{ mobile }}", target: mobile }
  uniqueName:
    attribute: uid
    template: "{{ name | pinyin }}"
"#;

fn mapping() -> anyhow::Result<Mapping> {
    let spec: FieldMappingSpec = serde_yaml::from_str(MAPPING)?;
    Ok(Mapping::compile(&spec)?)
}

fn show(title: &str, r: &Report, took: std::time::Duration) {
    println!("\n== {title}");
    println!("   {} in {took:.2?}", super::report::counts(r));
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

/// The engine's pieces the demo runs again and again.
struct Demo {
    source: DingTalkSource,
    dir: Arc<MemoryDirectory>,
    mapping: Mapping,
    opts: Options,
}

impl Demo {
    /// One full sync, shown under `title`.
    async fn sync(&self, title: &str) -> anyhow::Result<Report> {
        let quiet = |_: &str, _: usize, _: Option<usize>| {};
        let t = Instant::now();
        let r = sync::run(
            &self.source,
            self.dir.as_ref(),
            &self.mapping,
            &self.opts,
            false,
            &quiet,
        )
        .await?;
        show(title, &r, t.elapsed());
        Ok(r)
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
    let demo = Demo {
        source: DingTalkSource::new(client.clone(), vec![1]),
        dir: Arc::new(MemoryDirectory::new("uid")),
        mapping: mapping()?,
        opts: Options::default(),
    };

    let r = demo.sync("First full sync").await?;
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
    demo.sync("Second full sync, nothing changed in DingTalk")
        .await?;

    let hr = hr_changes(&handle, &org)?;
    demo.sync("Full sync after the HR changes").await?;
    show_accounts(&demo, &org, &hr).await?;

    handle.rehire(&hr.leaver, None)?;
    demo.sync(&format!("{} is rehired", hr.leaver)).await?;
    demo.sync("And once more: converged").await?;
    println!(
        "\nThe same engine runs in the Kubernetes controller (`dingsync controller`) against OpenLDAP; see README.md."
    );
    handle.shutdown().await;
    Ok(())
}

/// Who the HR changes touched.
struct HrChanges {
    moved_user: String,
    leaver: String,
}

/// HR changes, made in the simulated DingTalk through the same calls its admin API offers: a
/// homonym is hired, a department renamed, someone moved, someone leaves.
fn hr_changes(handle: &SimHandle, org: &Org) -> anyhow::Result<HrChanges> {
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
    Ok(HrChanges { moved_user, leaver })
}

/// What the directory holds after the HR changes: distinct homonyms, a kept name, a disabled
/// leaver.
async fn show_accounts(demo: &Demo, org: &Org, hr: &HrChanges) -> anyhow::Result<()> {
    let people = &org.people;
    let snap = demo.dir.read().await?;
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
    let HrChanges { moved_user, leaver } = hr;
    if let Some((name, _, depts)) = uid(moved_user) {
        println!("   {moved_user} keeps uid {name}, now in departments {depts:?}");
    }
    if let Some((name, disabled, _)) = uid(leaver) {
        println!(
            "   {leaver} (uid {name}) is {}, not deleted: a rehire re-enables the same account",
            if disabled {
                "disabled"
            } else {
                "still enabled"
            }
        );
    }
    Ok(())
}
