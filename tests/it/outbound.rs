//! Outbound sync against the simulator and a real slapd: a nested OU tree of a few hundred
//! people appears under a chosen DingTalk department; a second run writes nothing; edits,
//! moves, OU renames and removals reach DingTalk; a changed mobile is reported, not applied
//! destructively; the threshold and incomplete-read gates hold; polling picks up changes by
//! `modifyTimestamp`.

use crate::support::{self, slapd};
use std::collections::{BTreeMap, HashMap};

use dingsync::{
    api::{
        FieldMappingSpec,
        target::{DeletionPolicy, Layout},
    },
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::ldap::{LdapDirectory, store::Store},
    mapping::outbound::OutboundMapping,
    sim::{
        self, DeptWrite, SimConfig, Simulator, UserWrite,
        generate::{GenSpec, generate},
        state::{FaultKind, FaultRule},
    },
    sync::{
        SyncError,
        outbound::{self, OutboundOptions, OutboundReport, SOURCE_PREFIX},
    },
};

const CORP: &str = "dingsimcorp";
/// OUs: two levels under the node, people spread over them and the node itself.
const OUS: &[(&str, Option<&str>)] = &[
    ("研发", None),
    ("后端", Some("研发")),
    ("前端", Some("研发")),
    ("销售", None),
    ("华东", Some("销售")),
    ("华南", Some("销售")),
];

/// userid → (name, department paths under the root).
type Users = BTreeMap<String, (String, Vec<String>)>;

/// The shared world (simulator, client, slapd) with an OU tree of external people in `node`.
struct World {
    base: support::World,
    node: String,
    dir: LdapDirectory,
    mapping: OutboundMapping,
    root: i64,
}

impl std::ops::Deref for World {
    type Target = support::World;
    fn deref(&self) -> &support::World {
        &self.base
    }
}

fn ou_dn(node: &str, name: &str) -> String {
    let (_, parent) = OUS.iter().find(|(n, _)| *n == name).unwrap();
    match parent {
        None => format!("ou={name},{node}"),
        Some(p) => format!("ou={name},{}", ou_dn(node, p)),
    }
}

fn person_ldif(dn: &str, i: usize) -> String {
    format!(
        "dn: {dn}\nobjectClass: inetOrgPerson\nuid: ext{i:04}\ncn: 外包{i}\nsn: 外\nmail: ext{i}@example.com\nmobile: 139{i:08}\ntitle: 工程师\n"
    )
}

async fn world(name: &str, people: usize) -> Option<World> {
    let base = support::World::builder()
        .people(5)
        .departments(2)
        .seed(3)
        .rate(1000)
        .slapd()
        .build()
        .await?;
    let (sim, server) = (&base.sim, base.slapd());
    let root = sim
        .create_department(DeptWrite {
            name: Some("外包人员".into()),
            parent_id: Some(1),
            ..Default::default()
        })
        .unwrap()
        .id;
    let node = server.new_node(name).unwrap();
    let mut ldif = String::new();
    for (ou, _) in OUS {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: organizationalUnit\nou: {ou}\n\n",
            ou_dn(&node, ou)
        ));
    }
    for i in 0..people {
        let parent = match i % (OUS.len() + 1) {
            0 => node.clone(),
            k => ou_dn(&node, OUS[k - 1].0),
        };
        ldif.push_str(&person_ldif(&format!("uid=ext{i:04},{parent}"), i));
        ldif.push('\n');
    }
    server.ldapadd(&ldif).unwrap();
    let dir = LdapDirectory::new(
        Store::open_read_only(base.ldap_pool().await, &node, Layout::OuTree, CORP)
            .await
            .unwrap(),
    );
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  - {target: email, template: '{{ mail }}'}\n  - {target: title, template: '{{ title }}'}\n",
    )
    .unwrap();
    Some(World {
        base,
        node,
        dir,
        mapping: OutboundMapping::compile(&spec).unwrap(),
        root,
    })
}

impl World {
    fn opts(&self) -> OutboundOptions {
        OutboundOptions {
            root: self.root,
            policy: DeletionPolicy::Delete,
            max_percent: 100,
            max_count: 0,
            approval: None,
            adopt_existing: false,
        }
    }

    async fn run(&self, opts: &OutboundOptions) -> OutboundReport {
        outbound::run(&self.client, &self.dir, &self.mapping, opts, false)
            .await
            .unwrap()
    }

    fn writes(&self) -> u64 {
        [
            "/topapi/v2/user/create",
            "/topapi/v2/user/update",
            "/topapi/v2/user/delete",
            "/topapi/v2/department/create",
            "/topapi/v2/department/update",
            "/topapi/v2/department/delete",
        ]
        .iter()
        .map(|a| self.sim.calls(a))
        .sum()
    }

    /// DingTalk's subtree under the root: department path by id, and each user's department
    /// paths.
    fn dingtalk(&self) -> (BTreeMap<String, i64>, Users) {
        let org = self.sim.org();
        let path = |mut id: i64| -> Option<String> {
            let mut parts = vec![];
            loop {
                if id == self.root {
                    parts.reverse();
                    return Some(parts.join("/"));
                }
                let d = org.departments.iter().find(|d| d.id == id)?;
                parts.push(d.name.clone());
                id = d.parent_id?;
            }
        };
        let depts: BTreeMap<String, i64> = org
            .departments
            .iter()
            .filter_map(|d| path(d.id).filter(|p| !p.is_empty()).map(|p| (p, d.id)))
            .collect();
        let users = org
            .people
            .iter()
            .filter_map(|p| {
                let paths: Vec<String> = p.departments.iter().filter_map(|d| path(*d)).collect();
                (!paths.is_empty()).then(|| (p.userid.clone(), (p.name.clone(), paths)))
            })
            .collect();
        (depts, users)
    }

    fn user_mobile(&self, userid: &str) -> Option<String> {
        self.sim
            .org()
            .people
            .iter()
            .find(|p| p.userid == userid)
            .and_then(|p| p.mobile.clone())
    }
}

fn expected_path(i: usize) -> String {
    match i % (OUS.len() + 1) {
        0 => String::new(),
        k => {
            let (name, parent) = OUS[k - 1];
            match parent {
                None => name.to_string(),
                Some(p) => format!("{p}/{name}"),
            }
        }
    }
}

#[tokio::test]
async fn a_nested_tree_appears_under_the_department_and_a_second_run_writes_nothing() {
    let Some(w) = world("ob-first", 300).await else {
        return;
    };
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.created, r.departments_created), (300, 6));
    let (depts, users) = w.dingtalk();
    let mut want = vec![
        "研发",
        "研发/前端",
        "研发/后端",
        "销售",
        "销售/华南",
        "销售/华东",
    ];
    want.sort();
    assert_eq!(depts.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(users.len(), 300);
    for i in 0..300 {
        let (name, paths) = &users[&format!("ext{i:04}")];
        assert_eq!(name, &format!("外包{i}"));
        assert_eq!(paths, &vec![expected_path(i)], "ext{i:04}");
    }
    // Departments carry the directory's stable ids.
    let org = w.sim.org();
    assert!(
        org.departments
            .iter()
            .filter(|d| depts.values().any(|id| *id == d.id))
            .all(|d| d
                .source_identifier
                .as_deref()
                .is_some_and(|s| s.starts_with(SOURCE_PREFIX)))
    );
    // Writes per object: one per department, one per person.
    assert_eq!(r.writes, 306);

    let before = w.writes();
    let r2 = w.run(&w.opts()).await;
    assert!(r2.failures.is_empty(), "{:#?}", r2.failures);
    assert_eq!(
        (r2.writes, w.writes() - before),
        (0, 0),
        "nothing changed, nothing written"
    );
    assert_eq!(r2.unchanged, 300);
}

#[tokio::test]
async fn edits_moves_renames_and_removals_reach_dingtalk_and_a_mobile_change_is_reported() {
    let Some(w) = world("ob-changes", 70).await else {
        return;
    };
    w.run(&w.opts()).await;
    let node = &w.node;
    // Edit a name and a title; move a person to another OU; rename an OU; remove a person;
    // change someone's mobile.
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0001,{}\nchangetype: modify\nreplace: cn\ncn: 外包一号\n-\nreplace: title\ntitle: 架构师\n\n\
             dn: uid=ext0002,{}\nchangetype: modrdn\nnewrdn: uid=ext0002\ndeleteoldrdn: 1\nnewsuperior: {}\n\n\
             dn: uid=ext0003,{}\nchangetype: delete\n\n\
             dn: uid=ext0005,{}\nchangetype: modify\nreplace: mobile\nmobile: 13700000005\n\n\
             dn: {}\nchangetype: modrdn\nnewrdn: ou=华东区\ndeleteoldrdn: 1\n",
            ou_dn(node, "研发"),
            ou_dn(node, "后端"),
            ou_dn(node, "销售"),
            ou_dn(node, "前端"),
            ou_dn(node, "华东"),
            ou_dn(node, "华东"),
        ))
        .unwrap();
    let r = w.run(&w.opts()).await;
    let (depts, users) = w.dingtalk();
    assert_eq!(users["ext0001"].0, "外包一号");
    assert_eq!(users["ext0002"].1, vec!["销售".to_string()], "moved");
    assert!(
        depts.contains_key("销售/华东区") && !depts.contains_key("销售/华东"),
        "renamed, not re-created: {depts:?}"
    );
    assert!(!users.contains_key("ext0003"), "removed (policy Delete)");
    assert_eq!(
        users["ext0005"].1,
        vec!["销售/华东区".to_string()],
        "people follow the renamed OU"
    );
    // The mobile change is a failure that says why; DingTalk keeps the old number.
    let f = r
        .failures
        .iter()
        .find(|f| f.id == "ext0005")
        .expect("mobile change reported");
    assert_eq!(f.reason, "MobileChanged");
    assert!(f.message.contains("40022"), "{}", f.message);
    assert_eq!(w.user_mobile("ext0005").as_deref(), Some("13900000005"));
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    assert_eq!((r.deleted, r.departments_updated), (1, 1));
}

#[tokio::test]
async fn the_threshold_and_incomplete_read_gates_hold() {
    let Some(w) = world("ob-gates", 40).await else {
        return;
    };
    w.run(&w.opts()).await;
    // Remove 10 of 40 people from the directory.
    let mut ldif = String::new();
    for i in (0..40).step_by(4) {
        let parent = match i % (OUS.len() + 1) {
            0 => w.node.clone(),
            k => ou_dn(&w.node, OUS[k - 1].0),
        };
        ldif.push_str(&format!(
            "dn: uid=ext{i:04},{parent}\nchangetype: delete\n\n"
        ));
    }
    w.slapd().ldapmodify(&ldif).unwrap();
    let gated = OutboundOptions {
        max_percent: 10,
        ..w.opts()
    };
    let before = w.writes();
    let r = w.run(&gated).await;
    let held = r.held.clone().expect("held by the threshold");
    assert_eq!(held.removals, 10);
    assert_eq!(w.writes(), before, "nothing written while held");
    assert_eq!(w.dingtalk().1.len(), 40);

    // DingTalk's listing of one department fails: nothing is removed, the rest goes on.
    let dept = w.dingtalk().0["研发"];
    let mut fault = FaultRule::new(Some("/topapi/v2/user/list"), FaultKind::SystemBusy);
    fault.times = 0;
    w.sim.add_fault(fault);
    let approved = OutboundOptions {
        approval: Some(held.token.clone()),
        ..gated.clone()
    };
    let r = w.run(&approved).await;
    assert!(!r.complete && !r.incomplete.is_empty(), "{r:?}");
    assert_eq!(
        (r.deleted, r.created),
        (0, 0),
        "nobody removed, nobody duplicated"
    );
    assert_eq!(w.dingtalk().1.len(), 40);
    let _ = dept;
    w.sim.clear_faults();

    // Approved with the token shown: applied.
    let r = w.run(&approved).await;
    assert!(r.held.is_none(), "{:?}", r.held);
    assert_eq!(r.deleted, 10);
    assert_eq!(w.dingtalk().1.len(), 30);
}

#[tokio::test]
async fn bad_values_fail_alone_naming_the_field() {
    let Some(w) = world("ob-bad", 14).await else {
        return;
    };
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0007,{}\nchangetype: modify\nreplace: mobile\nmobile: not-a-number\n\n\
             dn: uid=ext0000,{}\nchangetype: modify\nreplace: mail\nmail: not an email\n",
            w.node, w.node
        ))
        .unwrap();
    let r = w.run(&w.opts()).await;
    let by_id: HashMap<&str, &str> = r
        .failures
        .iter()
        .map(|f| (f.id.as_str(), f.message.as_str()))
        .collect();
    assert!(by_id["ext0007"].contains("mobile"), "{:?}", by_id);
    assert!(by_id["ext0000"].contains("email"), "{:?}", by_id);
    assert_eq!(r.created, 12, "the others are pushed");
}

#[tokio::test]
async fn polling_sees_edits_removals_and_renames_without_reading_dingtalk() {
    let Some(w) = world("ob-poll", 21).await else {
        return;
    };
    let r = w.run(&w.opts()).await;
    let mark = r.mark.clone().expect("a full run leaves a mark");
    let dingtalk_reads =
        || w.sim.calls("/topapi/v2/department/listsub") + w.sim.calls("/topapi/v2/user/list");
    let reads = dingtalk_reads();
    assert!(
        !outbound::poll(&w.dir, &mark).await.unwrap(),
        "nothing changed"
    );
    assert_eq!(dingtalk_reads(), reads, "a poll reads the directory only");

    // modifyTimestamp has one-second resolution.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0001,{}\nchangetype: modify\nreplace: title\ntitle: 经理\n",
            ou_dn(&w.node, "研发")
        ))
        .unwrap();
    assert!(outbound::poll(&w.dir, &mark).await.unwrap(), "an edit");
    let r = w.run(&w.opts()).await;
    assert_eq!(r.updated, 1);
    let mark = r.mark.clone().unwrap();
    assert!(!outbound::poll(&w.dir, &mark).await.unwrap());

    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0003,{}\nchangetype: delete\n",
            ou_dn(&w.node, "前端")
        ))
        .unwrap();
    assert!(outbound::poll(&w.dir, &mark).await.unwrap(), "a removal");
    let mark = w.run(&w.opts()).await.mark.unwrap();

    w.slapd()
        .ldapmodify(&format!(
            "dn: {}\nchangetype: modrdn\nnewrdn: ou=华南区\ndeleteoldrdn: 1\n",
            ou_dn(&w.node, "华南")
        ))
        .unwrap();
    assert!(
        outbound::poll(&w.dir, &mark).await.unwrap(),
        "a container rename"
    );
}

#[tokio::test]
async fn the_write_permission_is_probed_without_writing() {
    let mut org = generate(&GenSpec {
        people: 3,
        departments: 1,
        seed: 1,
        corp_id: CORP.into(),
        ..Default::default()
    });
    let mut readonly = sim::org::App::new("dingreadonly", "readonly-secret");
    readonly.permissions.remove(sim::org::PERM_MANAGE);
    org.apps.push(readonly);
    let sim = Simulator::start(SimConfig::fast(), org, "127.0.0.1:0")
        .await
        .unwrap();
    let client = |key: &str, secret: &str| {
        DingTalkClient::new(
            ClientConfig::new(CORP, key, Secret::new(secret.to_owned())).with_base(&sim.base_url()),
        )
    };
    let before = sim.org();
    assert!(
        client(sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET)
            .can_write_contacts()
            .await
            .unwrap()
    );
    assert!(
        !client("dingreadonly", "readonly-secret")
            .can_write_contacts()
            .await
            .unwrap()
    );
    let after = sim.org();
    assert_eq!(
        format!("{:?}", before.departments),
        format!("{:?}", after.departments),
        "the probe changed nothing"
    );
}

/// The world's mapping plus `extra` lines under `user:` (e.g. `match` rules).
fn mapping_with(extra: &str) -> OutboundMapping {
    let spec: FieldMappingSpec = serde_yaml::from_str(&format!(
        "direction: Outbound\nuser:\n  uniqueName: {{attribute: userid, template: '{{{{ uid }}}}'}}\n  attributes:\n  - {{target: name, template: '{{{{ cn }}}}'}}\n  - {{target: mobile, template: '{{{{ mobile }}}}'}}\n  - {{target: email, template: '{{{{ mail }}}}'}}\n  - {{target: title, template: '{{{{ title }}}}'}}\n{extra}"
    ))
    .unwrap();
    OutboundMapping::compile(&spec).unwrap()
}

/// DingTalk's user `userid` as the simulator holds it.
fn sim_user(w: &World, userid: &str) -> Option<sim::org::Person> {
    w.sim.org().people.into_iter().find(|p| p.userid == userid)
}

#[tokio::test]
async fn a_person_whose_mobile_dingtalk_has_under_another_userid_is_linked_by_a_mobile_rule() {
    let Some(mut w) = world("ob-mobile", 7).await else {
        return;
    };
    // ext0003's mobile belongs to someone DingTalk already has, outside the target's department.
    w.sim
        .hire(UserWrite {
            userid: Some("zhang.old".into()),
            name: Some("张老".into()),
            mobile: Some("13900000003".into()),
            departments: Some(vec![1]),
            ..Default::default()
        })
        .unwrap();
    let r = w.run(&w.opts()).await;
    assert_eq!(r.created, 6);
    let f = r.failures.iter().find(|f| f.id == "ext0003").unwrap();
    assert_eq!(f.reason, "AlreadyExists");
    assert!(
        f.message.contains("zhang.old") && f.message.contains("match rule on mobile"),
        "{}",
        f.message
    );

    w.mapping = mapping_with("  match:\n  - {source: '{{ mobile }}', target: mobile}\n");
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.linked, r.created), (1, 0));
    let (depts, _) = w.dingtalk();
    let linked = sim_user(&w, "zhang.old").unwrap();
    assert_eq!(linked.name, "外包3", "updated from the directory");
    assert_eq!(
        linked.departments,
        vec![1, depts["研发/前端"]],
        "their department outside the target kept"
    );
    assert!(sim_user(&w, "ext0003").is_none(), "never created twice");
    assert!(w.sim.calls("/topapi/v2/user/getbymobile") >= 1);

    // From now on they are found in the department by the same rule: nothing to write.
    let before = w.writes();
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.linked, r.unchanged, w.writes() - before), (1, 7, 0));
}

#[tokio::test]
async fn an_ambiguous_match_is_refused_and_reported() {
    let Some(mut w) = world("ob-ambiguous", 7).await else {
        return;
    };
    for (userid, mobile) in [("dt.a", "13700000001"), ("dt.b", "13700000002")] {
        w.sim
            .hire(UserWrite {
                userid: Some(userid.into()),
                name: Some(userid.into()),
                mobile: Some(mobile.into()),
                job_number: Some("J-42".into()),
                departments: Some(vec![w.root]),
                ..Default::default()
            })
            .unwrap();
    }
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0000,{}\nchangetype: modify\nadd: employeeNumber\nemployeeNumber: J-42\n",
            w.node
        ))
        .unwrap();
    w.mapping =
        mapping_with("  match:\n  - {source: '{{ employeenumber }}', target: job_number}\n");
    let r = w.run(&w.opts()).await;
    let f = r.failures.iter().find(|f| f.reason == "AmbiguousMatch");
    let f = f.expect("the ambiguous match is reported");
    assert_eq!(f.name, format!("uid=ext0000,{}", w.node));
    assert!(
        f.message.contains("dt.a") && f.message.contains("dt.b"),
        "{}",
        f.message
    );
    assert_eq!((r.created, r.linked, r.deleted), (6, 0, 0));
    assert!(sim_user(&w, "ext0000").is_none(), "refused, not created");
    assert!(sim_user(&w, "dt.a").is_some() && sim_user(&w, "dt.b").is_some());
}

#[tokio::test]
async fn an_existing_same_named_department_is_adopted_only_with_adopt_existing() {
    let Some(w) = world("ob-adopt", 14).await else {
        return;
    };
    let sales = w
        .sim
        .create_department(DeptWrite {
            name: Some("销售".into()),
            parent_id: Some(w.root),
            ..Default::default()
        })
        .unwrap()
        .id;
    let r = w.run(&w.opts()).await;
    let f = r.failures.iter().find(|f| f.reason == "AlreadyExists");
    let f = f.expect("the taken name is reported");
    assert!(
        f.name == "销售"
            && f.message.contains("adoptExisting")
            && f.message.contains(&sales.to_string()),
        "{f:?}"
    );
    let (depts, _) = w.dingtalk();
    assert_eq!(
        depts.keys().filter(|p| p.starts_with("销售")).count(),
        1,
        "{depts:?}"
    );

    let adopting = OutboundOptions {
        adopt_existing: true,
        ..w.opts()
    };
    let r = w.run(&adopting).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(r.departments_adopted, 1);
    let (depts, users) = w.dingtalk();
    assert_eq!(
        depts["销售"], sales,
        "the department DingTalk had, not a new one"
    );
    assert!(depts.contains_key("销售/华东") && depts.contains_key("销售/华南"));
    assert_eq!(users["ext0004"].1, vec!["销售".to_string()]);
    let marked = w.sim.org().departments.into_iter().find(|d| d.id == sales);
    assert!(
        marked
            .and_then(|d| d.source_identifier)
            .is_some_and(|s| s.starts_with(SOURCE_PREFIX))
    );
}

/// DingTalk's `extension` of `userid`, as an object.
fn extension(w: &World, userid: &str) -> serde_json::Value {
    let text = sim_user(w, userid).and_then(|p| p.extension);
    serde_json::from_str(&text.unwrap_or_else(|| "{}".into())).unwrap()
}

#[tokio::test]
async fn a_custom_field_round_trips_through_extension_leaving_other_keys_alone() {
    use dingsync::{
        mapping::Mapping,
        sync::{self, Options, dingtalk_source::DingTalkSource},
    };
    let Some(mut w) = world("ob-ext", 7).await else {
        return;
    };
    let person = format!("uid=ext0001,{}", ou_dn(&w.node, "研发"));
    w.slapd()
        .ldapmodify(&format!(
            "dn: {person}\nchangetype: modify\nadd: roomNumber\nroomNumber: A-101\n"
        ))
        .unwrap();
    w.mapping = mapping_with("  - {target: extension.工位, template: '{{ roomnumber }}'}\n");
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(
        extension(&w, "ext0001"),
        serde_json::json!({"工位": "A-101"})
    );
    assert_eq!(
        extension(&w, "ext0002"),
        serde_json::json!({}),
        "no value, no key"
    );

    // A key someone keeps in DingTalk survives the next change of the mapped one.
    w.sim
        .edit_user(
            "ext0001",
            UserWrite {
                extension: Some(r#"{"工位":"A-101","爱好":"围棋"}"#.into()),
                ..Default::default()
            },
        )
        .unwrap();
    w.slapd()
        .ldapmodify(&format!(
            "dn: {person}\nchangetype: modify\nreplace: roomNumber\nroomNumber: B-202\n"
        ))
        .unwrap();
    let r = w.run(&w.opts()).await;
    assert_eq!((r.updated, r.failures.len()), (1, 0), "{:#?}", r.failures);
    assert_eq!(
        extension(&w, "ext0001"),
        serde_json::json!({"工位": "B-202", "爱好": "围棋"})
    );
    let before = w.writes();
    w.run(&w.opts()).await;
    assert_eq!(w.writes(), before, "settled");

    // Inbound reading the same tenant sees the custom field.
    let inbound: FieldMappingSpec = serde_yaml::from_str(
        "user:\n  uniqueName: {attribute: uid, template: '{{ userid }}'}\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  - {target: sn, template: '{{ name[:1] }}'}\n  - {target: roomNumber, template: '{{ extension.工位 }}'}\n",
    )
    .unwrap();
    let copy_node = w.node("ob-ext-copy");
    let copy = w.ldap(&copy_node, Layout::FlatWithGroups).await;
    let r = sync::run(
        &DingTalkSource::new(w.client.clone(), vec![w.root]),
        &copy,
        &Mapping::compile(&inbound).unwrap(),
        &Options::default(),
        false,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    let found = w
        .slapd()
        .search(&copy_node, "(uid=ext0001)", &["roomNumber"])
        .unwrap();
    assert!(found.contains("roomNumber: B-202"), "{found}");
}

#[tokio::test]
async fn managers_and_department_heads_are_pushed_and_kept_right_across_rename_and_departure() {
    let Some(mut w) = world("ob-managers", 14).await else {
        return;
    };
    let rd = ou_dn(&w.node, "研发");
    let boss = format!("uid=ext0001,{rd}");
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0008,{rd}\nchangetype: modify\nadd: manager\nmanager: {boss}\n\n\
             dn: uid=ext0002,{}\nchangetype: modify\nadd: manager\nmanager: {boss}\n\n\
             dn: {rd}\nchangetype: modify\nadd: objectClass\nobjectClass: extensibleObject\n-\nadd: owner\nowner: {boss}\n-\nadd: description\ndescription: 10\n",
            ou_dn(&w.node, "后端")
        ))
        .unwrap();
    w.mapping = mapping_with(
        "  - {target: manager_userid, template: '{{ manager }}', refersTo: Person}\n\
         department:\n  attributes:\n\
         \x20 - {target: dept_manager_userid_list, template: '{{ owner }}', refersTo: Person}\n\
         \x20 - {target: order, template: '{{ description }}'}\n",
    );
    let manager = |w: &World, u: &str| sim_user(w, u).and_then(|p| p.manager_userid);
    let heads = |w: &World| {
        let id = w.dingtalk().0["研发"];
        let d = w.sim.org().departments.into_iter().find(|d| d.id == id);
        d.map(|d| (d.manager_userids, d.order)).unwrap()
    };
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(manager(&w, "ext0008").as_deref(), Some("ext0001"));
    assert_eq!(manager(&w, "ext0002").as_deref(), Some("ext0001"));
    assert_eq!(manager(&w, "ext0003"), None);
    assert_eq!(heads(&w), (vec!["ext0001".to_string()], 10));
    let before = w.writes();
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(w.writes(), before, "settled: {:?}", r.sample);

    // The manager is renamed: one write (their name); who manages whom stays right.
    w.slapd()
        .ldapmodify(&format!(
            "dn: {boss}\nchangetype: modify\nreplace: cn\ncn: 新经理\n"
        ))
        .unwrap();
    let before = w.writes();
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(w.writes() - before, 1);
    assert_eq!(sim_user(&w, "ext0001").unwrap().name, "新经理");
    assert_eq!(manager(&w, "ext0008").as_deref(), Some("ext0001"));
    assert_eq!(heads(&w).0, vec!["ext0001".to_string()]);

    // The manager leaves; the entries still name their old DN (no referential integrity):
    // their people have no manager any more and the department no head.
    w.slapd()
        .ldapmodify(&format!("dn: {boss}\nchangetype: delete\n"))
        .unwrap();
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(sim_user(&w, "ext0001").is_none());
    assert_eq!(manager(&w, "ext0008"), None);
    assert_eq!(manager(&w, "ext0002"), None);
    assert_eq!(heads(&w), (vec![], 10));
    let before = w.writes();
    w.run(&w.opts()).await;
    assert_eq!(w.writes(), before, "settled");
}

/// Waits (up to 10 s) until `done` holds; how long it took.
async fn until(done: impl Fn() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed().as_secs() < 10, "not within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn ldap_edits_reach_dingtalk_live_and_a_restart_resumes_from_the_cookie() {
    use std::sync::Mutex;
    let Some(w) = world("ob-live", 21).await else {
        return;
    };
    let title = |u: &str| sim_user(&w, u).and_then(|p| p.title);
    let full_reads =
        || w.sim.calls("/topapi/v2/department/listsub") + w.sim.calls("/topapi/v2/user/list");
    let edit = |uid: &str, ou: &str, value: &str| {
        w.slapd()
            .ldapmodify(&format!(
                "dn: uid={uid},{}\nchangetype: modify\nreplace: title\ntitle: {value}\n",
                ou_dn(&w.node, ou)
            ))
            .unwrap()
    };
    let batches: Mutex<Vec<outbound::Batch>> = Mutex::new(vec![]);
    let count = || batches.lock().unwrap().len();
    let opts = w.opts();

    // No cookie: a full run once the server's refresh is over, then each edit as it comes.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut keep = |b| batches.lock().unwrap().push(b);
    let writer = tokio::sync::Mutex::new(());
    let session = || outbound::Session {
        sink: &w.client,
        dir: &w.dir,
        mapping: &w.mapping,
        opts: &opts,
        writer: &writer,
    };
    let follower = outbound::follow(session(), None, &mut keep, async {
        let _ = stopped.await;
    });
    let driver = async {
        until(|| count() >= 1).await;
        assert_eq!(
            sim_user(&w, "ext0001").unwrap().name,
            "外包1",
            "the first full run"
        );
        let reads = full_reads();
        edit("ext0001", "研发", "架构师");
        let took = until(|| title("ext0001").as_deref() == Some("架构师")).await;
        println!("LDAP modify to DingTalk: {took:?}");
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        assert_eq!(full_reads(), reads, "an edit is pushed alone");
        stop.send(()).unwrap();
    };
    let (cookie, ()) = tokio::join!(follower, driver);
    let cookie = cookie.unwrap().expect("a cookie to resume from");
    {
        let b = batches.lock().unwrap();
        assert!(b[0].full && !b.last().unwrap().full, "{b:?}");
        assert_eq!(b.last().unwrap().report.updated, 1);
    }

    // Edits while nobody follows; a restart resumes from the cookie and reads nothing whole.
    edit("ext0002", "后端", "组长");
    edit("ext0003", "前端", "顾问");
    let reads = full_reads();
    let seen = count();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut keep = |b| batches.lock().unwrap().push(b);
    let follower = outbound::follow(session(), Some(cookie), &mut keep, async {
        let _ = stopped.await;
    });
    let driver = async {
        until(|| title("ext0002").as_deref() == Some("组长")).await;
        until(|| title("ext0003").as_deref() == Some("顾问")).await;
        let after = full_reads();
        // Someone leaves the node: a full run finds who (policy Delete removes them).
        w.slapd()
            .ldapmodify(&format!(
                "dn: uid=ext0004,{}\nchangetype: delete\n",
                ou_dn(&w.node, "销售")
            ))
            .unwrap();
        until(|| sim_user(&w, "ext0004").is_none()).await;
        stop.send(()).unwrap();
        after
    };
    let (cookie, after) = tokio::join!(follower, driver);
    assert!(cookie.unwrap().is_some());
    assert_eq!(after, reads, "no full read after the restart");
    let b = batches.lock().unwrap();
    assert!(
        !b[seen].full,
        "the edits made meanwhile were pushed alone: {b:?}"
    );
    assert!(b.last().unwrap().full && b.last().unwrap().report.deleted == 1);
}

#[tokio::test]
async fn a_persons_order_in_their_department_is_pushed_once_it_exists() {
    let Some(mut w) = world("ob-order", 7).await else {
        return;
    };
    w.mapping = mapping_with("  - {target: dept_order_list, template: '{{ departmentnumber }}'}\n");
    let person = format!("uid=ext0001,{}", ou_dn(&w.node, "研发"));
    let set = |n: u32| {
        w.slapd()
            .ldapmodify(&format!(
                "dn: {person}\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: {n}\n"
            ))
            .unwrap()
    };
    set(5);
    let order = |w: &World| {
        let dept = w.dingtalk().0["研发"];
        sim_user(w, "ext0001").and_then(|p| p.dept_order.get(&dept).copied())
    };
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(order(&w), Some(5));
    let before = w.writes();
    w.run(&w.opts()).await;
    assert_eq!(w.writes(), before, "settled");
    set(7);
    let r = w.run(&w.opts()).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((order(&w), w.writes() - before), (Some(7), 1));
}

#[tokio::test]
async fn a_department_outside_the_apps_scope_is_reported_as_permission_missing() {
    let mut org = generate(&GenSpec {
        people: 3,
        departments: 1,
        seed: 1,
        corp_id: CORP.into(),
        ..Default::default()
    });
    // Two siblings under the root: the app sees the first only.
    let (inside, outside) = (9001, 9002);
    for (id, name) in [(inside, "甲"), (outside, "乙")] {
        org.departments
            .push(sim::org::Department::new(id, name, Some(1)));
    }
    let mut app = sim::org::App::new("dingscoped", "scoped-secret");
    app.scope.departments = vec![inside];
    org.apps.push(app);
    let Some(w) = support::World::builder().org(org).slapd().build().await else {
        return;
    };
    let client = w.client_with(|c| {
        c.app_key = "dingscoped".into();
        c.app_secret = Secret::new("scoped-secret".to_owned());
    });
    let sim = &w.sim;
    let before = sim.org();
    client.probe_department_write(inside).await.unwrap();
    let e = outbound::probe(&client, outside).await.unwrap_err();
    assert!(
        matches!(e, SyncError::PermissionMissing { dept_id, .. } if dept_id == outside),
        "{e:?}"
    );
    let node = w.slapd().new_node("ob-scope").unwrap();
    let pool = w.ldap_pool().await;
    let dir = LdapDirectory::new(
        Store::open_read_only(pool, &node, Layout::OuTree, CORP)
            .await
            .unwrap(),
    );
    let opts = OutboundOptions {
        root: outside,
        ..Default::default()
    };
    let e = outbound::run(&client, &dir, &mapping_with(""), &opts, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PermissionMissing") && e.contains(&format!("department {outside}")),
        "{e}"
    );
    assert_eq!(
        format!("{:?}", before.departments),
        format!("{:?}", sim.org().departments),
        "the probe changed nothing"
    );
}

/// The YAML a platform team keeps in Git for an Outbound target.
fn outbound_manifests(w: &World, policy: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: app}}
stringData: {{appKey: {key}, appSecret: {secret}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: ldap}}
stringData: {{password: {password}}}
---
apiVersion: dingsync.io/v1alpha1
kind: DingTalkBinding
metadata: {{name: acme}}
spec:
  corpId: {CORP}
  credentialsSecretRef: {{name: app}}
  endpoints: {{oapi: "{sim}", api: "{sim}", login: "{sim}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: FieldMapping
metadata: {{name: out}}
spec:
  direction: Outbound
  user:
    uniqueName: {{attribute: userid, template: "{{{{ uid }}}}"}}
    attributes:
      - {{target: name, template: "{{{{ cn }}}}"}}
      - {{target: mobile, template: "{{{{ mobile }}}}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: SyncTarget
metadata: {{name: ext}}
spec:
  bindingRef: {{name: acme}}
  fieldMappingRef: {{name: out}}
  direction: Outbound
  directory:
    ldap: {{url: "{ldap}", bindDN: "{bind}", passwordSecretRef: {{name: ldap, key: password}}}}
  node: "{node}"
  scope: {{departmentIds: [{root}]}}
  deletion: {{policy: {policy}, maxPercent: 100}}
"#,
        key = sim::DEFAULT_APP_KEY,
        secret = sim::DEFAULT_APP_SECRET,
        password = w.slapd().service_password(),
        sim = w.sim.base_url(),
        ldap = w.slapd().url(),
        bind = slapd::SERVICE_DN,
        node = w.node,
        root = w.root,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_apply_work_for_an_outbound_target() {
    let Some(w) = world("ob-cli", 14).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("all.yaml"),
        outbound_manifests(&w, "Delete"),
    )
    .unwrap();
    let run = |cmd: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dingsync"))
            .args([cmd, "-f"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let writes = w.writes();
    let out = run("plan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("create user ext0001") && text.contains("create department"),
        "{text}"
    );
    assert_eq!(w.writes(), writes, "plan writes nothing");
    let out = run("apply");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("14 created"), "{text}");
    assert_eq!(w.dingtalk().1.len(), 14);
    let out = run("plan");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// An Outbound target (LDAP node A → DingTalk department D) and an Inbound target over the
/// same people (D → LDAP node B) settle after one pass: each side writes only differences,
/// Outbound touches only the fields its mapping names and the departments it marked, and the
/// Inbound copy is another node (overlapping nodes are refused), so nothing comes back.
#[tokio::test]
async fn an_inbound_and_an_outbound_target_over_the_same_people_do_not_ping_pong() {
    use dingsync::sync::{self, Options, dingtalk_source::DingTalkSource};
    let Some(w) = world("ob-loop-a", 35).await else {
        return;
    };
    let copy = w.ldap(&w.node("ob-loop-b"), Layout::FlatWithGroups).await;
    let inbound = || async {
        sync::run(
            &DingTalkSource::new(w.client.clone(), vec![w.root]),
            &copy,
            &crate::support::conformance::mapping(),
            &Options {
                max_percent: 100,
                ..Default::default()
            },
            false,
            &|_, _, _| {},
        )
        .await
        .unwrap()
    };
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let before = w.writes();
        let out = w.run(&w.opts()).await;
        let inb = inbound().await;
        assert!(out.failures.is_empty() && inb.failures.is_empty());
        rounds.push((w.writes() - before, inb.writes));
    }
    assert!(
        rounds[0].0 > 0 && rounds[0].1 > 0,
        "the first pass writes both sides"
    );
    assert_eq!(rounds[1], (0, 0), "settled after one pass: {rounds:?}");
    assert_eq!(rounds[2], (0, 0));
    // An edit on the Outbound source travels once and settles again.
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0001,{}\nchangetype: modify\nreplace: cn\ncn: 回环测试\n",
            ou_dn(&w.node, "研发")
        ))
        .unwrap();
    let before = w.writes();
    w.run(&w.opts()).await;
    let inb = inbound().await;
    assert_eq!((w.writes() - before, inb.writes > 0), (1, true));
    let before = w.writes();
    w.run(&w.opts()).await;
    assert_eq!((w.writes() - before, inbound().await.writes), (0, 0));
}

/// The controller's engine: a full run through `SyncRunner::run`, then (slapd offering
/// content synchronisation) the node is followed and each change pushed as it comes; no
/// baseline, no following. The cookie it reaches, kept in status, lets a restarted controller
/// resume without reading the directory or DingTalk in full.
#[tokio::test]
async fn the_controller_engine_follows_directory_changes_and_resumes_after_a_restart() {
    use dingsync::{
        controller::{SyncRequest, SyncRunner, Trigger, engine::Engine},
        resolve::{Resolved, TargetKey},
        secret::Secret,
    };
    let Some(w) = world("ob-engine", 21).await else {
        return;
    };
    let base = w.sim.base_url();
    let t = Resolved {
        key: TargetKey::new("team", "ext"),
        spec: serde_json::from_value(serde_json::json!({
            "bindingRef": {"name": "acme"},
            "fieldMappingRef": {"name": "out"},
            "direction": "Outbound",
            "directory": {"ldap": {
                "url": w.slapd().url(),
                "bindDN": slapd::SERVICE_DN,
                "passwordSecretRef": {"name": "ldap", "key": "password"}
            }},
            "node": w.node,
            "scope": {"departmentIds": [w.root]},
            "incrementalSync": {"enabled": true, "pollInterval": "30s"},
            "deletion": {"policy": "Delete", "maxPercent": 100},
        }))
        .unwrap(),
        binding: serde_json::from_value(serde_json::json!({
            "corpId": CORP,
            "credentialsSecretRef": {"name": "app"},
            "endpoints": {"oapi": base, "api": base, "login": base},
        }))
        .unwrap(),
        mapping: serde_yaml::from_str(
            "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n",
        )
        .unwrap(),
        app_key: sim::DEFAULT_APP_KEY.into(),
        app_secret: Secret::new(sim::DEFAULT_APP_SECRET),
        directory_secret: Secret::new(w.slapd().service_password()),
        directory_ca: None,
        approval: None,
        callback: None,
    };
    let req = SyncRequest {
        target: t.clone(),
        trigger: Trigger::Created,
        progress: None,
    };
    let engine = Engine::default();
    let view = engine.track_events(&t, false).await.unwrap();
    assert_eq!(view.reason.as_str(), "NoBaseline");
    let out = engine.run(req.clone()).await.unwrap();
    assert_eq!((out.summary.created, out.summary.failed), (21, 0));
    let view = engine.track_events(&t, true).await.unwrap();
    assert_eq!((view.active, view.reason.as_str()), (true, "Active"));
    assert!(view.message.contains("following"), "{}", view.message);

    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0002,{}\nchangetype: modrdn\nnewrdn: uid=ext0002\ndeleteoldrdn: 1\nnewsuperior: {}\n\n\
             dn: uid=ext0008,{}\nchangetype: delete\n",
            ou_dn(&w.node, "后端"),
            ou_dn(&w.node, "华南"),
            ou_dn(&w.node, "研发"),
        ))
        .unwrap();
    until(|| {
        let (_, users) = w.dingtalk();
        users.get("ext0002").map(|u| u.1.clone()) == Some(vec!["销售/华南".to_string()])
            && !users.contains_key("ext0008")
    })
    .await;
    until(|| !engine.take_reports(&t.key).is_empty()).await;
    let view = engine.track_events(&t, true).await.unwrap();
    assert!(view.message.contains("batches pushed"), "{}", view.message);
    until(|| engine.content_sync_cookie(&t.key).is_some()).await;
    let cookie = engine.content_sync_cookie(&t.key);

    // The replica stops leading; an edit lands while nobody follows; the next leader resumes
    // from the cookie the status kept: the edit reaches DingTalk without a full read.
    engine.release();
    w.slapd()
        .ldapmodify(&format!(
            "dn: uid=ext0003,{}\nchangetype: modify\nreplace: cn\ncn: 改名三\n",
            ou_dn(&w.node, "前端")
        ))
        .unwrap();
    w.sim.reset_counters();
    let next = Engine::default();
    next.resume_content_sync(&t.key, cookie.unwrap());
    let view = next.track_events(&t, true).await.unwrap();
    assert!(view.message.contains("following"), "{}", view.message);
    until(|| sim_user(&w, "ext0003").is_some_and(|p| p.name == "改名三")).await;
    let full_reads =
        w.sim.calls("/topapi/v2/department/listsub") + w.sim.calls("/topapi/v2/user/list");
    assert_eq!(full_reads, 0, "resumed from the cookie, no full read");
    next.release();
}
