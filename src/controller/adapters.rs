//! The production implementations of the controller's seams.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    CredentialChecker, CredentialError, Sensitive, SyncOutcome, SyncRequest, SyncRunError,
    SyncRunner,
};
use crate::api::{DingTalkBindingSpec, FieldMappingSpec, binding::Permissions};

/// DingTalk's mainland legacy API host.
const DEFAULT_OAPI: &str = "https://oapi.dingtalk.com";

/// Confirms credentials by obtaining a token (`/gettoken`) and probes the address-book read
/// permission with one `listsub` of the root department.
pub struct DingTalkProbe {
    http: reqwest::Client,
}

impl Default for DingTalkProbe {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with default TLS");
        Self { http }
    }
}

#[async_trait]
impl CredentialChecker for DingTalkProbe {
    async fn check(
        &self,
        spec: &DingTalkBindingSpec,
        app_key: &str,
        app_secret: &Sensitive,
    ) -> Result<Permissions, CredentialError> {
        let base = spec
            .endpoints
            .as_ref()
            .and_then(|e| e.oapi.clone())
            .unwrap_or_else(|| DEFAULT_OAPI.into());
        let base = base.trim_end_matches('/');
        let resp = self
            .http
            .get(format!("{base}/gettoken"))
            .query(&[("appkey", app_key), ("appsecret", app_secret.expose())])
            .send()
            .await
            // The URL carries the secret: report the kind of failure only.
            .map_err(|e| CredentialError::Unreachable(describe(&e, base)))?;
        if resp.status().is_server_error() {
            return Err(CredentialError::Unreachable(format!(
                "{base}: HTTP {}",
                resp.status()
            )));
        }
        let body: serde_json::Value = resp.json().await.map_err(|_| {
            CredentialError::Unreachable(format!("{base}: the answer to /gettoken is not JSON"))
        })?;
        let errcode = body["errcode"].as_i64().unwrap_or(-1);
        if errcode == -1 || errcode == 15 {
            return Err(CredentialError::Unreachable(format!(
                "{base}: DingTalk busy (errcode {errcode})"
            )));
        }
        if errcode != 0 {
            let msg = body["errmsg"].as_str().unwrap_or("").to_string();
            return Err(CredentialError::Invalid(format!(
                "errcode {errcode}: {msg}"
            )));
        }
        let token = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let probe = self
            .http
            .post(format!("{base}/topapi/v2/department/listsub"))
            .query(&[("access_token", token.as_str())])
            .json(&serde_json::json!({"dept_id": 1}))
            .send()
            .await
            .map_err(|e| CredentialError::Unreachable(describe(&e, base)))?;
        let probe: serde_json::Value = probe.json().await.unwrap_or_default();
        let code = probe["errcode"].as_i64().unwrap_or(-1);
        let sub = probe["sub_code"].as_str().unwrap_or("");
        let read = code == 0;
        let mut missing = vec![];
        if !read && (code == 60011 || sub == "60011" || code == 88) {
            missing.push("qyapi_get_department_list".to_string());
        }
        // Mobile and email visibility cannot be told apart from empty fields without a person
        // to look at; report them as granted with read and let the sync count people missing
        // them (UNCONFIRMED: DingTalk offers no permission-listing API for internal apps).
        Ok(Permissions {
            contact_read: read,
            contact_write: false,
            mobile: read,
            email: read,
            missing,
        })
    }
}

fn describe(e: &reqwest::Error, base: &str) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{base}: {kind}")
}

/// Compile every template of a mapping; the error names the rule and the position.
pub fn validate_mapping(spec: &FieldMappingSpec) -> Result<(), String> {
    let env = minijinja::Environment::new();
    let mut rules: Vec<(String, &str)> = vec![];
    rules.push((
        "user.uniqueName.template".into(),
        &spec.user.unique_name.template,
    ));
    for (i, r) in spec.user.attributes.iter().enumerate() {
        rules.push((format!("user.attributes[{i}] ({})", r.target), &r.template));
    }
    for (i, r) in spec.user.match_rules.iter().enumerate() {
        rules.push((format!("user.match[{i}] ({})", r.target), &r.source));
    }
    if let Some(d) = &spec.department {
        if let Some(t) = &d.name_template {
            rules.push(("department.nameTemplate".into(), t));
        }
        for (i, r) in d.attributes.iter().enumerate() {
            rules.push((
                format!("department.attributes[{i}] ({})", r.target),
                &r.template,
            ));
        }
    }
    for (rule, template) in rules {
        if let Err(e) = env.template_from_str(template) {
            let at = e
                .line()
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            return Err(format!(
                "{rule}: {}{at}",
                e.detail().unwrap_or("syntax error")
            ));
        }
    }
    Ok(())
}

/// Stands in for the sync engine in builds that do not have it: every run is refused with a
/// clear reason, so nothing is ever written by accident.
pub struct NoEngine;

#[async_trait]
impl SyncRunner for NoEngine {
    async fn run(&self, _request: SyncRequest) -> Result<SyncOutcome, SyncRunError> {
        Err(SyncRunError::Permanent(
            "this build has no sync engine".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_template_names_its_rule() {
        let mut spec = FieldMappingSpec::default();
        spec.user.unique_name.template = "{{ name | pinyin }}".into();
        spec.user
            .attributes
            .push(crate::api::mapping::AttributeRule {
                target: "mail".into(),
                template: "{{ email | lower ".into(),
                ..Default::default()
            });
        let err = validate_mapping(&spec).unwrap_err();
        assert!(err.starts_with("user.attributes[0] (mail)"), "{err}");
        spec.user.attributes[0].template = "{{ email | lower }}".into();
        validate_mapping(&spec).unwrap();
    }
}
