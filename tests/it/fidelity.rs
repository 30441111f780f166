//! A real tenant's address book carried whole into slapd and scim2-server: custom fields with
//! Chinese keys (sent as DingTalk sends them, a JSON object in a string), department names
//! and paths, people without mobile or email, and `IfEmpty` ownership keeping what an admin
//! entered by hand.

use std::collections::HashMap;

use dingsync::{
    api::{FieldMappingSpec, target::Layout},
    directory::{Attrs, Directory, Snapshot, scim::ScimDirectory},
    mapping::Mapping,
    model::Changes,
    sim::{
        Org, UserWrite,
        generate::{GenSpec, generate},
        org::Person,
    },
    sync::{self, Options, Report, dingtalk_source::DingTalkSource},
};

use crate::support::{CORP, World, truth::custom};

const ENTERPRISE_DEPARTMENT: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";

/// Custom fields, department names and `IfEmpty` contact data, for inetOrgPerson.
const LDAP_MAPPING: &str = r#"
user:
  uniqueName: {attribute: uid, template: "{{ name | pinyin }}"}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: sn, template: "{{ name[:1] }}"}
    - {target: mail, template: "{{ (email or org_email) | default('') | lower }}", ownership: IfEmpty}
    - {target: mobile, template: "{{ mobile | default('') }}", ownership: IfEmpty}
    - {target: employeeNumber, template: "{{ extension.工号 }}"}
    - {target: roomNumber, template: "{{ extension['desk no'] }}"}
    - {target: employeeType, template: "{{ extension.楼层 }}"}
    - {target: departmentNumber, template: "{{ dept_names | join(',') }}"}
department:
  attributes:
    - {target: description, template: "{{ path }}"}
"#;

/// The same for a SCIM User (departments have no attributes in SCIM).
const SCIM_MAPPING: &str = r#"
user:
  uniqueName: {attribute: userName, template: "{{ name | pinyin }}"}
  attributes:
    - {target: displayName, template: "{{ name }}"}
    - {target: name.familyName, template: "{{ name[:1] }}"}
    - {target: mail, template: "{{ (email or org_email) | default('') | lower }}", ownership: IfEmpty}
    - {target: mobile, template: "{{ mobile | default('') }}", ownership: IfEmpty}
    - {target: employeeNumber, template: "{{ extension.工号 }}"}
    - {target: title, template: "{{ extension['desk no'] }}"}
    - {target: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", template: "{{ dept_names | join(',') }}"}
"#;

fn mapping(yaml: &str) -> Mapping {
    let spec: FieldMappingSpec = serde_yaml::from_str(yaml).expect("mapping YAML");
    Mapping::compile(&spec).expect("mapping compiles")
}

fn org() -> Org {
    generate(&GenSpec {
        people: 40,
        departments: 8,
        seed: 19,
        corp_id: CORP.into(),
        ..Default::default()
    })
}

async fn world(org: Org, ldap: bool) -> Option<World> {
    let w = World::builder().org(org);
    let w = if ldap { w.slapd() } else { w.scim() };
    w.build().await
}

/// The whole enterprise, read as the controller reads it: keeping only the mapping's fields.
fn source(w: &World, mapping: &Mapping) -> DingTalkSource {
    DingTalkSource::new(w.client.clone(), vec![1]).keeping(mapping.person_fields())
}

fn opts() -> Options {
    Options {
        max_percent: 100,
        ..Default::default()
    }
}

fn clean(r: Report) -> Report {
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.plan.problems.is_empty(), "{:#?}", r.plan.problems);
    r
}

/// A full sync, through a fresh source.
async fn sync(w: &World, dir: &dyn Directory, mapping: &Mapping) -> Report {
    full_sync(&source(w, mapping), dir, mapping).await
}

async fn full_sync(source: &DingTalkSource, dir: &dyn Directory, mapping: &Mapping) -> Report {
    let r = sync::run(source, dir, mapping, &opts(), false, &|_, _, _| {}).await;
    clean(r.expect("sync runs"))
}

/// An incremental run, as events trigger it, through the source of the last full sync.
async fn changed_sync(
    source: &DingTalkSource,
    dir: &dyn Directory,
    mapping: &Mapping,
    changes: Changes,
) -> Report {
    let r = sync::run_changed(
        source,
        dir,
        mapping,
        &opts(),
        &changes,
        false,
        &|_, _, _| {},
    )
    .await;
    clean(r.expect("incremental run"))
}

/// Department names from the root down, joined by `/`.
fn path(org: &Org, id: i64) -> String {
    let by_id: HashMap<i64, _> = org.departments.iter().map(|d| (d.id, d)).collect();
    let mut names = vec![];
    let mut at = Some(id);
    while let Some(d) = at.and_then(|i| by_id.get(&i)) {
        names.push(d.name.clone());
        at = d.parent_id;
    }
    names.reverse();
    names.join("/")
}

fn dept_names(org: &Org, p: &Person) -> String {
    let name = |id: &i64| {
        let d = org.departments.iter().find(|d| d.id == *id).expect("dept");
        d.name.clone()
    };
    p.departments.iter().map(name).collect::<Vec<_>>().join(",")
}

fn first(attrs: &Attrs, name: &str) -> Option<String> {
    attrs.first(&name.to_ascii_lowercase()).map(str::to_owned)
}

/// Each person's entry holds what the org says, under `names` (the org's notion → attribute).
fn assert_people(org: &Org, snap: &Snapshot, names: &[(&str, &str)]) {
    let by_id: HashMap<&str, &Attrs> = (snap.people.iter())
        .filter_map(|p| Some((p.id.as_deref()?, &p.attrs)))
        .collect();
    assert_eq!(by_id.len(), org.people.len());
    let attr = |what: &str| names.iter().find(|(w, _)| *w == what).expect(what).1;
    let mut with_fields = 0;
    for p in &org.people {
        let a = by_id.get(p.userid.as_str()).expect("synced");
        let want_mail = (p.email.clone().or(p.org_email.clone())).map(|m| m.to_lowercase());
        assert_eq!(first(a, attr("mail")), want_mail, "{}", p.userid);
        assert_eq!(first(a, attr("mobile")), p.mobile, "{}", p.userid);
        assert_eq!(first(a, attr("工号")), custom(p, "工号"), "{}", p.userid);
        assert_eq!(
            first(a, attr("desk no")),
            custom(p, "desk no"),
            "{}",
            p.userid
        );
        if let Some(floor) = names.iter().find(|(w, _)| *w == "楼层") {
            assert_eq!(first(a, floor.1), custom(p, "楼层"), "a number as text");
        }
        assert_eq!(
            first(a, attr("dept_names")),
            Some(dept_names(org, p)),
            "{}",
            p.userid
        );
        with_fields += usize::from(p.extension.is_some());
    }
    assert!(
        with_fields >= 10,
        "the org has custom fields: {with_fields}"
    );
    assert!(org.people.iter().any(|p| p.mobile.is_none()));
    assert!(org.people.iter().any(|p| p.email.is_none()));
    assert!(
        org.people.iter().any(|p| p.departments.len() > 1),
        "someone in two departments"
    );
}

#[tokio::test]
async fn custom_fields_and_department_paths_reach_slapd_and_a_second_run_writes_nothing() {
    let org = org();
    let Some(w) = world(org.clone(), true).await else {
        return;
    };
    let dir = w.ldap(&w.node("fidelity"), Layout::FlatWithGroups).await;
    let m = mapping(LDAP_MAPPING);
    let first_run = sync(&w, &dir, &m).await;
    assert_eq!(first_run.created, org.people.len() + org.departments.len());
    assert!(first_run.missing_mobile > 0 && first_run.missing_email > 0);
    let snap = dir.read().await.unwrap();
    assert_people(
        &org,
        &snap,
        &[
            ("mail", "mail"),
            ("mobile", "mobile"),
            ("工号", "employeeNumber"),
            ("desk no", "roomNumber"),
            ("楼层", "employeeType"),
            ("dept_names", "departmentNumber"),
        ],
    );
    assert_eq!(snap.departments.len(), org.departments.len());
    for d in &snap.departments {
        let id: i64 = d.id.parse().unwrap();
        assert_eq!(first(&d.attrs, "description"), Some(path(&org, id)));
    }
    assert!(
        snap.departments
            .iter()
            .any(|d| first(&d.attrs, "description").unwrap().matches('/').count() >= 2),
        "a path three levels deep"
    );
    let second = sync(&w, &dir, &m).await;
    assert_eq!(second.writes, 0, "{:#?}", second.plan.steps);
}

#[tokio::test]
async fn custom_fields_and_department_names_reach_scim2_server_and_a_second_run_writes_nothing() {
    let org = org();
    let Some(w) = world(org.clone(), false).await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "fidelity");
    let m = mapping(SCIM_MAPPING);
    let first_run = sync(&w, &dir, &m).await;
    assert_eq!(first_run.created, org.people.len() + org.departments.len());
    let snap = dir.read().await.unwrap();
    assert_people(
        &org,
        &snap,
        &[
            ("mail", "mail"),
            ("mobile", "mobile"),
            ("工号", "employeeNumber"),
            ("desk no", "title"),
            ("dept_names", ENTERPRISE_DEPARTMENT),
        ],
    );
    let second = sync(&w, &dir, &m).await;
    assert_eq!(second.writes, 0, "{:#?}", second.plan.steps);
}

/// Someone DingTalk has no mobile for.
fn without_mobile(org: &Org) -> Person {
    let p = org.people.iter().find(|p| p.mobile.is_none());
    p.expect("someone without a mobile").clone()
}

fn mobile_of(snap: &Snapshot, userid: &str) -> Option<String> {
    let p = snap.people.iter().find(|p| p.id.as_deref() == Some(userid));
    p.and_then(|p| first(&p.attrs, "mobile"))
}

/// An admin's mobile survives a sync where DingTalk has none, and one where DingTalk gains its
/// own (the directory keeps the admin's); a mobile emptied in the directory is filled again.
async fn if_empty_keeps_the_admins_mobile(
    w: &World,
    dir: &dyn Directory,
    m: &Mapping,
    admin_sets: impl AsyncFn(&str, Option<&str>),
) {
    let org = w.sim.org();
    let lacking = without_mobile(&org);
    let other = org.people.iter().find(|p| p.mobile.is_some()).unwrap();
    sync(w, dir, m).await;
    assert_eq!(mobile_of(&dir.read().await.unwrap(), &lacking.userid), None);

    admin_sets(&lacking.userid, Some("13900000001")).await;
    let r = sync(w, dir, m).await;
    assert_eq!(r.writes, 0, "{:#?}", r.plan.steps);
    let snap = dir.read().await.unwrap();
    assert_eq!(
        mobile_of(&snap, &lacking.userid).as_deref(),
        Some("13900000001")
    );

    let gained = UserWrite {
        mobile: Some("13700000002".into()),
        ..Default::default()
    };
    w.sim
        .edit_user(&lacking.userid, gained)
        .expect("DingTalk gains a mobile");
    let r = sync(w, dir, m).await;
    assert_eq!(r.writes, 0, "the admin's value stays: {:#?}", r.plan.steps);
    let snap = dir.read().await.unwrap();
    assert_eq!(
        mobile_of(&snap, &lacking.userid).as_deref(),
        Some("13900000001")
    );

    // Emptied in the directory: filled from DingTalk again, and only that.
    admin_sets(&other.userid, None).await;
    let r = sync(w, dir, m).await;
    assert_eq!(r.updated, 1, "{:#?}", r.plan.steps);
    let snap = dir.read().await.unwrap();
    assert_eq!(mobile_of(&snap, &other.userid), other.mobile);
    assert_eq!(sync(w, dir, m).await.writes, 0);
}

#[tokio::test]
async fn if_empty_keeps_an_admins_mobile_in_slapd() {
    let Some(w) = world(org(), true).await else {
        return;
    };
    let dir = w.ldap(&w.node("ifempty"), Layout::FlatWithGroups).await;
    let m = mapping(LDAP_MAPPING);
    let admin_sets = async |userid: &str, mobile: Option<&str>| {
        let snap = dir.read().await.unwrap();
        let e = snap.people.iter().find(|p| p.id.as_deref() == Some(userid));
        let dn = &e.expect("synced").key;
        let change = match mobile {
            Some(m) => format!("replace: mobile\nmobile: {m}\n"),
            None => "delete: mobile\n".to_owned(),
        };
        (w.slapd())
            .ldapmodify(&format!("dn: {dn}\nchangetype: modify\n{change}"))
            .expect("the admin's edit");
    };
    if_empty_keeps_the_admins_mobile(&w, &dir, &m, admin_sets).await;
}

#[tokio::test]
async fn if_empty_keeps_an_admins_mobile_in_scim2_server() {
    let Some(w) = world(org(), false).await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "ifempty");
    // The admin's tool: another client of the same server.
    let admin = ScimDirectory::new(w.scim_client().await, w.corp(), "ifempty");
    let m = mapping(SCIM_MAPPING);
    let admin_sets = async |userid: &str, mobile: Option<&str>| {
        admin.read().await.unwrap();
        let values: Vec<String> = mobile.into_iter().map(str::to_owned).collect();
        let change: Attrs = [("mobile", values)].into();
        admin
            .update_person(userid, &change)
            .await
            .expect("the admin's edit");
    };
    if_empty_keeps_the_admins_mobile(&w, &dir, &m, admin_sets).await;
}

/// Names a department path and a person's department names in an incremental run: the re-read
/// records take their departments' names from the tree the last full read saw, so a batch
/// changes nothing it did not re-read, and a renamed department's path and its re-read
/// member follow the new name.
#[tokio::test]
async fn an_incremental_run_names_departments_as_the_full_read_did() {
    let org = org();
    let Some(w) = world(org.clone(), true).await else {
        return;
    };
    let dir = w.ldap(&w.node("events"), Layout::FlatWithGroups).await;
    let m = mapping(LDAP_MAPPING);
    let src = source(&w, &m);
    full_sync(&src, &dir, &m).await;

    // Someone in a department two levels down, and in another department too if possible.
    let depth = |p: &Person| path(&org, p.departments[0]).matches('/').count();
    let mut people: Vec<&Person> = org.people.iter().filter(|p| depth(p) >= 1).collect();
    people.sort_by_key(|p| std::cmp::Reverse((p.departments.len(), depth(p))));
    let p = people[0];
    let untouched = Changes {
        people: [p.userid.clone()].into(),
        departments: p.departments.iter().map(i64::to_string).collect(),
        roles: false,
    };
    let r = changed_sync(&src, &dir, &m, untouched).await;
    assert_eq!(r.writes, 0, "re-read, nothing changed: {:#?}", r.plan.steps);

    let renamed = p.departments[0];
    w.sim.rename_department(renamed, "改名部").expect("renamed");
    let changes = Changes {
        people: [p.userid.clone()].into(),
        departments: [renamed.to_string()].into(),
        roles: false,
    };
    changed_sync(&src, &dir, &m, changes).await;
    let now = w.sim.org();
    let snap = dir.read().await.unwrap();
    let dept = snap
        .departments
        .iter()
        .find(|d| d.id == renamed.to_string());
    assert_eq!(
        first(&dept.unwrap().attrs, "description"),
        Some(path(&now, renamed))
    );
    let entry = snap
        .people
        .iter()
        .find(|e| e.id.as_deref() == Some(&p.userid));
    let names = first(&entry.unwrap().attrs, "departmentNumber").unwrap();
    assert_eq!(names, dept_names(&now, p));
    assert!(names.starts_with("改名部"), "{names}");

    // The next full sync brings the rest (other members, sub-departments) in step.
    full_sync(&src, &dir, &m).await;
    assert_people(
        &now,
        &dir.read().await.unwrap(),
        &[
            ("mail", "mail"),
            ("mobile", "mobile"),
            ("工号", "employeeNumber"),
            ("desk no", "roomNumber"),
            ("dept_names", "departmentNumber"),
        ],
    );
    assert_eq!(full_sync(&src, &dir, &m).await.writes, 0);
}
