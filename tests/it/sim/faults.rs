//! Injected faults: nth-call failures, 5xx, errcode -1/15, throttling bursts, IP ban, latency,
//! token invalidation, dropped/duplicated/reordered events.

use std::time::Duration;

use dingsync::sim::{EventFaults, FaultKind, FaultRule, UserWrite};
use serde_json::{Value, json};

use super::callback::{AES_KEY, TOKEN, start_receiver, wait_for};
use super::common::*;

const LIST: &str = "/topapi/v2/user/list";

#[tokio::test]
async fn api_faults() {
    let sim = start(sample_org()).await;
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let body = json!({"dept_id": 100003, "cursor": 0, "size": 10});
    // Fail only the 2nd call of user/list (an incomplete read mid-walk).
    sim.add_fault(FaultRule::nth(LIST, 2, FaultKind::SystemBusy));
    let codes: Vec<Value> = [
        oapi(&sim, &tok, LIST, body.clone()).await,
        oapi(&sim, &tok, LIST, body.clone()).await,
        oapi(&sim, &tok, LIST, body.clone()).await,
    ]
    .iter()
    .map(|v| v["errcode"].clone())
    .collect();
    assert_eq!(codes, [json!(0), json!(-1), json!(0)]);
    // Other APIs are untouched by an API-specific rule; a rule without api hits any.
    sim.add_fault(FaultRule::new(None, FaultKind::UpstreamTimeout));
    let v = oapi(&sim, &tok, "/topapi/v2/department/listsub", json!({})).await;
    assert_eq!(
        (v["errcode"].clone(), v["sub_code"].clone()),
        (json!(15), json!("isp.top-remote-connection-timeout"))
    );
    // HTTP 502 from the gateway.
    sim.add_fault(FaultRule::new(Some(LIST), FaultKind::Http { status: 502 }));
    let (s, _) = oapi_status(&sim, &tok, LIST, body.clone()).await;
    assert_eq!(s, 502);
    // Throttling burst of 3.
    sim.add_fault(FaultRule::new(Some(LIST), FaultKind::Throttle).times(3));
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(oapi(&sim, &tok, LIST, body.clone()).await["errcode"].clone());
    }
    assert_eq!(codes, [json!(90018), json!(90018), json!(90018), json!(0)]);
    // IP ban page: not the normal envelope.
    sim.add_fault(FaultRule::new(Some(LIST), FaultKind::IpBan));
    let v = oapi(&sim, &tok, LIST, body.clone()).await;
    assert_eq!((v["status"].clone(), v.get("errcode")), (json!(1111), None));
    sim.add_fault(FaultRule::new(Some(LIST), FaultKind::InvalidToken));
    assert_eq!(
        oapi(&sim, &tok, LIST, body.clone()).await["sub_code"],
        "40014"
    );
    // Latency: the answer is delayed, still correct.
    sim.set_latency(Duration::from_millis(30));
    assert_eq!(oapi(&sim, &tok, LIST, body.clone()).await["errcode"], 0);
    sim.set_latency(Duration::ZERO);
    let c = sim.counters();
    assert_eq!(c.faults_injected, 8);
    assert_eq!(c.calls[LIST], 11);
    // /v1.0 faults are HTTP errors.
    sim.add_fault(FaultRule::new(
        Some("/v1.0/oauth2/accessToken"),
        FaultKind::SystemBusy,
    ));
    let r = http()
        .post(format!("{}/v1.0/oauth2/accessToken", sim.base_url()))
        .json(&json!({"appKey": APP_KEY, "appSecret": APP_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_http_faults_and_knobs() {
    let sim = start(sample_org()).await;
    let base = sim.base_url();
    let c = http();
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let r = c
        .post(format!("{base}/__sim/faults"))
        .json(&json!({"api": LIST, "skip": 1, "times": 2, "kind": {"type": "errcode", "errcode": 60019}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json!({"dept_id": 100003, "cursor": 0, "size": 10});
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(oapi(&sim, &tok, LIST, body.clone()).await["errcode"].clone());
    }
    assert_eq!(codes, [json!(0), json!(60019), json!(60019), json!(0)]);
    let r = c
        .post(format!("{base}/__sim/tokens/invalidate"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["invalidated"], 1);
    assert_eq!(
        oapi(&sim, &tok, LIST, body.clone()).await["sub_code"],
        "40014"
    );
    let r = c
        .put(format!("{base}/__sim/qps"))
        .json(&json!({"limit": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let counters: Value = c
        .get(format!("{base}/__sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["calls"][LIST], 5);
    assert_eq!(counters["calls"]["/gettoken"], 1);
    c.post(format!("{base}/__sim/counters/reset"))
        .send()
        .await
        .unwrap();
    let counters: Value = c
        .get(format!("{base}/__sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["calls"], json!({}));
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_duplicated_reordered_events() {
    let sim = start(sample_org()).await;
    let (url, rx) = start_receiver(APP_KEY).await;
    sim.subscribe_callback(APP_KEY, &url, TOKEN, AES_KEY)
        .await
        .unwrap();
    let hire = |u: &str| {
        sim.hire(UserWrite {
            userid: Some(u.into()),
            name: Some(u.into()),
            departments: Some(vec![1]),
            ..Default::default()
        })
        .unwrap();
    };
    sim.set_event_faults(EventFaults {
        drop: 1,
        duplicate: 1,
        reorder: 0,
    });
    hire("a");
    hire("b");
    sim.set_event_faults(EventFaults {
        drop: 0,
        duplicate: 0,
        reorder: 1,
    });
    hire("c");
    hire("d");
    // a dropped; b twice; c held back until after d.
    wait_for(|| rx.got.lock().unwrap().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got.lock().unwrap();
    let users: Vec<String> = got[1..]
        .iter()
        .map(|(_, v)| v["userId"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, ["b", "b", "d", "c"]);
    assert_eq!(
        got[1].1["eventId"], got[2].1["eventId"],
        "a duplicate keeps its eventId"
    );
    assert_eq!(sim.events().len(), 4, "the event log still has all four");
}
