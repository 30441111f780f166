//! The node view: anchors, department groups, memberships, locks, renames and moves.

use dingsync::directory::Attrs;
use std::process::Command;

use dingsync::api::target::Layout;
use dingsync::directory::ldap::client::{ConnectOptions, Pool, Secret};
use dingsync::directory::ldap::store::Store;

use crate::support::slapd::{self, SERVICE_DN, Slapd};

async fn store(s: &Slapd, node: &str, layout: Layout, corp: &str) -> Store {
    let pool = Pool::connect(ConnectOptions::new(
        s.url(),
        SERVICE_DN,
        Secret::new(s.service_password()),
    ))
    .await
    .unwrap();
    Store::open(pool, node, layout, corp).await.unwrap()
}

fn person(uid: &str, cn: &str) -> Attrs {
    [
        ("uid", uid),
        ("cn", cn),
        ("sn", cn),
        ("userPassword", "pw-of-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
    .collect()
}

fn can_bind(s: &Slapd, dn: &str, pw: &str) -> bool {
    Command::new("ldapwhoami")
        .args(["-x", "-H", &s.url(), "-D", dn, "-w", pw])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn people_groups_and_memberships() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("acme").unwrap();
    let st = store(&s, &node, Layout::FlatWithGroups, "dingcorp").await;
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    st.create_dept("2", "研发,部", Some("1"), &Attrs::new())
        .await
        .unwrap();
    st.create_dept("3", "Sales", Some("1"), &Attrs::new())
        .await
        .unwrap();
    st.create_person("u1", &person("zhangsan", "张三"), None, false)
        .await
        .unwrap();
    st.create_person("u2", &person("lisi", "李四"), None, false)
        .await
        .unwrap();
    st.add_members("2", &["u1".into(), "u2".into()])
        .await
        .unwrap();
    st.add_members("3", &["u1".into()]).await.unwrap();
    // Adding again is idempotent.
    st.add_members("3", &["u1".into()]).await.unwrap();

    let snap = st.read().await.unwrap();
    assert_eq!(snap.people.len(), 2);
    assert_eq!(snap.departments.len(), 3);
    let u1 = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("u1"))
        .unwrap();
    assert_eq!(u1.departments, vec!["2".to_string(), "3".to_string()]);
    assert!(u1.dn.starts_with("uid=zhangsan,ou=people,"));
    assert!(
        !u1.attrs.contains_key("businesscategory"),
        "anchor is not a user attribute"
    );
    let d2 = snap.departments.iter().find(|d| d.id == "2").unwrap();
    assert_eq!(d2.parent.as_deref(), Some("1"));
    assert_eq!(d2.name, "研发,部");
    // The empty top department holds its own DN as placeholder member, not a person.
    let raw = s
        .search(&format!("ou=groups,{node}"), "(cn=Acme)", &["member"])
        .unwrap();
    let acme = st.dn_of_dept("1").unwrap();
    assert!(raw.contains(&format!("member: {acme}")), "{raw}");

    // Emptying a group leaves the placeholder instead of failing.
    st.remove_members("3", &["u1".into()]).await.unwrap();
    let snap = st.read().await.unwrap();
    let u1 = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("u1"))
        .unwrap();
    assert_eq!(u1.departments, vec!["2".to_string()]);
    // ...and the first real member replaces it.
    st.add_members("3", &["u2".into()]).await.unwrap();
    let raw = s
        .search(&format!("ou=groups,{node}"), "(cn=Sales)", &["member"])
        .unwrap();
    assert!(!raw.contains(&format!("member: {node}")), "{raw}");
}

#[tokio::test]
async fn disable_locks_and_leaves_groups_enable_unlocks() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("lock").unwrap();
    let st = store(&s, &node, Layout::FlatWithGroups, "dingcorp").await;
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    let dn = st
        .create_person("u1", &person("wangwu", "王五"), None, false)
        .await
        .unwrap();
    st.add_members("1", &["u1".into()]).await.unwrap();
    assert!(can_bind(&s, &dn, "pw-of-test"));

    st.disable_person("u1").await.unwrap();
    assert!(
        !can_bind(&s, &dn, "pw-of-test"),
        "a disabled account must not bind"
    );
    let snap = st.read().await.unwrap();
    let p = &snap.people[0];
    assert!(p.disabled);
    assert!(p.departments.is_empty());

    st.enable_person("u1").await.unwrap();
    st.enable_person("u1").await.unwrap(); // idempotent
    assert!(can_bind(&s, &dn, "pw-of-test"));
    assert!(!st.read().await.unwrap().people[0].disabled);
}

#[tokio::test]
async fn renames_and_moves_are_modrdn_of_the_same_entries() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("mv").unwrap();
    let st = store(&s, &node, Layout::FlatWithGroups, "dingcorp").await;
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    st.create_dept("2", "Dev", Some("1"), &Attrs::new())
        .await
        .unwrap();
    st.create_dept("3", "Backend", Some("2"), &Attrs::new())
        .await
        .unwrap();
    st.create_dept("4", "Ops", Some("1"), &Attrs::new())
        .await
        .unwrap();
    st.create_person("u1", &person("zhaoliu", "赵六"), None, false)
        .await
        .unwrap();
    st.add_members("3", &["u1".into()]).await.unwrap();
    let before = st.read().await.unwrap();
    let uuid = |snap: &dingsync::directory::ldap::store::Snapshot, id: &str| {
        snap.departments
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .uuid
            .clone()
            .unwrap()
    };

    // Rename Dev: its subgroup moves along in one modrdn.
    st.move_dept("2", "Engineering", Some("1")).await.unwrap();
    // Move Backend under Ops.
    st.move_dept("3", "Backend", Some("4")).await.unwrap();
    // Rename the person (uid change).
    let mut ch = Attrs::new();
    ch.insert("uid".to_string(), vec!["zhaoliu2".to_string()]);
    ch.insert("mail".to_string(), vec!["z6@example.com".to_string()]);
    st.update_person("u1", &ch).await.unwrap();

    let after = st.read().await.unwrap();
    for id in ["2", "3"] {
        assert_eq!(
            uuid(&before, id),
            uuid(&after, id),
            "department {id} was recreated"
        );
    }
    let d3 = after.departments.iter().find(|d| d.id == "3").unwrap();
    assert_eq!(d3.parent.as_deref(), Some("4"));
    let p_before = &before.people[0];
    let p_after = &after.people[0];
    assert_eq!(p_before.uuid, p_after.uuid);
    assert!(p_after.dn.starts_with("uid=zhaoliu2,"));
    assert_eq!(
        p_after.departments,
        vec!["3".to_string()],
        "membership follows the new DN"
    );
    assert_eq!(
        p_after.attrs.values_of("mail").unwrap(),
        vec!["z6@example.com".to_string()]
    );
    // A department cannot move below itself.
    assert!(st.move_dept("1", "Acme", Some("3")).await.is_err());
}

#[tokio::test]
async fn two_enterprises_and_unlinked_entries_stay_apart() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("shared").unwrap();
    let a = store(&s, &node, Layout::FlatWithGroups, "corpA").await;
    a.create_person("u1", &person("same", "A"), None, false)
        .await
        .unwrap();
    // A hand-made entry without anchor: unlinked, offered for matching.
    s.ldapadd(&format!(
        "dn: uid=manual,ou=people,{node}\nobjectClass: inetOrgPerson\nuid: manual\ncn: M\nsn: M\nmail: m@example.com\n"
    ))
    .unwrap();
    let b = store(&s, &node, Layout::FlatWithGroups, "corpB").await;
    let snap = b.read().await.unwrap();
    assert!(
        snap.people.is_empty(),
        "corpB must not see corpA's people as its own"
    );
    assert_eq!(snap.skipped.len(), 1);
    assert_eq!(snap.unlinked.len(), 1);
    b.link_person(&snap.unlinked[0].dn, "m1").await.unwrap();
    let snap = b.read().await.unwrap();
    assert_eq!(snap.people.len(), 1);
    assert_eq!(snap.people[0].id.as_deref(), Some("m1"));
    assert_eq!(a.read().await.unwrap().people.len(), 1);
}

#[tokio::test]
async fn ou_tree_places_people_under_their_department() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("tree").unwrap();
    let st = store(&s, &node, Layout::OuTree, "dingcorp").await;
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    st.create_dept("2", "Dev", Some("1"), &Attrs::new())
        .await
        .unwrap();
    let dn = st
        .create_person("u1", &person("qian", "钱"), Some("2"), false)
        .await
        .unwrap();
    assert!(dn.starts_with("uid=qian,ou=Dev,ou=Acme,ou=people,"), "{dn}");
    st.add_members("2", &["u1".into()]).await.unwrap();
    // Renaming the department moves the person's DN with it; membership follows (refint).
    st.move_dept("2", "Engineering", Some("1")).await.unwrap();
    let snap = st.read().await.unwrap();
    let p = &snap.people[0];
    assert!(
        p.dn.starts_with("uid=qian,ou=Engineering,ou=Acme,"),
        "{}",
        p.dn
    );
    assert_eq!(p.container.as_deref(), Some("2"));
    assert_eq!(
        st.dn_of_person("u1").unwrap().to_lowercase(),
        p.dn.to_lowercase()
    );
    // Moving the person to another department's OU.
    st.move_person("u1", "qian", Some("1")).await.unwrap();
    let snap = st.read().await.unwrap();
    assert_eq!(snap.people[0].container.as_deref(), Some("1"));
}

#[tokio::test]
async fn without_ppolicy_disable_fails_clearly_and_changes_nothing() {
    if !slapd::available_or_skip() {
        return;
    }
    let s = Slapd::start_without_ppolicy().unwrap();
    let node = s.new_node("nolock").unwrap();
    let st = store(&s, &node, Layout::FlatWithGroups, "dingcorp").await;
    assert!(!st.lock_supported());
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    st.create_person("u1", &person("a", "A"), None, false)
        .await
        .unwrap();
    st.add_members("1", &["u1".into()]).await.unwrap();
    let err = st.disable_person("u1").await.unwrap_err();
    assert!(err.to_string().contains("ppolicy"), "{err}");
    let snap = st.read().await.unwrap();
    assert_eq!(snap.people[0].departments, vec!["1".to_string()]);
    assert!(!snap.people[0].disabled);
}

/// A missing node is reported with what to do; `createNode` creates an `ou=` or `o=` node
/// (never its parents, never another kind of entry) and the store works in it at once.
#[tokio::test]
async fn a_missing_node_is_named_or_created_when_asked() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let base = s.new_node("nodes").unwrap();
    let pool = || async {
        Pool::connect(ConnectOptions::new(
            s.url(),
            SERVICE_DN,
            Secret::new(s.service_password()),
        ))
        .await
        .unwrap()
    };
    let fresh = format!("ou=fresh,{base}");
    let err = Store::open(pool().await, &fresh, Layout::FlatWithGroups, "c")
        .await
        .map(|_| ())
        .expect_err("a missing node is refused")
        .to_string();
    assert!(
        err.contains(&fresh) && err.contains("spec.createNode"),
        "{err}"
    );
    let st = Store::open_creating(pool().await, &fresh, Layout::FlatWithGroups, "c")
        .await
        .unwrap();
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    assert_eq!(st.read().await.unwrap().departments.len(), 1);
    let again = Store::open_creating(pool().await, &fresh, Layout::FlatWithGroups, "c").await;
    assert!(again.is_ok(), "an existing node is used as it is");
    let org = format!("o=Acme Org,{base}");
    Store::open_creating(pool().await, &org, Layout::OuTree, "c")
        .await
        .unwrap();
    let listing = s
        .search(&org, "(objectClass=organization)", &["o"])
        .unwrap();
    assert!(listing.contains("o: Acme Org"), "{listing}");
    for (node, says) in [
        (format!("cn=box,{base}"), "only an ou= or o= node"),
        (
            format!("ou=child,ou=absent,{base}"),
            "parent does not exist",
        ),
    ] {
        let err = Store::open_creating(pool().await, &node, Layout::FlatWithGroups, "c")
            .await
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(err.contains(says), "{node}: {err}");
    }
}
