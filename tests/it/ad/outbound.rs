//! An AD node as the source of an Outbound target: its OUs and users appear under a chosen
//! DingTalk department, a second run writes nothing, and polling by `uSNChanged` sees an edit
//! and a removal.

use dingsync::{
    api::{FieldMappingSpec, target::DeletionPolicy},
    directory::ad::AdDirectory,
    mapping::outbound::OutboundMapping,
    sim::DeptWrite,
    sync::outbound::{self, OutboundOptions},
};

use super::harness::target;
use crate::support::{CORP, World, samba};

/// Attribute names reach the templates lowercased, as with every LDAP source.
const MAPPING: &str = "direction: Outbound
user:
  uniqueName: {attribute: userid, template: '{{ samaccountname }}'}
  attributes:
  - {target: name, template: '{{ displayname }}'}
  - {target: title, template: '{{ title }}'}
  - {target: mobile, template: '{{ mobile }}'}
";

#[tokio::test(flavor = "multi_thread")]
async fn ous_and_users_reach_dingtalk_and_polling_sees_changes() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let Some(w) = World::builder()
        .people(5)
        .departments(2)
        .seed(3)
        .build()
        .await
    else {
        return;
    };
    let root = (w.sim)
        .create_department(DeptWrite {
            name: Some("域账号".into()),
            parent_id: Some(1),
            ..Default::default()
        })
        .unwrap()
        .id;
    let node = dc.new_node("source").expect("node");
    let mut ldif = format!("dn: OU=研发,{node}\nobjectClass: organizationalUnit\n\n");
    ldif.push_str(&format!(
        "dn: OU=后端,OU=研发,{node}\nobjectClass: organizationalUnit\n\n"
    ));
    for (i, parent) in [
        node.clone(),
        format!("OU=研发,{node}"),
        format!("OU=后端,OU=研发,{node}"),
    ]
    .iter()
    .enumerate()
    {
        ldif.push_str(&format!(
            "dn: CN=员工{i},{parent}\nobjectClass: user\nsAMAccountName: staff{i}\n\
             displayName: 员工{i}\ntitle: 工程师\nmobile: 1390000000{i}\n\n"
        ));
    }
    dc.ldapadd(&ldif).expect("seed the tree");
    let dir = AdDirectory::new(target(&dc, &node, CORP).open_read_only().await.unwrap());
    let spec: FieldMappingSpec = serde_yaml::from_str(MAPPING).unwrap();
    let mapping = OutboundMapping::compile(&spec).unwrap();
    let opts = OutboundOptions {
        root,
        policy: DeletionPolicy::Delete,
        max_percent: 100,
        max_count: 0,
        approval: None,
        adopt_existing: false,
    };
    let run = || outbound::run(&w.client, &dir, &mapping, &opts, false);
    let r = run().await.unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.created, r.departments_created), (3, 2));
    let org = w.sim.org();
    let person = |userid: &str| org.people.iter().find(|p| p.userid == userid).cloned();
    let dept_name = |id: i64| {
        org.departments
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .name
            .clone()
    };
    assert_eq!(person("staff0").unwrap().departments, vec![root]);
    assert_eq!(dept_name(person("staff1").unwrap().departments[0]), "研发");
    assert_eq!(dept_name(person("staff2").unwrap().departments[0]), "后端");
    let again = run().await.unwrap();
    assert_eq!(again.writes, 0, "nothing changed, nothing written");
    let mark = again.mark.clone().expect("a mark");
    assert!(
        !outbound::poll(&dir, &mark).await.unwrap(),
        "nothing changed"
    );

    dc.ldapadd(&format!(
        "dn: CN=员工1,OU=研发,{node}\nchangetype: modify\nreplace: title\ntitle: 经理\n"
    ))
    .unwrap();
    assert!(outbound::poll(&dir, &mark).await.unwrap(), "an edit");
    let r = run().await.unwrap();
    assert_eq!(r.updated, 1, "{:#?}", r.failures);
    let mark = r.mark.clone().unwrap();
    assert!(!outbound::poll(&dir, &mark).await.unwrap());
    dc.ldapadd(&format!("dn: CN=员工0,{node}\nchangetype: delete\n"))
        .unwrap();
    assert!(outbound::poll(&dir, &mark).await.unwrap(), "a removal");
    let r = run().await.unwrap();
    assert_eq!(r.deleted, 1, "{:#?}", r.failures);
}
