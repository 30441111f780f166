//! How many requests the node's writes cost: a department's members go in one modify,
//! whatever the state of its placeholder member.

use dingsync::api::target::Layout;
use dingsync::directory::Attrs;
use dingsync::directory::ldap::store::Store;

use crate::support::slapd::{self, Slapd};
use crate::support::world::ldap_pool;

fn person(uid: &str) -> Attrs {
    [("uid", uid), ("cn", uid), ("sn", uid)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect()
}

/// The `member` values of a department's group, as slapd holds them.
fn members(s: &Slapd, store: &Store, dept: &str) -> Vec<String> {
    let dn = store.dn_of_dept(dept).expect("the department's group");
    let ldif = s
        .search(&dn, "(objectClass=*)", &["member"])
        .expect("search");
    let mut v: Vec<String> = ldif
        .lines()
        .filter_map(|l| l.strip_prefix("member: "))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_departments_members_and_its_placeholder_go_in_one_request() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("writes").unwrap();
    let st = Store::open(ldap_pool(&s).await, &node, Layout::FlatWithGroups, "corp")
        .await
        .unwrap();
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    for uid in ["a", "b", "c"] {
        st.create_person(uid, &person(uid), None, false)
            .await
            .unwrap();
    }
    let dn = |id: &str| st.dn_of_person(id).unwrap();
    assert_eq!(
        members(&s, &st, "1"),
        vec![node.clone()],
        "placeholder only"
    );

    // The first members replace the placeholder in the same modify.
    let before = st.pool().writes_sent();
    st.add_members("1", &["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![dn("a"), dn("b")]);

    // Later members: one request too.
    let before = st.pool().writes_sent();
    st.add_members("1", &["c".into()]).await.unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![dn("a"), dn("b"), dn("c")]);

    // Emptied, the placeholder is back; the next member takes its place in one request.
    st.remove_members("1", &["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    assert_eq!(members(&s, &st, "1"), vec![node.clone()]);
    let before = st.pool().writes_sent();
    st.add_members("1", &["b".into()]).await.unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![dn("b")]);

    // Someone already in: still added, the others too, and nothing is doubled.
    st.add_members("1", &["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(members(&s, &st, "1"), vec![dn("a"), dn("b")]);
}

/// The index says the placeholder is there, but the group lost it meanwhile (another writer
/// of the same group): the members still arrive.
#[tokio::test]
async fn members_arrive_when_the_placeholder_is_already_gone() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("writes").unwrap();
    let st = Store::open(ldap_pool(&s).await, &node, Layout::FlatWithGroups, "corp")
        .await
        .unwrap();
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    for uid in ["a", "b"] {
        st.create_person(uid, &person(uid), None, false)
            .await
            .unwrap();
    }
    let group = st.dn_of_dept("1").unwrap();
    let a = st.dn_of_person("a").unwrap();
    s.ldapmodify(&format!(
        "dn: {group}\nchangetype: modify\nadd: member\nmember: {a}\n-\ndelete: member\nmember: {node}\n"
    ))
    .unwrap();
    st.add_members("1", &["b".into()]).await.unwrap();
    let b = st.dn_of_person("b").unwrap();
    assert_eq!(members(&s, &st, "1"), vec![a, b]);
}
