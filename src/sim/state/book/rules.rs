//! DingTalk's field rules for writes: lengths, formats, names.

use crate::sim::error::{ApiError, api_err};

pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

pub(super) fn limit(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.chars().count() > max {
        return Err(api_err(
            40035,
            format!("不合法的参数 {field}: 长度不能超过{max}"),
        ));
    }
    Ok(())
}

/// Sets a text field within DingTalk's length limit; an empty text clears it.
pub(super) fn set_limited(
    slot: &mut Option<String>,
    value: &Option<String>,
    field: &str,
    max: usize,
) -> Result<(), ApiError> {
    if let Some(v) = value {
        limit(field, v, max)?;
        *slot = non_empty(v);
    }
    Ok(())
}

pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 80 {
        return Err(api_err(60112, "用户名称不合法"));
    }
    Ok(())
}

pub(super) fn check_dept_name(name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 64 {
        return Err(api_err(60001, "部门名称不合法"));
    }
    if name.contains(['-', ',', '，']) {
        return Err(api_err(60009, "部门名称含有非法字符"));
    }
    Ok(())
}

/// Mainland `1xxxxxxxxxx`, `+86-1xxxxxxxxxx`, or `+<cc>-<digits>`.
pub fn check_mobile(m: &str) -> Result<(), ApiError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = if let Some(rest) = m.strip_prefix('+') {
        match rest.split_once('-') {
            Some(("86", num)) => num.len() == 11 && num.starts_with('1') && digits(num),
            Some((cc, num)) => {
                digits(cc) && cc.len() <= 4 && digits(num) && (5..=15).contains(&num.len())
            }
            None => false,
        }
    } else {
        m.len() == 11 && m.starts_with('1') && digits(m)
    };
    if ok {
        Ok(())
    } else {
        Err(api_err(60103, "手机号码不合法"))
    }
}

pub(super) fn check_email(e: &str) -> Result<(), ApiError> {
    let ok = e.chars().count() <= 50
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(api_err(60105, "邮箱不合法"))
    }
}
