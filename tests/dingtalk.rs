//! The DingTalk client against the simulator: tokens, paging, scope, errors, faults, quotas,
//! and a full sync from the simulated enterprise through the engine.

use std::sync::Arc;

use dingsync::{
    dingtalk::{ClientConfig, DingTalkClient, DingTalkError, Secret},
    directory::{Directory, memory::MemoryDirectory},
    sim::{self, Org, SimConfig, SimUser},
    sync::{Options, dingtalk_source::DingTalkSource},
};

async fn sim_with(org: Org, config: SimConfig) -> (sim::SimHandle, DingTalkClient) {
    let handle = sim::start(config.clone(), org, "127.0.0.1:0")
        .await
        .unwrap();
    let client = DingTalkClient::new(
        ClientConfig::new(
            &config.corp_id,
            &config.app_key,
            Secret::new(config.app_secret.clone()),
        )
        .with_base(&handle.base_url()),
    );
    (handle, client)
}

fn small_org() -> Org {
    Org::from_yaml(
        r#"
departments:
  - {dept_id: 10, name: 研发部, parent_id: 1}
  - {dept_id: 11, name: 后端组, parent_id: 10}
  - {dept_id: 20, name: 销售部, parent_id: 1}
users:
  - {userid: u1, name: 张伟, mobile: "13800000001", email: zw@corp.example, dept_id_list: [10]}
  - {userid: u2, name: 张伟, dept_id_list: [11, 20]}
  - {userid: u3, name: 李娜, email: ln@corp.example, dept_id_list: [20]}
"#,
    )
    .unwrap()
}

#[tokio::test]
async fn reads_the_whole_scope_with_the_fewest_calls() {
    let org = sim::generate(950, 40, 3);
    let (handle, client) = sim_with(
        org.clone(),
        SimConfig {
            qps_limit: None,
            ..Default::default()
        },
    )
    .await;
    let read = client.read_scope(&[1]).await;
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    assert_eq!(read.users.len(), 950, "deduplicated by userid");
    assert_eq!(read.departments.len(), 41, "the root and every department");
    // Lower bound: one listsub per department, one user/list page per 100 direct members.
    let members = sim::org::members_per_department(&org);
    let pages: u64 = members
        .values()
        .map(|&n| (n.max(1)).div_ceil(100) as u64)
        .sum();
    let calls = handle.calls();
    assert_eq!(calls["/topapi/v2/department/listsub"], 41);
    assert_eq!(calls["/topapi/v2/user/list"], pages);
    assert_eq!(
        calls.get("/topapi/v2/department/get").copied(),
        Some(1),
        "only the root's name"
    );
}

#[tokio::test]
async fn stays_under_the_per_api_quota() {
    let org = sim::generate(300, 30, 5);
    let (handle, client) = sim_with(
        org,
        SimConfig {
            qps_limit: Some(20),
            ..Default::default()
        },
    )
    .await;
    let read = client.read_scope(&[1]).await;
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    assert_eq!(handle.throttled(), 0, "never trips 90018");
}

#[tokio::test]
async fn token_is_reused_and_refreshed_when_refused() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    let t1 = client.token().await.unwrap();
    assert_eq!(client.token().await.unwrap(), t1, "cached");
    // The server forgets every token: the next call refreshes once and succeeds.
    reqwest::Client::new()
        .post(format!("{}/__sim/faults", handle.base_url()))
        .json(&serde_json::json!({"invalidate_tokens": true}))
        .send()
        .await
        .unwrap();
    let users = client.list_users(10).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(handle.calls()["/gettoken"], 2);
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_error_without_the_secret() {
    let handle = sim::start(SimConfig::default(), small_org(), "127.0.0.1:0")
        .await
        .unwrap();
    let client = DingTalkClient::new(
        ClientConfig::new(
            "dingsimcorp",
            "dingsimappkey",
            Secret::new("not-the-secret"),
        )
        .with_base(&handle.base_url()),
    );
    let err = client.token().await.unwrap_err();
    assert!(
        matches!(
            err,
            DingTalkError::InvalidCredentials { errcode: 40096, .. }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?} {client:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn transient_faults_are_retried_and_permanent_ones_are_not() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    handle.fail_next("/topapi/v2/user/list", 2, -1);
    assert_eq!(
        client.list_users(20).await.unwrap().len(),
        2,
        "busy twice, then served"
    );
    handle.fail_next("/topapi/v2/user/list", 2, 90018);
    assert_eq!(
        client.list_users(11).await.unwrap().len(),
        1,
        "throttled twice, then served"
    );
    let err = client.list_users(999).await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::NotFound { errcode: 60003, .. }),
        "{err:?}"
    );
    let err = client.get_user("nobody").await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::NotFound { errcode: 60121, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn contact_scope_is_enforced_and_named() {
    let (_handle, client) = sim_with(
        small_org(),
        SimConfig {
            scope: vec![20],
            ..Default::default()
        },
    )
    .await;
    let err = client.list_users(10).await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::Denied { errcode: 50004, .. }),
        "{err:?}"
    );
    assert_eq!(client.list_users(20).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_failure_mid_walk_makes_the_read_incomplete() {
    let (handle, client) = sim_with(
        sim::generate(200, 20, 9),
        SimConfig {
            qps_limit: None,
            ..Default::default()
        },
    )
    .await;
    handle.fail_next("/topapi/v2/user/list", 100, -1);
    let mut cfg = client.config().clone();
    cfg.attempts = 2;
    let client = DingTalkClient::new(cfg);
    let read = client.read_scope(&[1]).await;
    assert!(
        !read.errors.is_empty(),
        "the failure is reported, not hidden"
    );
}

#[tokio::test]
async fn a_full_sync_from_the_simulator_then_hr_changes() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    let source = DingTalkSource {
        client,
        roots: vec![1],
    };
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let mapping = dingsync::sync::conformance::mapping();
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let quiet = |_: &str, _: usize, _: Option<usize>| {};
    let r = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert!(r.complete && r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.people, 3);
    assert_eq!(r.departments, 4, "root + 3");
    let names: Vec<String> = dir
        .read()
        .await
        .unwrap()
        .people
        .iter()
        .map(|p| p.attrs["uid"][0].clone())
        .collect();
    assert!(
        names.contains(&"zhangwei".to_string()) && names.contains(&"zhangwei2".to_string()),
        "{names:?}"
    );
    // HR: a leaver and a hire.
    handle.with_state(|s| {
        s.users.remove("u3");
        s.users.insert(
            "u4".into(),
            SimUser {
                userid: "u4".into(),
                name: "王芳".into(),
                dept_id_list: vec![20],
                active: true,
                ..Default::default()
            },
        );
    });
    let r = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert_eq!((r.created, r.disabled), (1, 1), "{:?}", r.plan.steps);
    let again = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert_eq!(again.writes, 0);
}

#[tokio::test]
async fn a_fault_mid_walk_disables_nobody() {
    let (handle, client) = sim_with(small_org(), SimConfig::default()).await;
    let mut cfg = client.config().clone();
    cfg.attempts = 2;
    let source = DingTalkSource {
        client: DingTalkClient::new(cfg),
        roots: vec![1],
    };
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let mapping = dingsync::sync::conformance::mapping();
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let quiet = |_: &str, _: usize, _: Option<usize>| {};
    dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    // Member listing now fails for good in the middle of the walk: everyone looks gone.
    handle.fail_next("/topapi/v2/user/list", 1000, -1);
    let r = dingsync::sync::run(&source, dir.as_ref(), &mapping, &opts, false, &quiet)
        .await
        .unwrap();
    assert!(!r.complete, "the read is known to be incomplete");
    assert_eq!((r.disabled, r.deleted), (0, 0), "{:?}", r.plan.steps);
    assert!(r.suppressed_removals >= 3, "{}", r.suppressed_removals);
    assert!(dir.read().await.unwrap().people.iter().all(|p| !p.disabled));
}
