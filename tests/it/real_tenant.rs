//! An address book as a real tenant's looks, carried whole into slapd and scim2-server through
//! the path the controller takes (a SyncTarget's scope resolved into a DingTalk source, the
//! app's own contact scope read from `/auth/scopes`): custom fields with Chinese keys, managers
//! three levels deep, department heads, roles, a hidden and an excluded subtree, people
//! without mobile or email. Every property is checked against the org, and a second run
//! writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dingsync::{
    api::{FieldMappingSpec, SyncTargetSpec, target::Layout},
    directory::{Attrs, Directory, Snapshot, scim::ScimDirectory},
    mapping::Mapping,
    sim::{self, App, Org, org::Person},
    sync::{self, Options, Report, dingtalk_source::DingTalkSource, source_scope::ScopeRules},
};

use crate::support::{
    World,
    truth::{custom, key_of},
};

/// The app sees 研发中心 (10) only. Under it: 机密项目 (13) is hidden, 外包组 (15) is excluded
/// by the target; 销售部 (20) lies outside the app's scope. ghost, kit, olly and sally are only
/// there; mix is in 基础架构组 and the excluded 外包组, and reports to olly; jun reports to ghost.
const ORG: &str = r#"
corp_id: dingtenantcorp
name: 真实科技
departments:
  - {id: 10, name: 研发中心, manager_userids: [wang]}
  - {id: 11, name: 平台部, parent_id: 10, manager_userids: [lei]}
  - {id: 12, name: 基础架构组, parent_id: 11, manager_userids: [mei]}
  - {id: 13, name: 机密项目, parent_id: 10, hide_dept: true, manager_userids: [ghost]}
  - {id: 14, name: 机密子组, parent_id: 13}
  - {id: 15, name: 外包组, parent_id: 10, manager_userids: [olly]}
  - {id: 20, name: 销售部, manager_userids: [sally]}
people:
  - {userid: wang, name: 王建国, mobile: "13900000001", email: Wang@Example.com, departments: [10], leader_in: [10],
     extension: '{"工号":"A0001","办公室 楼层":"8"}'}
  - {userid: lei, name: 李雷, mobile: "13900000002", departments: [11], leader_in: [11], manager_userid: wang,
     extension: '{"工号":"A0002","办公室 楼层":6}'}
  - {userid: mei, name: 韩梅梅, email: mei@example.com, departments: [12], leader_in: [12], manager_userid: lei,
     extension: '{"工号":"A0003"}'}
  - {userid: tom, name: 汤姆, departments: [12, 11], manager_userid: mei}
  - {userid: jun, name: 周俊, mobile: "13900000005", email: jun@example.com, departments: [11], manager_userid: ghost,
     extension: '{"工号":"A0005","办公室 楼层":"3"}'}
  - {userid: mix, name: 钱多多, mobile: "13900000006", departments: [12, 15], manager_userid: olly,
     extension: '{"工号":"A0006"}'}
  - {userid: ghost, name: 鬼见愁, mobile: "13900000007", departments: [13], leader_in: [13], manager_userid: wang,
     extension: '{"工号":"S0007"}'}
  - {userid: kit, name: 孙秘, mobile: "13900000008", departments: [14], manager_userid: ghost}
  - {userid: olly, name: 欧阳外, mobile: "13900000009", departments: [15], leader_in: [15], manager_userid: lei}
  - {userid: sally, name: 赵销售, mobile: "13900000010", departments: [20], leader_in: [20], manager_userid: wang}
roles:
  - group_id: 100
    name: 职务
    roles:
      - {id: 5001, name: 财务, members: [mei, sally, ghost]}
      - {id: 5002, name: 技术负责人, members: [wang, lei, olly, mix]}
      - {id: 5004, name: 前台}
  - group_id: 101
    name: 默认
    roles:
      - {id: 5003, name: 主管理员, members: [wang, kit]}
"#;

/// The app's authorised contact scope.
const APP_SCOPE: i64 = 10;
/// The subtree the target leaves out.
const EXCLUDED: i64 = 15;

/// The target as an admin writes it: no `departmentIds` (the app's own scope), one subtree
/// excluded, hidden departments left out (the default), roles on.
fn target(ldap: bool) -> SyncTargetSpec {
    // `layout` places LDAP entries; a SCIM target leaves it out.
    let (directory, layout) = match ldap {
        true => (
            "ldap: {url: 'ldap://ldap', bindDN: 'cn=x', passwordSecretRef: {name: s, key: k}}",
            "layout: OuTree\n",
        ),
        false => (
            "scim: {url: 'https://scim/v2', tokenSecretRef: {name: s, key: k}}",
            "",
        ),
    };
    let yaml = format!(
        "bindingRef: {{name: tenant}}\nfieldMappingRef: {{name: tenant}}\ndirection: Inbound\n\
         directory: {{{directory}}}\nnode: tenant\n{layout}\
         scope: {{excludeDepartmentIds: [{EXCLUDED}]}}\nroles: true\n"
    );
    let spec: SyncTargetSpec = serde_yaml::from_str(&yaml).expect("a SyncTarget spec");
    dingsync::resolve::validate_scope(&spec).expect("the scope is admitted");
    spec
}

/// One FieldMapping per backend with everything at once: custom fields by Chinese key (one
/// with a space), `dept_names`, `path`, `IfEmpty` contact data, the manager and the heads.
const LDAP_MAPPING: &str = r#"
user:
  uniqueName: {attribute: uid, template: "{{ userid }}"}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: sn, template: "{{ name[:1] }}"}
    - {target: mail, template: "{{ (email or org_email) | default('') | lower }}", ownership: IfEmpty}
    - {target: mobile, template: "{{ mobile | default('') }}", ownership: IfEmpty}
    - {target: employeeNumber, template: "{{ extension.工号 }}"}
    - {target: roomNumber, template: "{{ extension['办公室 楼层'] }}"}
    - {target: departmentNumber, template: "{{ dept_names | join(',') }}"}
    - {target: manager, template: "{{ manager_userid }}", refersTo: Person}
department:
  attributes:
    - {target: description, template: "{{ path }}"}
    - {target: owner, template: "{{ dept_manager_userid_list | join(',') }}", refersTo: Person}
"#;

const SCIM_MAPPING: &str = r#"
user:
  uniqueName: {attribute: userName, template: "{{ userid }}"}
  attributes:
    - {target: displayName, template: "{{ name }}"}
    - {target: name.familyName, template: "{{ name[:1] }}"}
    - {target: mail, template: "{{ (email or org_email) | default('') | lower }}", ownership: IfEmpty}
    - {target: mobile, template: "{{ mobile | default('') }}", ownership: IfEmpty}
    - {target: employeeNumber, template: "{{ extension.工号 }}"}
    - {target: title, template: "{{ extension['办公室 楼层'] }}"}
    - {target: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", template: "{{ dept_names | join(',') }}"}
    - target: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
      template: "{{ manager_userid }}"
      refersTo: Person
department:
  attributes:
    - {target: owner, template: "{{ dept_manager_userid_list | join(',') }}", refersTo: Person}
"#;

/// Where each property lands in a backend (attribute names as a snapshot holds them).
struct Names {
    mail: &'static str,
    mobile: &'static str,
    staff_no: &'static str,
    floor: &'static str,
    dept_names: &'static str,
    manager: &'static str,
    /// The department attribute holding its `path` (SCIM departments have none).
    path: Option<&'static str>,
}

const LDAP: Names = Names {
    mail: "mail",
    mobile: "mobile",
    staff_no: "employeenumber",
    floor: "roomnumber",
    dept_names: "departmentnumber",
    manager: "manager",
    path: Some("description"),
};

const SCIM: Names = Names {
    mail: "mail",
    mobile: "mobile",
    staff_no: "employeenumber",
    floor: "title",
    dept_names: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department",
    manager: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager",
    path: None,
};

fn org() -> Org {
    let mut o = Org::from_yaml_str(ORG, "tenant org").expect("a valid org");
    o.normalize();
    let mut app = App::new(sim::DEFAULT_APP_KEY, sim::DEFAULT_APP_SECRET);
    app.scope.departments = vec![APP_SCOPE];
    o.apps = vec![app];
    o
}

fn mapping(yaml: &str) -> Mapping {
    let spec: FieldMappingSpec = serde_yaml::from_str(yaml).expect("mapping YAML");
    Mapping::compile(&spec).expect("mapping compiles")
}

/// The source and options the controller opens for `spec`.
fn open(w: &World, spec: &SyncTargetSpec, m: &Mapping) -> (DingTalkSource, Options) {
    let rules = ScopeRules::for_target(&spec.scope).expect("valid scope rules");
    let source = DingTalkSource::with_rules(w.client.clone(), rules).keeping(m.person_fields());
    let opts = Options {
        max_percent: 100,
        ou_tree: spec.layout == Some(Layout::OuTree),
        roles: spec.roles,
        ..Default::default()
    };
    (source, opts)
}

async fn full_sync(src: &DingTalkSource, dir: &dyn Directory, m: &Mapping, o: &Options) -> Report {
    let r = sync::run(src, dir, m, o, false, &|_, _, _| {})
        .await
        .expect("sync runs");
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.complete, "{:?}", r.incomplete);
    r
}

/// What the org says the target holds: its departments with their parents in scope, and
/// each person in scope with their departments in scope (in DingTalk's order).
struct Truth {
    org: Org,
    departments: BTreeMap<i64, Option<i64>>,
    people: BTreeMap<String, Vec<i64>>,
}

impl Truth {
    fn of(org: Org) -> Truth {
        let by_id: HashMap<i64, _> = org.departments.iter().map(|d| (d.id, d)).collect();
        let roots = &org.apps[0].scope.departments;
        let in_scope = |id: i64| {
            let mut at = Some(id);
            while let Some(d) = at.and_then(|i| by_id.get(&i)) {
                if roots.contains(&d.id) {
                    return true;
                }
                if d.hide_dept || d.id == EXCLUDED {
                    return false;
                }
                at = d.parent_id;
            }
            false
        };
        let departments = (org.departments.iter())
            .filter(|d| in_scope(d.id))
            .map(|d| (d.id, d.parent_id.filter(|p| in_scope(*p))))
            .collect();
        let people = (org.people.iter())
            .map(|p| {
                let ds: Vec<i64> = (p.departments.iter().copied())
                    .filter(|d| in_scope(*d))
                    .collect();
                (p.userid.clone(), ds)
            })
            .filter(|(_, ds)| !ds.is_empty())
            .collect();
        Truth {
            org,
            departments,
            people,
        }
    }

    fn person(&self, userid: &str) -> &Person {
        let p = self.org.people.iter().find(|p| p.userid == userid);
        p.expect("in the org")
    }

    fn name(&self, id: i64) -> &str {
        let d = self.org.departments.iter().find(|d| d.id == id);
        &d.expect("a department").name
    }

    /// Names from the scope's top down, joined by `/`.
    fn path(&self, id: i64) -> String {
        let mut names = vec![];
        let mut at = Some(id);
        while let Some(d) = at {
            names.push(self.name(d));
            at = self.departments[&d];
        }
        names.reverse();
        names.join("/")
    }

    /// Role group name → members in scope.
    fn roles(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for g in &self.org.roles {
            for r in &g.roles {
                let held = (r.members.iter())
                    .filter(|m| self.people.contains_key(*m))
                    .cloned();
                out.insert(format!("{}-{}", g.name, r.name), held.collect());
            }
        }
        out
    }

    /// The fixture has what it claims to: otherwise the checks below prove little.
    fn assert_is_a_real_tenant(&self) {
        let o = &self.org;
        let manager = |u: &str| self.person(u).manager_userid.clone();
        let depth = |u: &str| std::iter::successors(Some(u.to_owned()), |u| manager(u)).count();
        assert!(self.people.keys().any(|u| depth(u) >= 3), "two levels deep");
        assert!(self.people.keys().any(|u| self.person(u).mobile.is_none()));
        assert!(self.people.keys().any(|u| self.person(u).email.is_none()));
        assert!((o.departments.iter()).any(|d| d.hide_dept));
        assert!(!o.roles.is_empty());
        let gone = |u: &str| !self.people.contains_key(u);
        for out in ["ghost", "kit", "olly", "sally"] {
            assert!(gone(out), "{out} is only in a subtree left out");
        }
        assert_eq!(self.people["mix"], [12], "mix keeps only 基础架构组");
    }
}

fn first(a: &Attrs, name: &str) -> Option<String> {
    a.first(name).map(str::to_owned)
}

/// Everything wrong with `snap` (and its role groups) for `truth`.
fn wrong(
    t: &Truth,
    snap: &Snapshot,
    roles: &BTreeMap<String, BTreeSet<String>>,
    n: &Names,
) -> Vec<String> {
    let mut out = vec![];
    let mut bad = |what: String| out.push(what);
    let depts: BTreeSet<String> = snap.departments.iter().map(|d| d.id.clone()).collect();
    let want: BTreeSet<String> = t.departments.keys().map(i64::to_string).collect();
    if depts != want {
        bad(format!("departments {depts:?}, not {want:?}"));
    }
    let people: BTreeSet<&str> = (snap.people.iter())
        .filter(|p| !p.disabled)
        .filter_map(|p| p.id.as_deref())
        .collect();
    let want: BTreeSet<&str> = t.people.keys().map(String::as_str).collect();
    if people != want {
        bad(format!("people {people:?}, not {want:?}"));
    }
    for e in &snap.people {
        let Some((id, in_depts)) = (e.id.as_ref()).and_then(|id| t.people.get_key_value(id)) else {
            continue;
        };
        let p = t.person(id);
        let a = &e.attrs;
        let depts: BTreeSet<String> = in_depts.iter().map(i64::to_string).collect();
        let held: BTreeSet<String> = e.departments.iter().cloned().collect();
        let mut checks = vec![
            (
                "departments",
                Some(format!("{held:?}")),
                Some(format!("{depts:?}")),
            ),
            (
                "mail",
                first(a, n.mail),
                (p.email.clone().or(p.org_email.clone())).map(|m| m.to_lowercase()),
            ),
            ("mobile", first(a, n.mobile), p.mobile.clone()),
            ("工号", first(a, n.staff_no), custom(p, "工号")),
            ("办公室 楼层", first(a, n.floor), custom(p, "办公室 楼层")),
        ];
        let names: Vec<&str> = in_depts.iter().map(|d| t.name(*d)).collect();
        checks.push(("dept_names", first(a, n.dept_names), Some(names.join(","))));
        let manager = p.manager_userid.as_deref().and_then(|m| key_of(snap, m));
        let have = first(a, n.manager).map(|m| m.to_lowercase());
        checks.push(("manager", have, manager));
        for (what, have, want) in checks {
            if have != want {
                bad(format!("{id}: {what} {have:?}, not {want:?}"));
            }
        }
    }
    for e in &snap.departments {
        // One out of scope is named by the comparison of the sets above.
        let id: Option<i64> =
            e.id.parse()
                .ok()
                .filter(|id| t.departments.contains_key(id));
        let Some(d) = id.and_then(|id| t.org.departments.iter().find(|d| d.id == id)) else {
            continue;
        };
        let want: BTreeSet<String> = (d.manager_userids.iter())
            .filter_map(|u| key_of(snap, u))
            .collect();
        let have: BTreeSet<String> = (e.attrs.get("owner").into_iter().flatten())
            .map(|o| o.to_lowercase())
            .collect();
        if want != have || want.is_empty() {
            bad(format!(
                "department {}: owners {have:?}, not {want:?}",
                d.id
            ));
        }
        if let Some(attr) = n.path {
            let (have, want) = (first(&e.attrs, attr), Some(t.path(d.id)));
            if have != want {
                bad(format!("department {}: path {have:?}, not {want:?}", d.id));
            }
        }
    }
    let want = t.roles();
    if *roles != want {
        bad(format!("role groups {roles:?}, not {want:?}"));
    }
    out
}

/// Role groups by name with their members.
async fn role_groups(dir: &dyn Directory) -> BTreeMap<String, BTreeSet<String>> {
    let roles = dir.read_roles().await.expect("read role groups");
    roles.into_iter().map(|r| (r.name, r.members)).collect()
}

/// The whole tenant on one backend: right after the first run, and a second writes nothing.
async fn carried_whole(w: &World, dir: &dyn Directory, ldap: bool) {
    let t = Truth::of(w.sim.org());
    t.assert_is_a_real_tenant();
    let (yaml, names) = match ldap {
        true => (LDAP_MAPPING, &LDAP),
        false => (SCIM_MAPPING, &SCIM),
    };
    let m = mapping(yaml);
    let (src, opts) = open(w, &target(ldap), &m);
    let first_run = full_sync(&src, dir, &m, &opts).await;
    assert!(first_run.missing_mobile > 0 && first_run.missing_email > 0);
    let note = src.scope_note().expect("a narrow app scope is reported");
    assert!(note.contains(&format!("[{APP_SCOPE}]")), "{note}");

    let snap = dir.read().await.expect("read the directory");
    let bad = wrong(&t, &snap, &role_groups(dir).await, names);
    assert!(bad.is_empty(), "after the first run: {bad:#?}");

    let again = full_sync(&src, dir, &m, &opts).await;
    assert_eq!(
        again.writes, 0,
        "second run: {:#?} {:?}",
        again.plan.steps, again.roles
    );
}

#[tokio::test]
async fn a_real_tenant_reaches_slapd_whole_and_a_second_run_writes_nothing() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let layout = target(true).layout.unwrap_or_default();
    let dir = w.ldap(&w.node("tenant"), layout).await;
    carried_whole(&w, &dir, true).await;
}

#[tokio::test]
async fn a_real_tenant_reaches_scim2_server_whole_and_a_second_run_writes_nothing() {
    let Some(w) = World::builder().org(org()).scim().build().await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "tenant");
    carried_whole(&w, &dir, false).await;

    // Heads are a Group of their own per department in scope, holding the heads' ids; the
    // departments left out have none.
    let groups = w.scim_client().await.list("Groups", None).await.unwrap();
    let heads: BTreeMap<&str, BTreeSet<String>> = (groups.iter())
        .filter_map(|g| {
            let name = g.body["displayName"].as_str()?;
            let members = g.body["members"].as_array().into_iter().flatten();
            let ids = members.filter_map(|m| Some(m["value"].as_str()?.to_lowercase()));
            Some((name.strip_suffix(" heads")?, ids.collect()))
        })
        .collect();
    let t = Truth::of(w.sim.org());
    let snap = dir.read().await.unwrap();
    let want: BTreeMap<String, BTreeSet<String>> = (t.org.departments.iter())
        .filter(|d| t.departments.contains_key(&d.id))
        .map(|d| {
            let ids = d.manager_userids.iter().filter_map(|u| key_of(&snap, u));
            (format!("tenant/{}", d.name), ids.collect())
        })
        .collect();
    let have: BTreeMap<String, BTreeSet<String>> =
        heads.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(have, want, "heads groups");
}
