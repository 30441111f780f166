//! What went wrong calling DingTalk, and how each answer is classified: success, a token to
//! refresh, a transient failure to retry, or a typed error to hand back.

use reqwest::StatusCode;
use serde_json::Value;

/// What went wrong calling DingTalk. Never carries a token or secret.
/// What an operator does about a refusal whose cause lies outside dingsync.
fn denied_hint(errcode: i64) -> &'static str {
    match errcode {
        60020 => {
            " (the calling address is not in the app's IP allowlist: add the controller's egress \
             address under the app's security settings in DingTalk's developer console)"
        }
        _ => "",
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DingTalkError {
    /// The AppKey/AppSecret were refused.
    #[error("DingTalk refused the app credentials (errcode {errcode}): {message}")]
    InvalidCredentials { errcode: i64, message: String },
    /// The app lacks a permission, or the object is outside its contact scope / IP whitelist.
    #[error("DingTalk denied {api} (errcode {errcode}{}): {message}{}", permission.as_deref().map(|p| format!(", missing permission {p}")).unwrap_or_default(), denied_hint(*errcode))]
    Denied {
        api: String,
        errcode: i64,
        message: String,
        /// The permission the app needs for `api`, when the refusal is about permissions.
        permission: Option<String>,
    },
    /// The object does not exist (department 60003, user 60121, 33012, 60111).
    #[error("{api}: not found (errcode {errcode})")]
    NotFound { api: String, errcode: i64 },
    /// DingTalk refused a parameter or the operation; names the API and what DingTalk said.
    #[error("{api} refused the request (errcode {errcode}): {message}")]
    Invalid {
        api: String,
        errcode: i64,
        message: String,
    },
    /// A value was refused before sending it, by DingTalk's own documented rules.
    #[error("invalid {field}: {reason}")]
    Validation { field: String, reason: String },
    /// The DingTalk user (by unionId) is not an employee of this enterprise.
    #[error("the DingTalk user {unionid} is not a member of this enterprise")]
    NotInEnterprise { unionid: String },
    /// Still failing after retries: throttling, busy, 5xx, timeouts, network.
    #[error("{api} unavailable after {attempts} attempts: {message}")]
    Unavailable {
        api: String,
        attempts: u32,
        message: String,
    },
    /// DingTalk answered something this client cannot read.
    #[error("{api}: unreadable answer: {message}")]
    Decode { api: String, message: String },
}

impl DingTalkError {
    /// Worth trying again later (the client already retried).
    pub fn is_transient(&self) -> bool {
        matches!(self, DingTalkError::Unavailable { .. })
    }

    pub(crate) fn validation(field: &str, reason: impl Into<String>) -> Self {
        DingTalkError::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn decode(api: &str, e: impl std::fmt::Display) -> Self {
        DingTalkError::Decode {
            api: api.into(),
            message: e.to_string(),
        }
    }
}

/// The permission code each API needs (the error answer does not name it).
pub fn permission_for(api: &str) -> Option<&'static str> {
    Some(match api {
        "/topapi/v2/department/listsub"
        | "/topapi/v2/department/listsubid"
        | "/topapi/v2/department/get" => "qyapi_get_department_list",
        "/topapi/v2/user/list" | "/topapi/user/listsimple" | "/topapi/user/listid" => {
            "qyapi_get_department_member"
        }
        "/topapi/v2/user/get" | "/topapi/user/getbyunionid" => "qyapi_get_member",
        "/topapi/v2/user/getbymobile" => "qyapi_get_member_by_mobile",
        "/topapi/v2/user/create"
        | "/topapi/v2/user/update"
        | "/topapi/v2/user/delete"
        | "/topapi/v2/department/create"
        | "/topapi/v2/department/update"
        | "/topapi/v2/department/delete" => "qyapi_manage_addresslist",
        "/v1.0/contact/users/me" => "Contact.User.Read",
        _ => return None,
    })
}

/// How one answer is handled.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    Ok(Value),
    /// Refresh the app token and try again.
    TokenInvalid,
    /// Transient; `throttled` when DingTalk's QPS limit answered (wait its 1 s window out).
    Retry {
        why: String,
        throttled: bool,
    },
    Fail(DingTalkError),
}

fn str_field<'a>(body: &'a Value, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `errcode` may come as a number or (docs' rendering) a numeric string.
fn errcode(body: &Value) -> Option<i64> {
    match body.get("errcode")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Classify an oapi (`/topapi/...`, `/gettoken`) answer: HTTP 200 with an `errcode` envelope;
/// gateway errors come as errcode 88 with a string `sub_code`.
pub(crate) fn classify_oapi(api: &str, status: StatusCode, body: Option<Value>) -> Verdict {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Verdict::Retry {
            why: format!("HTTP {}", status.as_u16()),
            throttled: status == StatusCode::TOO_MANY_REQUESTS,
        };
    }
    let Some(body) = body else {
        return Verdict::Retry {
            why: format!("HTTP {} with a body that is not JSON", status.as_u16()),
            throttled: false,
        };
    };
    // The per-IP ban page: `{"status":1111,"wait":5,...}`, not an envelope.
    if body.get("errcode").is_none() && body.get("punish").is_some() {
        return Verdict::Retry {
            why: "per-IP limit: DingTalk blocks this address for a while".into(),
            throttled: true,
        };
    }
    let Some(code) = errcode(&body) else {
        return Verdict::Fail(DingTalkError::decode(api, "no errcode in the answer"));
    };
    let msg = str_field(&body, "errmsg").to_string();
    let sub = str_field(&body, "sub_code").trim();
    let sub_msg = str_field(&body, "sub_msg").to_string();
    let denied = |errcode: i64, message: String| {
        let permission = matches!(errcode, 60011 | 43007)
            .then(|| permission_for(api).map(str::to_string))
            .flatten();
        Verdict::Fail(DingTalkError::Denied {
            api: api.into(),
            errcode,
            message,
            permission,
        })
    };
    match code {
        0 => Verdict::Ok(body),
        40014 | 42001 | 40001 | 33001 | 41001 => Verdict::TokenInvalid,
        88 => match sub {
            "40014" | "42001" | "40001" | "33001" | "40000" | "41001" => Verdict::TokenInvalid,
            // 88 without a sub_code: the auth service itself timed out.
            "" => Verdict::Retry {
                why: "errcode 88 without sub_code".into(),
                throttled: false,
            },
            "90018" | "90002" => Verdict::Retry {
                why: format!("errcode 88/{sub}"),
                throttled: true,
            },
            _ => match sub.parse::<i64>() {
                Ok(n @ (60011 | 60020 | 43007)) => denied(n, sub_msg),
                Ok(n) => classify_code(api, n, sub_msg, denied),
                Err(_) => Verdict::Fail(DingTalkError::Invalid {
                    api: api.into(),
                    errcode: 88,
                    message: format!("{sub}: {sub_msg}"),
                }),
            },
        },
        _ => {
            let message = if msg.is_empty() { sub_msg } else { msg };
            classify_code(api, code, message, denied)
        }
    }
}

fn classify_code(
    api: &str,
    code: i64,
    message: String,
    denied: impl Fn(i64, String) -> Verdict,
) -> Verdict {
    match code {
        // -1 busy; 15 upstream timeout (sub_code isp.top-remote-connection-timeout).
        -1 | 15 => Verdict::Retry {
            why: format!("errcode {code}: {message}"),
            throttled: false,
        },
        // 90018 per-app per-API QPS, 90002 global per-API QPS, 90006/90005 per-minute
        // variants, 90019 ISV per-corp.
        90018 | 90002 | 90005 | 90006 | 90019 => Verdict::Retry {
            why: format!("errcode {code} (throttled)"),
            throttled: true,
        },
        60011 | 50002 | 50004 | 60020 | 43007 => denied(code, message),
        60003 | 60121 | 60111 | 33012 => Verdict::Fail(DingTalkError::NotFound {
            api: api.into(),
            errcode: code,
        }),
        // 40035 on /gettoken: a missing appkey/appsecret.
        40096 | 40089 | 40035 if api == "/gettoken" => {
            Verdict::Fail(DingTalkError::InvalidCredentials {
                errcode: code,
                message,
            })
        }
        40096 | 40089 => Verdict::Fail(DingTalkError::InvalidCredentials {
            errcode: code,
            message,
        }),
        _ => Verdict::Fail(DingTalkError::Invalid {
            api: api.into(),
            errcode: code,
            message,
        }),
    }
}

/// Classify a `/v1.0/...` answer: real HTTP statuses, errors as `{code, message, requestid}`.
/// `app_token` says whether the call carried the app token (refreshable) or a user's.
pub(crate) fn classify_api(
    api: &str,
    status: StatusCode,
    body: Option<Value>,
    app_token: bool,
) -> Verdict {
    if status.is_success() {
        return match body {
            Some(b) => Verdict::Ok(b),
            None => Verdict::Ok(Value::Null),
        };
    }
    let body = body.unwrap_or(Value::Null);
    let code = body
        .get("code")
        .or_else(|| body.get("Code"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let message = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let s = status.as_u16();
    let numeric = i64::from(s);
    if code == "InvalidAuthentication" && app_token {
        return Verdict::TokenInvalid;
    }
    if code.contains("QpsLimit") || code.contains("QpmLimit") {
        return Verdict::Retry {
            why: format!("HTTP {s} {code}"),
            throttled: true,
        };
    }
    if status.is_server_error() || s == 429 || code == "systemBusy" || code == "system.busy" {
        return Verdict::Retry {
            why: format!("HTTP {s} {code}"),
            throttled: s == 429,
        };
    }
    let message = if code.is_empty() {
        message
    } else {
        format!("{code}: {message}")
    };
    match (s, code.as_str()) {
        (_, "invalidClientIdOrSecret" | "authFailed" | "invalid.client") | (401, _) => {
            Verdict::Fail(DingTalkError::InvalidCredentials {
                errcode: numeric,
                message,
            })
        }
        (403, c) => Verdict::Fail(DingTalkError::Denied {
            api: api.into(),
            errcode: numeric,
            permission: c
                .contains("PermissionDenied")
                .then(|| permission_for(api).map(str::to_string))
                .flatten(),
            message,
        }),
        (404, _) => Verdict::Fail(DingTalkError::NotFound {
            api: api.into(),
            errcode: numeric,
        }),
        _ => Verdict::Fail(DingTalkError::Invalid {
            api: api.into(),
            errcode: numeric,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oapi(body: Value) -> Verdict {
        classify_oapi("/topapi/v2/user/list", StatusCode::OK, Some(body))
    }

    #[test]
    fn an_address_outside_the_ip_allowlist_is_named_with_what_to_do() {
        let Verdict::Fail(e) = oapi(json!({"errcode": 60020, "errmsg": "访问ip不在白名单之中"}))
        else {
            panic!("60020 is a refusal");
        };
        let text = e.to_string();
        assert!(text.contains("errcode 60020"), "{text}");
        assert!(
            text.contains("IP allowlist") && text.contains("egress"),
            "{text}"
        );
        let Verdict::Fail(other) = oapi(json!({"errcode": 60011, "errmsg": "no permission"}))
        else {
            panic!("60011 is a refusal");
        };
        assert!(!other.to_string().contains("allowlist"));
    }

    #[test]
    fn oapi_envelopes() {
        assert!(matches!(
            oapi(json!({"errcode": 0, "result": []})),
            Verdict::Ok(_)
        ));
        assert!(matches!(oapi(json!({"errcode": "0"})), Verdict::Ok(_)));
        for token in [
            json!({"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token"}),
            json!({"errcode": 88, "sub_code": "42001"}),
            json!({"errcode": 40014}),
            json!({"errcode": 42001}),
        ] {
            assert_eq!(oapi(token), Verdict::TokenInvalid);
        }
        for transient in [
            json!({"errcode": -1, "errmsg": "系统繁忙"}),
            json!({"errcode": 15, "sub_code": "isp.top-remote-connection-timeout"}),
            json!({"errcode": 88, "sub_code": ""}),
            json!({"errcode": 88}),
        ] {
            assert!(
                matches!(
                    oapi(transient.clone()),
                    Verdict::Retry {
                        throttled: false,
                        ..
                    }
                ),
                "{transient}"
            );
        }
        assert!(matches!(
            oapi(json!({"errcode": 90018, "errmsg": "too fast"})),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            oapi(json!({"status": 1111, "wait": 5, "punish": "deny"})),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
    }

    #[test]
    fn oapi_typed_failures_name_permission_and_code() {
        match oapi(json!({"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的权限"}))
        {
            Verdict::Fail(DingTalkError::Denied {
                errcode,
                permission,
                ..
            }) => {
                assert_eq!(errcode, 60011);
                assert_eq!(permission.as_deref(), Some("qyapi_get_department_member"));
            }
            v => panic!("{v:?}"),
        }
        let e = match oapi(json!({"errcode": 88, "sub_code": "60011"})) {
            Verdict::Fail(e) => e,
            v => panic!("{v:?}"),
        };
        assert!(e.to_string().contains("qyapi_get_department_member"), "{e}");
        assert!(matches!(
            oapi(json!({"errcode": 50004, "errmsg": "out of scope"})),
            Verdict::Fail(DingTalkError::Denied {
                errcode: 50004,
                permission: None,
                ..
            })
        ));
        assert!(matches!(
            oapi(json!({"errcode": 60121})),
            Verdict::Fail(DingTalkError::NotFound { errcode: 60121, .. })
        ));
        assert!(matches!(
            oapi(json!({"errcode": 40035, "errmsg": "bad size"})),
            Verdict::Fail(DingTalkError::Invalid { errcode: 40035, .. })
        ));
        assert!(matches!(
            classify_oapi(
                "/gettoken",
                StatusCode::OK,
                Some(json!({"errcode": 40096, "errmsg": "bad"}))
            ),
            Verdict::Fail(DingTalkError::InvalidCredentials { errcode: 40096, .. })
        ));
        assert!(matches!(
            oapi(json!({"errcode": 22, "sub_msg": "不合法ApiName"})),
            Verdict::Fail(DingTalkError::Invalid { errcode: 22, .. })
        ));
        assert!(matches!(
            oapi(json!({"foo": 1})),
            Verdict::Fail(DingTalkError::Decode { .. })
        ));
    }

    #[test]
    fn oapi_http_failures_retry() {
        let api = "/topapi/v2/user/get";
        assert!(matches!(
            classify_oapi(api, StatusCode::BAD_GATEWAY, None),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify_oapi(api, StatusCode::OK, None),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn new_api_errors() {
        let api = "/v1.0/contact/users/me";
        let b = |code: &str| Some(json!({"code": code, "message": "m", "requestid": "x"}));
        assert_eq!(
            classify_api(
                api,
                StatusCode::BAD_REQUEST,
                b("InvalidAuthentication"),
                true
            ),
            Verdict::TokenInvalid
        );
        assert!(matches!(
            classify_api(
                api,
                StatusCode::BAD_REQUEST,
                b("InvalidAuthentication"),
                false
            ),
            Verdict::Fail(DingTalkError::Invalid { errcode: 400, .. })
        ));
        assert!(matches!(
            classify_api(
                api,
                StatusCode::FORBIDDEN,
                b("Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
                true
            ),
            Verdict::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            classify_api(
                api,
                StatusCode::INTERNAL_SERVER_ERROR,
                b("unknownError"),
                true
            ),
            Verdict::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            classify_api(api, StatusCode::TOO_MANY_REQUESTS, b("systemBusy"), true),
            Verdict::Retry { .. }
        ));
        match classify_api(
            api,
            StatusCode::FORBIDDEN,
            b("Forbidden.AccessDenied.AccessTokenPermissionDenied"),
            false,
        ) {
            Verdict::Fail(DingTalkError::Denied { permission, .. }) => {
                assert_eq!(permission.as_deref(), Some("Contact.User.Read"))
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            classify_api(
                "/v1.0/oauth2/accessToken",
                StatusCode::BAD_REQUEST,
                b("invalidClientIdOrSecret"),
                false
            ),
            Verdict::Fail(DingTalkError::InvalidCredentials { .. })
        ));
        assert!(matches!(
            classify_api(
                api,
                StatusCode::NOT_FOUND,
                b("invalidParameter.user.notFound"),
                false
            ),
            Verdict::Fail(DingTalkError::NotFound { .. })
        ));
        assert!(matches!(
            classify_api(api, StatusCode::OK, Some(json!({"nick": "x"})), false),
            Verdict::Ok(_)
        ));
    }
}
