//! Legacy oapi: envelopes, errors, paging, tokens, QPS, scope, visibility, write validation.

use std::collections::BTreeSet;
use std::time::Duration;

use dingsync::sim::generate::{GenSpec, generate};
use dingsync::sim::{DeptWrite, Org, UserWrite};
use serde_json::{Value, json};

use super::common::*;

#[tokio::test]
async fn envelope_and_gateway_errors() {
    let sim = start(sample_org()).await;
    let base = sim.base_url();
    let tok = token(&sim, APP_KEY, APP_SECRET).await;

    let v = oapi(
        &sim,
        &tok,
        "/topapi/v2/department/get",
        json!({"dept_id": 100002}),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    let rid = v["request_id"].as_str().unwrap();
    assert!(
        rid.len() >= 12
            && rid
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert_eq!(v["result"]["name"], "平台部");
    assert_eq!(v["result"]["parent_id"], 100001);
    assert_eq!(
        v["result"]["dept_manager_userid_list"],
        json!(["zhangwei01"])
    );
    assert_eq!(v["result"]["owning_member_count"], 1);
    assert_eq!(v["result"]["member_count"], 3);

    // Unknown /topapi path → errcode 22 naming the API.
    let v = oapi(&sim, &tok, "/topapi/v2/user/notexist", json!({})).await;
    assert_eq!(v["errcode"], 22);
    assert!(
        v["sub_msg"]
            .as_str()
            .unwrap()
            .contains("dingtalk.oapi.v2.user.notexist")
    );
    // Unknown other path → 404 body with HTTP 200.
    let r = http()
        .post(format!("{base}/oauth2/corpAccessToken"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["errcode"], 404);

    // Missing token → 88/40000; bad token → 88/40014 (sub_code is a string).
    let v: Value = http()
        .post(format!("{base}/topapi/v2/user/get"))
        .json(&json!({"userid": "lina"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["errcode"].clone(), v["sub_code"].clone()),
        (json!(88), json!("40000"))
    );
    let v = oapi(
        &sim,
        "nope",
        "/topapi/v2/user/get",
        json!({"userid": "lina"}),
    )
    .await;
    assert_eq!(
        (v["errcode"].clone(), v["sub_code"].clone()),
        (json!(88), json!("40014"))
    );

    // gettoken errors.
    let v: Value = http()
        .get(format!("{base}/gettoken?appkey={APP_KEY}&appsecret=wrong"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 40096);
    let v: Value = http()
        .get(format!("{base}/gettoken"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 40035);

    // Missing required parameter → 40035; unknown user → 60121; unknown dept → 60003.
    let v = oapi(&sim, &tok, "/topapi/v2/user/get", json!({})).await;
    assert_eq!(v["errcode"], 40035);
    let v = oapi(
        &sim,
        &tok,
        "/topapi/v2/user/get",
        json!({"userid": "ghost"}),
    )
    .await;
    assert_eq!(v["errcode"], 60121);
    let v = oapi(
        &sim,
        &tok,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 999}),
    )
    .await;
    assert_eq!(v["errcode"], 60003);
    sim.shutdown().await;
}

#[tokio::test]
async fn form_bodies_and_string_scalars() {
    let sim = start(sample_org()).await;
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    // Form body with the token as a form field, every scalar a string.
    let v: Value = http()
        .post(format!("{}/topapi/v2/user/list", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "access_token={tok}&dept_id=100003&cursor=0&size=10"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    let ids: Vec<&str> = v["result"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"zhangwei02") && ids.contains(&"sso_liuyang"));
    // JSON with string-typed numbers and booleans (as the Java SDK sends).
    let v = oapi(
        &sim,
        &tok,
        "/topapi/v2/user/list",
        json!({"dept_id": "100003", "cursor": "0", "size": "1", "contain_access_limit": "false"}),
    )
    .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["result"]["has_more"], true);
    assert_eq!(v["result"]["next_cursor"], 1);
    // Response values use real JSON types.
    let u = &v["result"]["list"][0];
    assert!(u["dept_id_list"][0].is_i64() && u["active"].is_boolean() && u["leader"].is_boolean());
    let v = oapi(
        &sim,
        &tok,
        "/topapi/user/count",
        json!({"only_active": "true"}),
    )
    .await;
    assert_eq!(v["result"]["count"], 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_walk_direct_members_only() {
    let mut org = Org::empty("dingpaging", "分页测试");
    org.apps.push(dingsync::sim::App::new(APP_KEY, APP_SECRET));
    let sim = start(org).await;
    let d = sim
        .create_department(DeptWrite {
            name: Some("大部门".into()),
            parent_id: Some(1),
            ..Default::default()
        })
        .unwrap();
    let sub = sim
        .create_department(DeptWrite {
            name: Some("子部门".into()),
            parent_id: Some(d.id),
            ..Default::default()
        })
        .unwrap();
    for i in 0..237 {
        sim.hire(UserWrite {
            name: Some(format!("员工{i}")),
            departments: Some(vec![d.id]),
            ..Default::default()
        })
        .unwrap();
    }
    sim.hire(UserWrite {
        name: Some("子部门员工".into()),
        departments: Some(vec![sub.id]),
        ..Default::default()
    })
    .unwrap();
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let mut cursor = 0;
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    loop {
        let v = oapi(
            &sim,
            &tok,
            "/topapi/v2/user/list",
            json!({"dept_id": d.id, "cursor": cursor, "size": 100}),
        )
        .await;
        assert_eq!(v["errcode"], 0, "{v}");
        pages += 1;
        for u in v["result"]["list"].as_array().unwrap() {
            assert!(
                seen.insert(u["userid"].as_str().unwrap().to_owned()),
                "duplicate across pages"
            );
        }
        if v["result"]["has_more"] == false {
            break;
        }
        cursor = v["result"]["next_cursor"].as_i64().unwrap();
    }
    assert_eq!((seen.len(), pages), (237, 3));
    // size > 100 and negative cursor are parameter errors; bad order_field too.
    for body in [
        json!({"dept_id": d.id, "cursor": 0, "size": 101}),
        json!({"dept_id": d.id, "cursor": -1, "size": 10}),
        json!({"dept_id": d.id, "cursor": 0, "size": 10, "order_field": "bogus"}),
    ] {
        assert_eq!(
            oapi(&sim, &tok, "/topapi/v2/user/list", body).await["errcode"],
            40035
        );
    }
    // listid: all direct members, unpaged.
    let v = oapi(&sim, &tok, "/topapi/user/listid", json!({"dept_id": d.id})).await;
    assert_eq!(v["result"]["userid_list"].as_array().unwrap().len(), 237);
    let v = oapi(
        &sim,
        &tok,
        "/topapi/v2/department/listsubid",
        json!({"dept_id": d.id}),
    )
    .await;
    assert_eq!(v["result"]["dept_id_list"], json!([sub.id]));
    sim.shutdown().await;
}

#[tokio::test]
async fn token_reuse_expiry_and_invalidation() {
    let sim = start(sample_org()).await;
    let t1 = token(&sim, APP_KEY, APP_SECRET).await;
    let t2 = token(&sim, APP_KEY, APP_SECRET).await;
    assert_eq!(t1, t2, "same token while valid");
    // The /v1.0 token endpoint hands out the same, interchangeable token.
    let v: Value = http()
        .post(format!("{}/v1.0/oauth2/accessToken", sim.base_url()))
        .json(&json!({"appKey": APP_KEY, "appSecret": APP_SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["accessToken"], t1.as_str());
    assert_eq!(v["expireIn"], 7200);
    // Each call extends the life: 7199 s later it is still valid.
    sim.advance_clock(Duration::from_secs(7199));
    let t3 = token(&sim, APP_KEY, APP_SECRET).await;
    assert_eq!(t3, t1);
    sim.advance_clock(Duration::from_secs(7201));
    let v = oapi(&sim, &t1, "/topapi/v2/user/get", json!({"userid": "lina"})).await;
    assert_eq!(
        (v["errcode"].clone(), v["sub_code"].clone()),
        (json!(88), json!("42001"))
    );
    let t4 = token(&sim, APP_KEY, APP_SECRET).await;
    assert_ne!(t4, t1, "a new token after expiry");
    assert_eq!(
        oapi(&sim, &t4, "/topapi/v2/user/get", json!({"userid": "lina"})).await["errcode"],
        0
    );
    assert_eq!(sim.invalidate_tokens(None), 1);
    let v = oapi(&sim, &t4, "/topapi/v2/user/get", json!({"userid": "lina"})).await;
    assert_eq!(v["sub_code"], "40014");
    assert_ne!(token(&sim, APP_KEY, APP_SECRET).await, t4);
    sim.shutdown().await;
}

#[tokio::test]
async fn qps_limit_per_app_and_api() {
    let sim = start(sample_org()).await;
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let calls = (0..60).map(|_| {
        oapi(
            &sim,
            &tok,
            "/topapi/v2/department/listsub",
            json!({"dept_id": 1}),
        )
    });
    let results = futures::future::join_all(calls).await;
    let throttled = results.iter().filter(|v| v["errcode"] == 90018).count();
    let ok = results.iter().filter(|v| v["errcode"] == 0).count();
    assert_eq!(throttled + ok, 60);
    assert!(throttled > 0, "60 calls at once exceed 20/s");
    assert!(ok >= 20);
    assert_eq!(sim.counters().throttled as usize, throttled);
    // Switched off: no throttling.
    sim.set_qps_limit(None);
    let calls = (0..60).map(|_| {
        oapi(
            &sim,
            &tok,
            "/topapi/v2/department/listsub",
            json!({"dept_id": 1}),
        )
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|v| v["errcode"] == 0));
    assert_eq!(sim.calls("/topapi/v2/department/listsub"), 120);
    sim.shutdown().await;
}

#[tokio::test]
async fn scope_and_field_permissions() {
    let sim = start(sample_org()).await;
    let full = token(&sim, APP_KEY, APP_SECRET).await;
    let narrow = token(&sim, NARROW_KEY, NARROW_SECRET).await;
    // Full app sees mobile and email.
    let v = oapi(
        &sim,
        &full,
        "/topapi/v2/user/get",
        json!({"userid": "zhangwei01"}),
    )
    .await;
    assert_eq!(v["result"]["mobile"], "13800000001");
    assert_eq!(v["result"]["email"], "zhangwei01@example.com");
    assert_eq!(
        v["result"]["leader_in_dept"],
        json!([{"dept_id": 100002, "leader": true}])
    );
    // Narrow app: no mobile/email permission → fields omitted, not empty.
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/user/get",
        json!({"userid": "zhangwei01"}),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    assert!(
        v["result"].get("mobile").is_none()
            && v["result"].get("email").is_none()
            && v["result"].get("state_code").is_none()
    );
    // Outside the scope (研发中心 only): departments 50004, users 50002.
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 100005}),
    )
    .await;
    assert_eq!(v["errcode"], 50004);
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/user/list",
        json!({"dept_id": 100006, "cursor": 0, "size": 10}),
    )
    .await;
    assert_eq!(v["errcode"], 50004);
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/user/get",
        json!({"userid": "lina"}),
    )
    .await;
    assert_eq!(v["errcode"], 50002);
    // listsubid / listid ignore the scope.
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/department/listsubid",
        json!({"dept_id": 100005}),
    )
    .await;
    assert_eq!(v["result"]["dept_id_list"], json!([100006]));
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/user/listid",
        json!({"dept_id": 100006}),
    )
    .await;
    assert_eq!(v["result"]["userid_list"], json!(["lina"]));
    // Inside the scope works.
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/department/listsub",
        json!({"dept_id": 100001}),
    )
    .await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    // Missing API permission → 88 / 60011.
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/user/getbymobile",
        json!({"mobile": "13800000003"}),
    )
    .await;
    assert_eq!(
        (v["errcode"].clone(), v["sub_code"].clone()),
        (json!(88), json!("60011"))
    );
    let v = oapi(
        &sim,
        &narrow,
        "/topapi/v2/user/delete",
        json!({"userid": "zhangwei02"}),
    )
    .await;
    assert_eq!(v["sub_code"], "60011");
    let v = oapi(&sim, &narrow, "/auth/scopes", json!({})).await;
    assert_eq!(v["auth_org_scopes"]["authed_dept"], json!([100001]));
    // Lookups.
    let v = oapi(
        &sim,
        &full,
        "/topapi/v2/user/getbymobile",
        json!({"mobile": "13800000003"}),
    )
    .await;
    assert_eq!(v["result"]["userid"], "lina");
    let union = sim.org().person("lina").unwrap().unionid.clone();
    let v = oapi(
        &sim,
        &full,
        "/topapi/user/getbyunionid",
        json!({"unionid": union}),
    )
    .await;
    assert_eq!(v["result"], json!({"contact_type": 0, "userid": "lina"}));
    sim.shutdown().await;
}

#[tokio::test]
async fn write_validation_and_events() {
    let sim = start(sample_org()).await;
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let create = |body: Value| oapi(&sim, &tok, "/topapi/v2/user/create", body);
    let cases = [
        (json!({"name": "无手机", "dept_id_list": "100003"}), 40035),
        (
            json!({"name": "坏手机", "mobile": "12345", "dept_id_list": "100003"}),
            60103,
        ),
        (
            json!({"name": "重复手机", "mobile": "13800000001", "dept_id_list": "100003"}),
            60104,
        ),
        (
            json!({"userid": "lina", "name": "重复", "mobile": "13900000001", "dept_id_list": "100003"}),
            60102,
        ),
        (
            json!({"name": "坏部门", "mobile": "13900000002", "dept_id_list": "424242"}),
            60003,
        ),
        (
            json!({"name": "坏邮箱", "mobile": "13900000003", "email": "nope", "dept_id_list": "100003"}),
            60105,
        ),
        (
            json!({"name": "", "mobile": "13900000004", "dept_id_list": "100003"}),
            60112,
        ),
        (
            json!({"name": "x".repeat(81), "mobile": "13900000004", "dept_id_list": "100003"}),
            60112,
        ),
    ];
    for (body, code) in cases {
        assert_eq!(create(body.clone()).await["errcode"], code, "{body}");
    }
    let v = create(json!({"userid": "newbie", "name": "新人", "mobile": "+86-13900000009", "dept_id_list": "100003,100004", "title": "工程师"})).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["result"]["userid"], "newbie");
    assert!(
        v["result"]["unionId"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    // Mobile cannot change; bad manager is refused.
    let upd = |body: Value| oapi(&sim, &tok, "/topapi/v2/user/update", body);
    assert_eq!(
        upd(json!({"userid": "newbie", "mobile": "13900000010"})).await["errcode"],
        40022
    );
    assert_eq!(
        upd(json!({"userid": "newbie", "manager_userid": "ghost"})).await["errcode"],
        60128
    );
    assert_eq!(
        upd(json!({"userid": "ghost", "name": "x"})).await["errcode"],
        60121
    );
    let v = upd(json!({"userid": "newbie", "name": "新人二号", "dept_id_list": [100004]})).await;
    assert_eq!(v["errcode"], 0);
    assert!(v.get("result").is_none());
    assert_eq!(
        sim.org().person("newbie").unwrap().departments,
        vec![100004]
    );

    // Departments.
    let dept = |path: &'static str, body: Value| oapi(&sim, &tok, path, body);
    let c = "/topapi/v2/department/create";
    assert_eq!(
        dept(c, json!({"name": "平台部", "parent_id": 100001})).await["errcode"],
        60021
    );
    assert_eq!(
        dept(c, json!({"name": "a-b", "parent_id": 1})).await["errcode"],
        60009
    );
    assert_eq!(
        dept(c, json!({"name": "孤儿", "parent_id": 31337})).await["errcode"],
        60004
    );
    assert_eq!(
        dept(c, json!({"name": "x".repeat(65), "parent_id": 1})).await["errcode"],
        60001
    );
    let v = dept(
        c,
        json!({"name": "新部门", "parent_id": "100001", "order": "5"}),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    let new_id = v["result"]["dept_id"].as_i64().unwrap();
    let u = "/topapi/v2/department/update";
    assert_eq!(
        dept(u, json!({"dept_id": 1, "name": "根"})).await["errcode"],
        60018
    );
    assert_eq!(
        dept(u, json!({"dept_id": 100001, "parent_id": 100003})).await["errcode"],
        60010
    );
    assert_eq!(
        dept(u, json!({"dept_id": new_id, "name": "平台部"})).await["errcode"],
        60021
    );
    assert_eq!(
        dept(
            u,
            json!({"dept_id": 100002, "dept_manager_userid_list": "lina"})
        )
        .await["errcode"],
        40031
    );
    assert_eq!(
        dept(
            u,
            json!({"dept_id": new_id, "name": "改名部门", "parent_id": 1})
        )
        .await["errcode"],
        0
    );
    let d = "/topapi/v2/department/delete";
    assert_eq!(dept(d, json!({"dept_id": 1})).await["errcode"], 60007);
    assert_eq!(dept(d, json!({"dept_id": 100002})).await["errcode"], 60006);
    assert_eq!(dept(d, json!({"dept_id": 100007})).await["errcode"], 60005);
    assert_eq!(dept(d, json!({"dept_id": new_id})).await["errcode"], 0);
    assert_eq!(dept(d, json!({"dept_id": new_id})).await["errcode"], 60003);

    // Delete user; the same mobile cannot be re-added right away (invitation instead).
    assert_eq!(
        oapi(
            &sim,
            &tok,
            "/topapi/v2/user/delete",
            json!({"userid": "newbie"})
        )
        .await["errcode"],
        0
    );
    assert_eq!(
        oapi(
            &sim,
            &tok,
            "/topapi/v2/user/get",
            json!({"userid": "newbie"})
        )
        .await["errcode"],
        60121
    );
    assert_eq!(
        create(json!({"name": "回来", "mobile": "+86-13900000009", "dept_id_list": "100003"}))
            .await["errcode"],
        40103
    );

    let types: Vec<String> = sim.events().iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(
        types,
        [
            "user_add_org",
            "user_modify_org",
            "org_dept_create",
            "org_dept_modify",
            "org_dept_remove",
            "user_leave_org"
        ]
    );
    let modify = &sim.events()[1];
    assert_eq!(modify.diff.as_ref().unwrap()["prev"]["name"], "新人");
    assert_eq!(modify.diff.as_ref().unwrap()["curr"]["name"], "新人二号");
    sim.shutdown().await;
}

#[tokio::test]
async fn hr_changes_through_admin_api() {
    let sim = start(generate(&GenSpec {
        people: 40,
        departments: 12,
        seed: 3,
        ..Default::default()
    }))
    .await;
    let base = sim.base_url();
    let c = http();
    let dept = sim.org().departments[3].id;
    let r = c
        .post(format!("{base}/__sim/users"))
        .json(&json!({"userid": "hr1", "name": "张伟", "departments": [dept]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .patch(format!("{base}/__sim/users/hr1"))
        .json(&json!({"title": "经理", "departments": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/__sim/departments"))
        .json(&json!({"name": "临时部门", "parent_id": 1}))
        .send()
        .await
        .unwrap();
    let new_dept: Value = r.json().await.unwrap();
    let r = c
        .patch(format!("{base}/__sim/departments/{}", new_dept["id"]))
        .json(&json!({"name": "正式部门"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .delete(format!("{base}/__sim/users/hr1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/__sim/users/hr1/rehire"))
        .json(&json!({"departments": [new_dept["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .delete(format!("{base}/__sim/departments/{}", new_dept["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errcode"], 60005);
    let events: Vec<Value> = c
        .get(format!("{base}/__sim/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "user_add_org",
            "user_modify_org",
            "org_dept_create",
            "org_dept_modify",
            "user_leave_org",
            "user_add_org"
        ]
    );
    let p = sim.org().person("hr1").unwrap().clone();
    assert_eq!(p.title.as_deref(), Some("经理"));
    sim.shutdown().await;
}
