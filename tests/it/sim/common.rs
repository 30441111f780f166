//! Shared helpers: start a simulator, get tokens, call oapi and /v1.0.

use dingsync::sim::{Org, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

pub const APP_KEY: &str = "dingsimappkey0000001";
pub const APP_SECRET: &str = "sim-app-secret-0000000000000000000000000000000000000000000001";
pub const NARROW_KEY: &str = "dingsimappnarrow00002";
pub const NARROW_SECRET: &str = "sim-app-secret-narrow";

pub fn sample_org() -> Org {
    Org::from_yaml_str(
        include_str!("../../../examples/simulator/org.yaml"),
        "sim-org.yaml",
    )
    .unwrap()
}

pub async fn start(org: Org) -> SimHandle {
    start_with(SimConfig::fast(), org).await
}

pub async fn start_with(config: SimConfig, org: Org) -> SimHandle {
    Simulator::start(config, org, "127.0.0.1:0").await.unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn token(sim: &SimHandle, key: &str, secret: &str) -> String {
    let v: Value = http()
        .get(format!("{}/gettoken", sim.base_url()))
        .query(&[("appkey", key), ("appsecret", secret)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

/// POST JSON to an oapi path with `?access_token=`; returns (HTTP status, body).
pub async fn oapi_status(sim: &SimHandle, tok: &str, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", sim.base_url()))
        .query(&[("access_token", tok)])
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
    )
}

pub async fn oapi(sim: &SimHandle, tok: &str, path: &str, body: Value) -> Value {
    let (s, v) = oapi_status(sim, tok, path, body).await;
    assert_eq!(s, 200, "oapi always answers HTTP 200: {v}");
    v
}
