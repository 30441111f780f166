//! What only AD has, checked as a Windows admin would: `ldapsearch` over LDAPS shows the
//! account control bits, `memberOf` and `manager` DNs a sync left; passwords go only over TLS.

use std::collections::BTreeMap;

use dingsync::{
    api::{FieldMappingSpec, target::NewAccounts},
    directory::{Directory, ad::AWAITING_PASSWORD},
    mapping::Mapping,
    sync::{Options, Report, StaticSource, run},
};
use serde_json::json;

use super::harness::open;
use crate::support::conformance::{Org, base_org};
use crate::support::samba::{self, Samba};

/// The mapping an AD target uses: `sAMAccountName` names the account.
pub const AD_MAPPING: &str = r#"
user:
  uniqueName: {attribute: sAMAccountName, template: "{{ name | pinyin }}"}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: displayName, template: "{{ name }}"}
    - {target: sn, template: "{{ name[:1] }}"}
    - {target: mail, template: "{{ email | lower }}"}
    - {target: title, template: "{{ title }}"}
    - {target: manager, template: "{{ manager_userid }}", refersTo: Person}
"#;

pub fn mapping(yaml: &str) -> Mapping {
    let spec: FieldMappingSpec = serde_yaml::from_str(yaml).expect("mapping YAML");
    Mapping::compile(&spec).expect("mapping compiles")
}

pub async fn sync(org: &Org, dir: &dyn Directory, m: &Mapping) -> Report {
    let source = StaticSource::new(org.snapshot(true));
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    run(&source, dir, m, &opts, false, &|_, _, _| {})
        .await
        .expect("sync runs")
}

/// `ldapsearch` output as entries: sAMAccountName → attribute (lowercased) → values.
fn accounts(
    dc: &Samba,
    node: &str,
    attrs: &[&str],
) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut want = vec!["sAMAccountName"];
    want.extend_from_slice(attrs);
    let ldif = dc
        .search(node, "(objectClass=user)", &want)
        .expect("ldapsearch");
    let mut out = BTreeMap::new();
    for block in ldif.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut entry: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in block.lines() {
            let Some((k, v)) = line.split_once(": ") else {
                continue;
            };
            // `attr:: value` is base64 (ldapsearch's way with non-ASCII text).
            let v = match k.strip_suffix(':') {
                Some(_) => {
                    use base64::Engine;
                    let raw = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
                    String::from_utf8_lossy(&raw).into_owned()
                }
                None => v.to_string(),
            };
            let k = k.trim_end_matches(':').to_ascii_lowercase();
            entry.entry(k).or_default().push(v);
        }
        if let Some(sam) = entry.get("samaccountname").and_then(|v| v.first()).cloned() {
            out.insert(sam, entry);
        }
    }
    out
}

/// The base org with managers: 王芳 and 刘洋 report to 李娜, 陈静 to 刘洋.
fn managed_org() -> Org {
    let manager = |m: &'static str| {
        move |p: &mut dingsync::model::Person| {
            p.fields.insert("manager_userid", json!(m));
        }
    };
    base_org("dingacme")
        .edit("u2", manager("u1"))
        .edit("u3", manager("u1"))
        .edit("u4", manager("u3"))
}

#[tokio::test]
async fn ldapsearch_shows_account_control_groups_and_managers() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let node = dc.new_node("windows").expect("node");
    let dir = open(&dc, &node, "dingacme", |t| {
        t.new_accounts = NewAccounts::EnabledWithRandomPassword;
    })
    .await;
    let m = mapping(AD_MAPPING);
    let org = managed_org();
    let first = sync(&org, &dir, &m).await;
    assert!(first.failures.is_empty(), "{:#?}", first.failures);
    let r = sync(&org.clone().without("u2"), &dir, &m).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(r.disabled, 1);
    let again = sync(&org.clone().without("u2"), &dir, &m).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);

    let seen = accounts(
        &dc,
        &node,
        &["userAccountControl", "memberOf", "manager", "pwdLastSet"],
    );
    let one = |sam: &str, attr: &str| -> String {
        seen[sam]
            .get(attr)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        one("wangfang", "useraccountcontrol"),
        "514",
        "the leaver: {seen:#?}"
    );
    for sam in ["lina", "liuyang", "chenjing"] {
        assert_eq!(
            one(sam, "useraccountcontrol"),
            "512",
            "{sam} has a password and may log on"
        );
        assert_ne!(
            one(sam, "pwdlastset"),
            "0",
            "{sam}'s random password is set"
        );
    }
    let dn_of = |sam: &str| dir.store().dn_of_person(sam_id(sam)).expect("indexed");
    assert_eq!(one("liuyang", "manager"), dn_of("lina"));
    assert_eq!(one("chenjing", "manager"), dn_of("liuyang"));
    assert_eq!(
        one("wangfang", "manager"),
        dn_of("lina"),
        "a leaver keeps their manager"
    );
    let groups = |sam: &str| -> Vec<String> {
        let mut g: Vec<String> = seen[sam]
            .get("memberof")
            .into_iter()
            .flatten()
            .map(|dn| dn.split(',').next().unwrap_or_default().to_string())
            .collect();
        g.sort();
        g
    };
    assert_eq!(groups("liuyang"), ["CN=Backend", "CN=Sales"]);
    assert_eq!(groups("lina"), ["CN=Engineering"]);
    assert!(
        groups("wangfang").is_empty(),
        "the leaver is in no department group"
    );
    // Departments nest by membership: Backend is a member of Engineering, which is one of Acme.
    let ldif = dc
        .search(&node, "(objectClass=group)", &["cn", "memberOf"])
        .expect("groups");
    assert!(
        ldif.contains("dn: CN=Backend,OU=groups")
            && ldif.contains("memberOf: CN=Engineering,OU=groups"),
        "{ldif}"
    );
    // The rehire has a password: back to 512, back in Sales.
    let back = sync(&org, &dir, &m).await;
    assert_eq!(back.enabled, 1, "{:?}", back.plan.steps);
    let seen = accounts(&dc, &node, &["userAccountControl", "memberOf"]);
    assert_eq!(seen["wangfang"]["useraccountcontrol"], ["512"]);
    assert!(seen["wangfang"]["memberof"][0].starts_with("CN=Sales,"));
}

fn sam_id(sam: &str) -> &'static str {
    match sam {
        "lina" => "u1",
        "wangfang" => "u2",
        "liuyang" => "u3",
        "chenjing" => "u4",
        other => panic!("no such person {other}"),
    }
}

/// Without a password an account waits disabled (546), is no leaver, and a sync leaves it so.
#[tokio::test]
async fn new_accounts_wait_for_a_password() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let node = dc.new_node("waiting").expect("node");
    let dir = open(&dc, &node, "dingacme", |_| {}).await;
    let m = mapping(AD_MAPPING);
    let org = base_org("dingacme");
    let r = sync(&org, &dir, &m).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    let seen = accounts(&dc, &node, &["userAccountControl", "userPrincipalName"]);
    let uac = |sam: &str| seen[sam]["useraccountcontrol"][0].clone();
    assert_eq!(uac("lina"), AWAITING_PASSWORD.to_string());
    assert_eq!(seen["lina"]["userprincipalname"][0], "lina@dingsync.test");
    let snap = dir.read().await.unwrap();
    assert!(
        snap.people.iter().all(|p| !p.disabled),
        "waiting is not leaving"
    );
    let again = sync(&org, &dir, &m).await;
    assert_eq!(
        again.writes, 0,
        "nothing re-enabled: {:?}",
        again.plan.steps
    );
    // A leaver waiting for a password becomes 514 like any other, and a rehire waits again.
    let gone = sync(&org.clone().without("u2"), &dir, &m).await;
    assert_eq!(gone.disabled, 1);
    let seen = accounts(&dc, &node, &["userAccountControl"]);
    assert_eq!(seen["wangfang"]["useraccountcontrol"][0], "514");
    let back = sync(&org, &dir, &m).await;
    assert_eq!(back.enabled, 1);
    let seen = accounts(&dc, &node, &["userAccountControl"]);
    assert_eq!(
        seen["wangfang"]["useraccountcontrol"][0],
        AWAITING_PASSWORD.to_string()
    );
}

/// Kerberos-free: simple binds over LDAPS and StartTLS work; a password over plain LDAP is
/// refused by dingsync before anything is sent, and a plain bind by the DC.
#[tokio::test]
async fn passwords_only_over_tls() {
    use dingsync::directory::DirectoryError;
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let node = dc.new_node("tls").expect("node");
    let starttls = open(&dc, &node, "dingacme", |t| {
        t.connect.url = dc.ldap_url();
        t.connect.start_tls = true;
        t.new_accounts = NewAccounts::EnabledWithRandomPassword;
    })
    .await;
    assert!(starttls.read().await.is_ok(), "StartTLS bind and read");
    let plain = |t: &mut dingsync::directory::ad::AdTarget| {
        t.connect.url = dc.ldap_url();
        t.connect.start_tls = false;
    };
    let mut target = harness::target(&dc, &node, "dingacme");
    plain(&mut target);
    target.new_accounts = NewAccounts::EnabledWithRandomPassword;
    let err = DirectoryError::from(target.open().await.expect_err("refused"));
    let msg = err.to_string();
    assert!(matches!(err, DirectoryError::Config(_)), "{err:?}");
    assert!(
        msg.contains("unicodePwd") && msg.contains("ldaps://"),
        "{msg}"
    );
    assert!(!msg.contains(dc.admin_password()));
    target.new_accounts = NewAccounts::Disabled;
    let err = DirectoryError::from(target.open().await.expect_err("the DC refuses"));
    assert!(matches!(err, DirectoryError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains(dc.admin_password()));
}

use super::harness;

/// Groups larger than one `member` range are read whole, range after range (here 2 values a
/// range, where AD's default is 1,500), and a read in one range sees the same.
#[tokio::test]
async fn member_ranges_are_read_to_the_end() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let node = dc.new_node("ranges").expect("node");
    let dir = open(&dc, &node, "dingacme", |t| t.range_step = 2).await;
    let mut org = base_org("dingacme");
    for i in 0..7 {
        let name = format!("成员{}", "一二三四五六七".chars().nth(i).unwrap());
        org = org.person(&format!("m{i}"), &name, &["4"], None, None);
    }
    let r = sync(&org, &dir, &mapping(AD_MAPPING)).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    let ranged = dir.read().await.unwrap();
    let in_backend = (ranged.people.iter())
        .filter(|p| p.departments.contains(&"4".to_string()))
        .count();
    assert_eq!(in_backend, 9, "刘洋, 陈静 and the seven members");
    let whole = open(&dc, &node, "dingacme", |_| {})
        .await
        .read()
        .await
        .unwrap();
    let deps = |s: &dingsync::directory::Snapshot| -> BTreeMap<String, Vec<String>> {
        (s.people.iter())
            .map(|p| (p.id.clone().unwrap(), p.departments.clone()))
            .collect()
    };
    assert_eq!(deps(&ranged), deps(&whole));
    let parents = |s: &dingsync::directory::Snapshot| -> BTreeMap<String, Option<String>> {
        (s.departments.iter())
            .map(|d| (d.id.clone(), d.parent.clone()))
            .collect()
    };
    assert_eq!(parents(&ranged), parents(&whole));
}

/// `sAMAccountName` holds at most 20 characters: with `maxLength: 20` homonyms of a long
/// name get their suffix inside the limit, stable across runs and hires, and their `cn`s
/// (AD's RDN, unique in the OU) the account name in parentheses; without it, a name too long
/// is refused for that person alone, with why.
#[tokio::test]
async fn homonyms_fit_twenty_characters() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let node = dc.new_node("homonyms").expect("node");
    let dir = open(&dc, &node, "dingacme", |_| {}).await;
    let limited = AD_MAPPING.replace(
        r#"template: "{{ name | pinyin }}"}"#,
        r#"template: "{{ name | pinyin }}", maxLength: 20}"#,
    );
    let m = mapping(&limited);
    let long = "欧阳小小小小明"; // ouyangxiaoxiaoxiaoxiaoming: 25 characters
    let org = Org::new("dingacme")
        .dept("1", "Acme", None)
        .person("oy-b", long, &["1"], None, None)
        .person("oy-c", long, &["1"], None, None)
        .person("oy-d", long, &["1"], None, None);
    let r = sync(&org, &dir, &m).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    let grown = org.clone().person("oy-a", long, &["1"], None, None);
    let r = sync(&grown, &dir, &m).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    let again = sync(&grown, &dir, &m).await;
    assert_eq!(again.writes, 0, "{:?}", again.plan.steps);
    let seen = accounts(&dc, &node, &["cn"]);
    let names: Vec<(&str, &str)> = seen
        .iter()
        .map(|(sam, e)| (sam.as_str(), e["cn"][0].as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "ouyangxiaoxiaoxiaox2",
                "欧阳小小小小明 (ouyangxiaoxiaoxiaox2)"
            ),
            (
                "ouyangxiaoxiaoxiaox3",
                "欧阳小小小小明 (ouyangxiaoxiaoxiaox3)"
            ),
            (
                "ouyangxiaoxiaoxiaox4",
                "欧阳小小小小明 (ouyangxiaoxiaoxiaox4)"
            ),
            ("ouyangxiaoxiaoxiaoxi", "欧阳小小小小明"),
        ]
    );
    let snap = dir.read().await.unwrap();
    let oy_a = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("oy-a"))
        .unwrap();
    assert_eq!(
        oy_a.attrs.first("samaccountname"),
        Some("ouyangxiaoxiaoxiaox4")
    );
    assert_eq!(
        oy_a.attrs.first("cn"),
        Some(long),
        "the engine sees the cn it wrote"
    );

    // Without the limit the engine wants 25 characters; AD cannot hold them.
    let node = dc.new_node("unlimited").expect("node");
    let dir = open(&dc, &node, "dingacme", |_| {}).await;
    let r = sync(
        &org.clone().person("ok", "李娜", &["1"], None, None),
        &dir,
        &mapping(AD_MAPPING),
    )
    .await;
    assert_eq!(r.failures.len(), 3, "{:#?}", r.failures);
    assert!(
        r.failures[0].message.contains("20"),
        "{}",
        r.failures[0].message
    );
    assert_eq!(
        dir.read().await.unwrap().people.len(),
        1,
        "the others are created"
    );
}

/// `OuTree`: a department renamed and moved takes its OU, and the people in it, along (one
/// modrdn); later writes to those people find them at their new DNs.
#[tokio::test]
async fn ou_tree_department_moves_take_their_people() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let node = dc.new_node("outree").expect("node");
    let dir = open(&dc, &node, "dingacme", |t| {
        t.layout = dingsync::api::target::Layout::OuTree
    })
    .await;
    let m = mapping(AD_MAPPING);
    let opts = Options {
        ou_tree: true,
        max_percent: 100,
        ..Default::default()
    };
    let go = |org: Org| {
        let (dir, m, opts) = (&dir, &m, opts.clone());
        async move {
            let source = StaticSource::new(org.snapshot(true));
            let r = run(&source, dir, m, &opts, false, &|_, _, _| {})
                .await
                .unwrap();
            assert!(r.failures.is_empty(), "{:#?}", r.failures);
            r
        }
    };
    let org = base_org("dingacme");
    go(org.clone()).await;
    let first = dir.read().await.unwrap();
    let u4 = first
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("u4"))
        .unwrap();
    assert!(
        u4.key
            .starts_with("CN=陈静,OU=Backend,OU=Engineering,OU=Acme,OU=people,OU=outree"),
        "{}",
        u4.key
    );
    let moved = org
        .edit_dept("2", |d| {
            d.name = "R&D".into();
            d.fields.insert("name", json!("R&D"));
        })
        .edit_dept("4", |d| d.parent = Some("3".into()))
        .edit("u4", |p| {
            p.fields.insert("title", json!("Lead"));
        });
    go(moved.clone()).await;
    let snap = dir.read().await.unwrap();
    let key = |id: &str| {
        (snap.people.iter())
            .find(|p| p.id.as_deref() == Some(id))
            .unwrap()
            .key
            .clone()
    };
    assert!(
        key("u1").starts_with("CN=李娜,OU=R&D,OU=Acme,OU=people,"),
        "{}",
        key("u1")
    );
    assert!(
        key("u4").starts_with("CN=陈静,OU=Backend,OU=Sales,OU=Acme,OU=people,"),
        "{}",
        key("u4")
    );
    let u4 = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("u4"))
        .unwrap();
    assert_eq!(u4.attrs.first("title"), Some("Lead"));
    assert_eq!(u4.container.as_deref(), Some("4"));
    let again = go(moved).await;
    assert_eq!(again.writes, 0, "{:?}", again.plan.steps);
}
