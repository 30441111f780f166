//! The SCIM client against a real scim2-server.

use crate::support::scim_server;
use dingsync::directory::scim::client::{
    BearerToken, PatchOp, ScimClient, ScimError, filter_literal,
};
use scim_server::ScimServer;
use serde_json::json;

fn user(name: &str, anchor: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": anchor,
        "active": true,
    })
}

#[tokio::test]
async fn reads_capabilities_pages_and_filters() {
    let Some(server) = ScimServer::start() else {
        return;
    };
    let client = ScimClient::connect(&server.base_url, BearerToken::new(&server.token), None)
        .await
        .unwrap();
    let caps = client.capabilities().clone();
    assert!(caps.patch && caps.etag && caps.filter, "{caps:?}");
    for i in 0..1203 {
        client
            .create(
                "Users",
                user(&format!("u{i}"), &format!("dingtalk:c1:user:u{i}")),
            )
            .await
            .unwrap();
    }
    let all = client.list("Users", None).await.unwrap();
    assert_eq!(
        all.len(),
        1203,
        "pages through startIndex/count past the server's page limit"
    );
    let one = client
        .list(
            "Users",
            Some(&format!(
                "externalId eq {}",
                filter_literal("dingtalk:c1:user:u7")
            )),
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].body["userName"], "u7");
}

#[tokio::test]
async fn writes_with_etags_and_survives_204() {
    let Some(server) = ScimServer::start() else {
        return;
    };
    let client = ScimClient::connect(&server.base_url, BearerToken::new(&server.token), None)
        .await
        .unwrap();
    let created = client
        .create("Users", user("zhangwei", "dingtalk:c1:user:zw"))
        .await
        .unwrap();
    let etag = created.etag.clone().expect("server sends ETags");
    // PATCH answers 204 with no body on this server.
    client
        .patch(
            "Users",
            &created.id,
            &[PatchOp::replace("active", json!(false))],
            Some(&etag),
        )
        .await
        .unwrap();
    let after = client.get("Users", &created.id).await.unwrap();
    assert_eq!(after.body["active"], false);
    // The old ETag is stale now: 412, reported as such.
    let stale = client
        .patch(
            "Users",
            &created.id,
            &[PatchOp::replace("active", json!(true))],
            Some(&etag),
        )
        .await;
    assert!(
        matches!(stale, Err(ScimError::PreconditionFailed { .. })),
        "{stale:?}"
    );
    client.delete("Users", &created.id).await.unwrap();
    client.delete("Users", &created.id).await.unwrap(); // idempotent
    assert!(matches!(
        client.get("Users", &created.id).await,
        Err(ScimError::NotFound { .. })
    ));
}

#[tokio::test]
async fn errors_name_scim_type_and_detail() {
    let Some(server) = ScimServer::start() else {
        return;
    };
    let client = ScimClient::connect(&server.base_url, BearerToken::new(&server.token), None)
        .await
        .unwrap();
    client
        .create("Users", user("lina", "dingtalk:c1:user:l1"))
        .await
        .unwrap();
    let dup = client
        .create("Users", user("lina", "dingtalk:c1:user:l2"))
        .await
        .unwrap_err();
    match &dup {
        ScimError::Rejected {
            status,
            scim_type,
            detail,
            ..
        } => {
            assert_eq!(*status, 409);
            assert_eq!(scim_type.as_deref(), Some("uniqueness"));
            assert!(!detail.is_empty());
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(dup.to_string().contains("uniqueness"), "{dup}");
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_never_printed() {
    let Some(server) = ScimServer::start() else {
        return;
    };
    // ServiceProviderConfig may be public (RFC 7644 §4); the first real read is refused.
    let err = match ScimClient::connect(
        &server.base_url,
        BearerToken::new("wrong-token-value"),
        None,
    )
    .await
    {
        Ok(client) => client.list("Users", None).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(err, ScimError::Unauthorized { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-token-value"));
}

#[tokio::test]
async fn an_unreachable_server_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = ScimClient::connect(
        &format!("http://127.0.0.1:{port}/v2"),
        BearerToken::new("t"),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_for_the_whole_target() {
    use dingsync::directory::{Directory, DirectoryError, scim::ScimDirectory};
    let Some(server) = ScimServer::start() else {
        return;
    };
    let client = ScimClient::connect(&server.base_url, BearerToken::new("wrong"), None)
        .await
        .unwrap();
    let dir = ScimDirectory::new(client, "dingacme", "acme");
    let err = dir.read().await.unwrap_err();
    assert!(matches!(err, DirectoryError::Auth(_)), "{err:?}");
    assert!(!err.is_per_object());
}

/// A wave of sibling departments created at once all join their parent's Group, and people
/// added to and taken from one Group at once all land: on the PATCH path the server offers
/// and on the replace path (read-modify-write) the client can be forced onto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_group_all_land_on_both_paths() {
    use dingsync::directory::{
        Attrs, Directory,
        scim::{MemberWrites, ScimDirectory},
    };
    use futures::future::join_all;
    for path in [MemberWrites::Patch, MemberWrites::Replace] {
        let Some(server) = ScimServer::start() else {
            return;
        };
        let client = ScimClient::connect(&server.base_url, BearerToken::new(&server.token), None)
            .await
            .unwrap();
        let client = match path {
            MemberWrites::Patch => client,
            MemberWrites::Replace => client.without_patch(),
        };
        let dir = ScimDirectory::new(client, "dingacme", "acme");
        assert_eq!(
            dir.member_writes(),
            path,
            "chosen from ServiceProviderConfig"
        );
        dir.read().await.unwrap();
        dir.create_dept("1", "Acme", None, &Attrs::new())
            .await
            .unwrap();
        let none = Attrs::new();
        let names: Vec<String> = (2..66).map(|i| format!("D{i}")).collect();
        let ids: Vec<String> = (2..66).map(|i| i.to_string()).collect();
        let created = join_all(
            ids.iter()
                .zip(&names)
                .map(|(id, name)| dir.create_dept(id, name, Some("1"), &none)),
        )
        .await;
        assert!(created.iter().all(Result::is_ok), "{path:?}: {created:?}");

        let people: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
        for p in &people {
            let mut attrs = Attrs::new();
            attrs.insert("uid", vec![p.clone()]);
            dir.create_person(p, &attrs, None).await.unwrap();
        }
        let added = join_all(
            people
                .iter()
                .map(|p| dir.add_members("1", std::slice::from_ref(p))),
        )
        .await;
        assert!(added.iter().all(Result::is_ok), "{path:?}: {added:?}");
        let removed = join_all(
            people[..20]
                .iter()
                .map(|p| dir.remove_members("1", std::slice::from_ref(p))),
        )
        .await;
        assert!(removed.iter().all(Result::is_ok), "{path:?}: {removed:?}");

        let snap = dir.read().await.unwrap();
        let children = snap
            .departments
            .iter()
            .filter(|d| d.parent.as_deref() == Some("1"))
            .count();
        assert_eq!(children, 64, "{path:?}: every sibling joined its parent");
        let in_root: Vec<&str> = snap
            .people
            .iter()
            .filter(|p| p.departments == ["1"])
            .filter_map(|p| p.id.as_deref())
            .collect();
        assert_eq!(in_root.len(), 20, "{path:?}: {in_root:?}");
        assert!(in_root.iter().all(|p| people[20..].iter().any(|q| q == p)));
    }
}
