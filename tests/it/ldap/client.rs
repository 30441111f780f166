//! The connection layer: CRUD, modrdn, paging, escaping, error kinds, reconnects.

use dingsync::directory::Attrs;

use dingsync::directory::ldap::client::{ConnectOptions, LdapError, Modification, Pool, Secret};
use dingsync::directory::ldap::dn::{Dn, escape_filter_value};
use ldap3::Scope;

use crate::support::slapd::{self, LIMITED_DN, SERVICE_DN, SIZE_LIMIT, Slapd};

async fn pool(s: &Slapd) -> std::sync::Arc<Pool> {
    Pool::connect(ConnectOptions::new(
        s.url(),
        SERVICE_DN,
        Secret::new(s.service_password()),
    ))
    .await
    .expect("service account binds")
}

fn attrs(pairs: &[(&str, &[&str])]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

fn person(uid: &str, cn: &str) -> Attrs {
    attrs(&[
        ("objectClass", &["inetOrgPerson"]),
        ("uid", &[uid]),
        ("cn", &[cn]),
        ("sn", &[cn]),
    ])
}

#[tokio::test]
async fn crud_and_modrdn_keep_the_entry() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("crud").unwrap();
    let p = pool(&s).await;
    let dn = format!("uid=zhangsan,{node}");
    p.add(&dn, &person("zhangsan", "张三")).await.unwrap();
    let e = p.read(&dn, &["cn", "entryUUID"]).await.unwrap().unwrap();
    assert_eq!(e.first("cn"), Some("张三"));
    let uuid = e.first("entryUUID").unwrap().to_string();

    // Adding it again is a distinct, recognisable error.
    assert!(matches!(
        p.add(&dn, &person("zhangsan", "张三")).await,
        Err(LdapError::AlreadyExists { .. })
    ));

    p.modify(
        &dn,
        vec![Modification::Replace(
            "mail".into(),
            vec!["z@example.com".into()],
        )],
    )
    .await
    .unwrap();
    let e = p.read(&dn, &["mail"]).await.unwrap().unwrap();
    assert_eq!(e.get("mail"), ["z@example.com".to_string()]);

    // Rename and move: same entryUUID afterwards.
    s.ldapadd(&format!(
        "dn: ou=sub,{node}\nobjectClass: organizationalUnit\nou: sub\n"
    ))
    .unwrap();
    p.modify_dn(&dn, "uid=zhangsan2", Some(&format!("ou=sub,{node}")))
        .await
        .unwrap();
    let moved = format!("uid=zhangsan2,ou=sub,{node}");
    assert!(p.read(&dn, &["1.1"]).await.unwrap().is_none());
    let e = p
        .read(&moved, &["entryUUID", "uid"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.first("entryUUID"), Some(uuid.as_str()));
    // deleteoldrdn: the old uid value is gone.
    assert_eq!(e.get("uid"), ["zhangsan2".to_string()]);

    p.delete(&moved).await.unwrap();
    assert!(p.read(&moved, &["1.1"]).await.unwrap().is_none());
    assert!(matches!(
        p.delete(&moved).await,
        Err(LdapError::NoSuchObject { .. })
    ));
}

#[tokio::test]
async fn nasty_names_survive_add_search_and_rename() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = Dn::parse(&s.new_node("nasty").unwrap()).unwrap();
    let p = pool(&s).await;
    let names = ["张,伟+\"\\<>;#", "#lead", " spaced ", "a=b*c(d)", "王\\五"];
    for (i, name) in names.iter().enumerate() {
        let dn = Dn::child(&node, "cn", name);
        let mut a = person(&format!("u{i}"), name);
        a.insert("description", vec![name.to_string()]);
        p.add(&dn.to_string(), &a)
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        // Find it again by an escaped filter value, and compare the DN parsed.
        let found = p
            .search(
                &node.to_string(),
                Scope::Subtree,
                &format!("(description={})", escape_filter_value(name)),
                &["cn"],
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{name:?}");
        let back = Dn::parse(&found[0].dn).unwrap();
        assert_eq!(back, dn, "{name:?} came back as {}", found[0].dn);
        assert_eq!(back.rdn_value("cn").as_deref(), Some(*name));
        // Rename to another nasty name and back through modrdn.
        let renamed = Dn::child(&node, "cn", &format!("{name}+x,"));
        p.modify_dn(&dn.to_string(), &renamed.rdn_string(), None)
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert!(
            p.read(&renamed.to_string(), &["1.1"])
                .await
                .unwrap()
                .is_some()
        );
    }
    // A filter made of metacharacters matches nothing instead of everything.
    let none = p
        .search(
            &node.to_string(),
            Scope::Subtree,
            &format!("(description={})", escape_filter_value("*")),
            &["1.1"],
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn paging_reads_past_the_size_limit_and_a_cut_read_is_an_error() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("paging").unwrap();
    let n = SIZE_LIMIT * 2 + 37;
    let mut ldif = String::new();
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: uid=p{i},{node}\nobjectClass: inetOrgPerson\nuid: p{i}\ncn: p{i}\nsn: p{i}\n\n"
        ));
    }
    s.ldapadd(&ldif).unwrap();
    let mut opts = ConnectOptions::new(s.url(), SERVICE_DN, Secret::new(s.service_password()));
    opts.page_size = 200;
    let p = Pool::connect(opts).await.unwrap();
    let all = p
        .search(
            &node,
            Scope::OneLevel,
            "(objectClass=inetOrgPerson)",
            &["uid"],
        )
        .await
        .unwrap();
    assert_eq!(all.len(), n);
    let mut uids: Vec<&str> = all.iter().filter_map(|e| e.first("uid")).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), n);

    // An account whose paged total is capped: the server stops early, and that must surface
    // as an incomplete read, never as a shorter list.
    let mut opts = ConnectOptions::new(s.url(), LIMITED_DN, Secret::new(s.service_password()));
    opts.page_size = 100;
    let p = Pool::connect(opts).await.unwrap();
    let r = p
        .search(
            &node,
            Scope::OneLevel,
            "(objectClass=inetOrgPerson)",
            &["uid"],
        )
        .await;
    match r {
        Err(LdapError::Incomplete { .. }) => {}
        Ok(v) => panic!(
            "a read of {} of {n} entries was returned as complete",
            v.len()
        ),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn bad_credentials_are_auth_and_a_dead_server_is_transient() {
    let Some(mut s) = slapd::start_or_skip() else {
        return;
    };
    let err = Pool::connect(ConnectOptions::new(
        s.url(),
        SERVICE_DN,
        Secret::new("wrong-password"),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, LdapError::Auth { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-password"));

    let node = s.new_node("fault").unwrap();
    let p = pool(&s).await;
    s.stop();
    let err = p
        .add(&format!("uid=a,{node}"), &person("a", "a"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    s.restart().unwrap();
    // The pool reconnects by itself after the server is back.
    let mut ok = false;
    for _ in 0..3 {
        if p.add(&format!("uid=a,{node}"), &person("a", "a"))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "pool did not reconnect after restart");
    assert!(
        p.read(&format!("uid=a,{node}"), &["1.1"])
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn schema_refusals_name_the_attribute() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("schema").unwrap();
    let p = pool(&s).await;
    // No sn: objectClassViolation naming sn.
    let err = p
        .add(
            &format!("uid=x,{node}"),
            &attrs(&[
                ("objectClass", &["inetOrgPerson"]),
                ("uid", &["x"]),
                ("cn", &["x"]),
            ]),
        )
        .await
        .unwrap_err();
    match err {
        LdapError::Rejected { attribute, .. } => assert_eq!(attribute.as_deref(), Some("sn")),
        e => panic!("{e}"),
    }
    // Unknown attribute.
    let mut a = person("y", "y");
    a.insert("noSuchAttr", vec!["v".into()]);
    let err = p.add(&format!("uid=y,{node}"), &a).await.unwrap_err();
    match err {
        LdapError::Rejected { attribute, .. } => {
            assert_eq!(
                attribute.as_deref().map(str::to_ascii_lowercase).as_deref(),
                Some("nosuchattr")
            )
        }
        e => panic!("{e}"),
    }
}

#[tokio::test]
async fn starttls_and_ldaps_with_a_ca_bundle() {
    if !slapd::available_or_skip() {
        return;
    }
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        crate::support::require::unavailable("slapd with TLS", "`openssl` not found");
        return;
    }
    let s = Slapd::start_tls().expect("slapd with TLS");
    let ca = s.ca_pem().unwrap().to_string();
    // StartTLS on ldap://
    let mut o = ConnectOptions::new(s.url(), SERVICE_DN, Secret::new(s.service_password()));
    o.start_tls = true;
    o.ca_pem = Some(ca.clone());
    let p = Pool::connect(o).await.expect("StartTLS with the CA bundle");
    assert!(p.read(slapd::SUFFIX, &["1.1"]).await.unwrap().is_some());
    // ldaps://
    let mut o = ConnectOptions::new(
        s.ldaps_url().unwrap(),
        SERVICE_DN,
        Secret::new(s.service_password()),
    );
    o.ca_pem = Some(ca);
    let p = Pool::connect(o).await.expect("ldaps with the CA bundle");
    assert!(p.read(slapd::SUFFIX, &["1.1"]).await.unwrap().is_some());
    // Without the CA the certificate is not trusted: refused, never silently accepted.
    let mut o = ConnectOptions::new(
        s.ldaps_url().unwrap(),
        SERVICE_DN,
        Secret::new(s.service_password()),
    );
    o.timeout = std::time::Duration::from_secs(5);
    assert!(Pool::connect(o).await.is_err());
}
