//! Outbound from a real SCIM service provider (scim2-server): Groups become DingTalk
//! departments, active Users people; a second run writes nothing; an edit, a user made
//! inactive and a group rename reach DingTalk, and a poll notices each without reading
//! DingTalk.

use crate::support::{CORP, World};
use dingsync::{
    api::{FieldMappingSpec, target::DeletionPolicy},
    directory::scim::ScimDirectory,
    mapping::outbound::OutboundMapping,
    sim::DeptWrite,
    sync::outbound::{self, OutboundOptions},
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_scim_directory_is_pushed_to_dingtalk_and_kept_in_step() {
    let Some(w) = World::builder()
        .people(3)
        .departments(1)
        .seed(2)
        .rate(1000)
        .scim()
        .build()
        .await
    else {
        return;
    };
    let (sim, client) = (&w.sim, &w.client);
    let scim = w.scim_client().await;
    let mut users = Vec::new();
    for i in 0..12 {
        let u = scim
            .create(
                "Users",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("s{i:03}"),
                    "displayName": format!("成员{i}"),
                    "emails": [{"type": "work", "value": format!("s{i}@example.com")}],
                    "phoneNumbers": [{"type": "mobile", "value": format!("1380000{i:04}")}],
                    "active": true,
                }),
            )
            .await
            .unwrap();
        users.push(u.id);
    }
    let group = |name: &str, members: &[&String]| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
        })
    };
    let ops = scim
        .create(
            "Groups",
            group("运营", &users[..6].iter().collect::<Vec<_>>()),
        )
        .await
        .unwrap();
    scim.create(
        "Groups",
        group("市场", &users[6..10].iter().collect::<Vec<_>>()),
    )
    .await
    .unwrap();

    let root = sim
        .create_department(DeptWrite {
            name: Some("SCIM".into()),
            parent_id: Some(1),
            ..Default::default()
        })
        .unwrap()
        .id;
    let dir = ScimDirectory::new(scim, CORP, "src");
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  - {target: email, template: '{{ mail }}'}\n",
    )
    .unwrap();
    let mapping = OutboundMapping::compile(&spec).unwrap();
    let opts = OutboundOptions {
        root,
        policy: DeletionPolicy::Delete,
        max_count: 0,
        max_percent: 100,
        approval: None,
        adopt_existing: false,
    };
    let members = |dept: &str| -> Vec<String> {
        let org = sim.org();
        let Some(d) = org
            .departments
            .iter()
            .find(|d| d.name == dept && d.parent_id == Some(root))
        else {
            return vec![];
        };
        let mut v: Vec<String> = org
            .people
            .iter()
            .filter(|p| p.departments.contains(&d.id))
            .map(|p| p.userid.clone())
            .collect();
        v.sort();
        v
    };

    let r = outbound::run(client, &dir, &mapping, &opts, false)
        .await
        .unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.created, r.departments_created), (12, 2));
    assert_eq!(
        members("运营"),
        (0..6).map(|i| format!("s{i:03}")).collect::<Vec<_>>()
    );
    assert_eq!(members("市场").len(), 4);
    assert_eq!(members("").len(), 0);
    let mark = r.mark.clone().unwrap();
    let again = outbound::run(client, &dir, &mapping, &opts, false)
        .await
        .unwrap();
    assert_eq!((again.writes, again.unchanged), (0, 12));
    assert!(
        !outbound::poll(&dir, &mark).await.unwrap(),
        "nothing changed"
    );

    // Group rename, a user made inactive.
    let scim = w.scim_client().await;
    let mut g = scim.get("Groups", &ops.id).await.unwrap().body;
    g["displayName"] = json!("运营中心");
    g.as_object_mut().unwrap().remove("meta");
    scim.replace("Groups", &ops.id, g, None).await.unwrap();
    let mut u = scim.get("Users", &users[11]).await.unwrap().body;
    u["active"] = json!(false);
    u.as_object_mut().unwrap().remove("meta");
    scim.replace("Users", &users[11], u, None).await.unwrap();
    assert!(outbound::poll(&dir, &mark).await.unwrap(), "a poll notices");
    let r = outbound::run(client, &dir, &mapping, &opts, false)
        .await
        .unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.departments_updated, r.deleted), (1, 1));
    assert_eq!(members("运营中心").len(), 6, "renamed, members kept");
    assert!(sim.org().people.iter().all(|p| p.userid != "s011"));
}
