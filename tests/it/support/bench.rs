//! What the benchmarks share: their knobs from the environment, and a DingTalk at its quota
//! with an empty department to push into.

use dingsync::sim::{
    DeptWrite, SimConfig, SimHandle, Simulator,
    generate::{GenSpec, generate},
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
