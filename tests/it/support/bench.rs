//! What the benchmarks share: their knobs from the environment, and a DingTalk at its quota
//! with an empty department to push into.

use dingsync::{
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    model::SourceSnapshot,
    sim::{
        self, DeptWrite, SimConfig, SimHandle, Simulator,
        generate::{GenSpec, generate},
    },
    sync::{Source, dingtalk_source::DingTalkSource},
};

/// A benchmark's size or count from the environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The simulator answering `quota` calls per second per API, with a fresh department named
/// `department` under the root; returns it and the department's id.
pub async fn dingtalk_at_quota(quota: u32, department: &str) -> (SimHandle, i64) {
    let sim = Simulator::start(
        SimConfig {
            qps_limit: Some(quota),
            ..SimConfig::fast()
        },
        generate(&GenSpec {
            people: 3,
            departments: 1,
            seed: 1,
            corp_id: "dingbench".into(),
            ..Default::default()
        }),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let root = sim
        .create_department(DeptWrite {
            name: Some(department.into()),
            parent_id: Some(1),
            ..Default::default()
        })
        .unwrap()
        .id;
    (sim, root)
}

/// The enterprise (`people`, one department per 20, generated from `seed`) as a first sync
/// reads it, from an in-process simulator that is gone again before anything is timed.
pub async fn source_snapshot(people: usize, seed: u64) -> SourceSnapshot {
    const CORP: &str = "dingbenchcorp";
    let org = generate(&GenSpec {
        people,
        departments: (people / 20).max(1),
        seed,
        corp_id: CORP.into(),
        ..Default::default()
    });
    let config = SimConfig {
        qps_limit: None,
        ..SimConfig::fast()
    };
    let handle = Simulator::start(config, org, "127.0.0.1:0")
        .await
        .expect("simulator");
    let mut c = ClientConfig::new(
        CORP,
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&handle.base_url());
    c.per_api_per_second = 100_000;
    let snapshot = DingTalkSource::new(DingTalkClient::new(c), vec![1])
        .read()
        .await
        .expect("read the simulator");
    assert!(snapshot.complete, "{:?}", snapshot.incomplete);
    handle.shutdown().await;
    snapshot
}
