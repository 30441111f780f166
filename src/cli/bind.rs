//! `dingsync bind`: quick bind. Shows the authorisation URL of the team's third-party (suite)
//! app as a QR code in the terminal, waits on the suite's Stream connection for DingTalk to
//! announce that an enterprise's admin authorised it (`org_suite_auth`), checks that a corp
//! token for that enterprise can be bought, and writes the DingTalkBinding for Git (and, with
//! `--apply`, applies it with the latest suiteTicket). The suite's own Secret is created once
//! by whoever holds the suite's credentials; the binding only names it.

use std::{io::Write, path::PathBuf, sync::Arc, time::Duration};

use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::{
    api::{
        DingTalkBinding, DingTalkBindingSpec,
        binding::{Endpoints, Suite, SuiteSecretRef},
    },
    dingtalk::{
        ClientConfig, DingTalkClient, DingTalkError, Event, StreamConfig, TicketCell,
        suite::ORG_SUITE_AUTH,
    },
    secret::Secret,
};

/// Options of `dingsync bind`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The suite's SuiteKey.
    #[arg(long, env = "DINGSYNC_SUITE_KEY")]
    pub suite_key: String,
    /// The suite's SuiteSecret; give it through the environment rather than the command line.
    #[arg(long, env = "DINGSYNC_SUITE_SECRET", hide_env_values = true, value_parser = secret)]
    pub suite_secret: Secret,
    /// Secret in the cluster holding the SuiteKey and SuiteSecret (keys `suiteKey`,
    /// `suiteSecret`), named by the binding.
    #[arg(long, default_value = "dingtalk-suite")]
    pub secret_name: String,
    /// Name of the binding (default: `dingtalk-<corpId>`).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, short = 'n', default_value = "dingsync")]
    pub namespace: String,
    /// One base URL for every DingTalk host (the dingsync simulator); also written into the
    /// binding's endpoints.
    #[arg(long)]
    pub base: Option<String>,
    /// The authorisation link the QR code carries: the suite's link from DingTalk's developer
    /// console. Default: the simulator's authorisation page under `--base`.
    #[arg(long)]
    pub auth_url: Option<String>,
    /// Write the YAML to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Also apply the binding to the cluster (current kubeconfig context) and store the
    /// latest suiteTicket in the binding's ticket Secret.
    #[arg(long)]
    pub apply: bool,
    /// Give up when no enterprise authorised the app within this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// Why binding failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "neither --auth-url nor --base given: the QR code needs the suite's authorisation link"
    )]
    NoAuthUrl,
    #[error("no enterprise authorised the app within {0:?}")]
    TimedOut(Duration),
    #[error("the authorisation event names no corpId")]
    NoCorp,
    #[error("the enterprise authorised the app, but no corp token could be bought: {0}")]
    CorpToken(#[source] DingTalkError),
    #[error("cannot render the QR code: {0}")]
    Qr(#[source] qrcode::types::QrError),
    #[error("cannot write the binding: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot encode the binding as YAML: {0}")]
    Yaml(#[source] serde_yaml::Error),
    #[error("cannot reach the cluster: {0}")]
    Cluster(#[source] Box<kube::Error>),
}

/// What a finished bind found.
#[derive(Debug)]
pub struct Bound {
    pub corp_id: String,
    pub binding: DingTalkBinding,
    /// The suiteTicket that bought the corp token.
    pub ticket: Option<Secret>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::runtime::block_on(async move {
        let mut prompt = std::io::stderr();
        let bound = bind(&args, &mut prompt).await?;
        let yaml = to_yaml(&bound.binding)?;
        match &args.out {
            Some(p) => std::fs::write(p, &yaml).map_err(BindError::Write)?,
            None => print!("{yaml}"),
        }
        if args.apply {
            apply(&bound, &args).await?;
            let _ = writeln!(
                prompt,
                "applied DingTalkBinding {}",
                binding_name(&args, &bound.corp_id)
            );
        }
        Ok::<_, anyhow::Error>(())
    })?
}

/// The binding as YAML, with the line that says where it came from.
pub fn to_yaml(b: &DingTalkBinding) -> Result<String, BindError> {
    let body = serde_yaml::to_string(b).map_err(BindError::Yaml)?;
    Ok(format!(
        "# Written by `dingsync bind`: the enterprise authorised the third-party app by scanning.\n{body}"
    ))
}

/// The QR code of `url` for a terminal (two modules per character, dark on light).
pub fn qr_text(url: &str) -> Result<String, BindError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(BindError::Qr)?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

fn binding_name(args: &Args, corp: &str) -> String {
    args.name.clone().unwrap_or_else(|| {
        let clean: String = corp
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("dingtalk-{}", clean.trim_matches('-'))
    })
}

fn suite_config(args: &Args, corp: &str, tickets: TicketCell) -> ClientConfig {
    let c = ClientConfig::for_suite(corp, &args.suite_key, args.suite_secret.clone(), tickets);
    match &args.base {
        Some(b) => c.with_base(b),
        None => c,
    }
}

/// The corpId an authorisation event names.
fn authorised_corp(e: &Event) -> Option<String> {
    e.data
        .get("authCorpId")
        .or_else(|| e.data.get("AuthCorpId"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| e.corp_id.clone())
        .filter(|c| !c.is_empty())
}

/// Shows the QR code on `prompt`, waits for the authorisation, checks a corp token.
pub async fn bind(args: &Args, prompt: &mut dyn Write) -> Result<Bound, BindError> {
    let tickets = TicketCell::default();
    let stream_client = DingTalkClient::new(suite_config(args, "", tickets.clone()));
    let url = match (&args.auth_url, &args.base) {
        (Some(u), _) => u.clone(),
        (None, Some(_)) => format!(
            "{}/oauth2/suite/auth?suite_key={}&state={}",
            stream_client.config().login_base,
            url::form_urlencoded::byte_serialize(args.suite_key.as_bytes()).collect::<String>(),
            uuid::Uuid::new_v4().simple()
        ),
        (None, None) => return Err(BindError::NoAuthUrl),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = move |e: Event| {
        let tx = tx.clone();
        async move {
            if e.event_type == ORG_SUITE_AUTH {
                let _ = tx.send(e);
            }
            Ok(())
        }
    };
    let stream = stream_client.start_stream(StreamConfig::default(), Arc::new(handler));
    let qr = qr_text(&url)?;
    writeln!(
        prompt,
        "Ask the enterprise's DingTalk admin to scan this code and authorise the app:\n\n{qr}\n{url}\n\nWaiting for the authorisation…"
    )
    .map_err(BindError::Write)?;
    let limit = Duration::from_secs(args.timeout_secs);
    let event = tokio::time::timeout(limit, rx.recv()).await;
    let corp = match event {
        Ok(Some(e)) => authorised_corp(&e).ok_or(BindError::NoCorp),
        _ => Err(BindError::TimedOut(limit)),
    };
    let corp = match corp {
        Ok(c) => c,
        Err(e) => {
            stream.stop().await;
            return Err(e);
        }
    };
    // The ticket came over the same connection: a corp token proves the binding will work.
    let corp_client = DingTalkClient::new(suite_config(args, &corp, tickets.clone()));
    let token = corp_client.token().await;
    stream.stop().await;
    token.map_err(BindError::CorpToken)?;
    writeln!(prompt, "Enterprise {corp} authorised the app.").map_err(BindError::Write)?;
    Ok(Bound {
        binding: binding_of(args, &corp),
        corp_id: corp,
        ticket: tickets.get(),
    })
}

/// The DingTalkBinding for the enterprise.
fn binding_of(args: &Args, corp: &str) -> DingTalkBinding {
    let endpoints = args.base.as_ref().map(|b| {
        let b = b.trim_end_matches('/').to_owned();
        Endpoints {
            oapi: Some(b.clone()),
            api: Some(b.clone()),
            login: Some(b),
        }
    });
    DingTalkBinding {
        metadata: ObjectMeta {
            name: Some(binding_name(args, corp)),
            namespace: Some(args.namespace.clone()),
            ..Default::default()
        },
        spec: DingTalkBindingSpec {
            corp_id: corp.to_owned(),
            suite: Some(Suite {
                secret_ref: SuiteSecretRef {
                    name: args.secret_name.clone(),
                    suite_key_key: "suiteKey".into(),
                    suite_secret_key: "suiteSecret".into(),
                },
                ticket_secret_ref: None,
            }),
            endpoints,
            ..Default::default()
        },
        status: None,
    }
}

/// Server-side applies the binding, and the ticket into its ticket Secret.
async fn apply(bound: &Bound, args: &Args) -> Result<(), BindError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| BindError::Cluster(Box::new(e)))?;
    let ns = args.namespace.as_str();
    let name = binding_name(args, &bound.corp_id);
    let pp = PatchParams::apply("dingsync-bind").force();
    let bindings: Api<DingTalkBinding> = Api::namespaced(client.clone(), ns);
    bindings
        .patch(&name, &pp, &Patch::Apply(&bound.binding))
        .await
        .map_err(|e| BindError::Cluster(Box::new(e)))?;
    if let Some(t) = &bound.ticket {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, ns);
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{name}-suite-ticket"), "namespace": ns},
            "stringData": {"suiteTicket": t.expose()},
        });
        secrets
            .patch(&format!("{name}-suite-ticket"), &pp, &Patch::Apply(&secret))
            .await
            .map_err(|e| BindError::Cluster(Box::new(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_code_is_terminal_text_and_names_default_from_the_corp() {
        let qr = qr_text("http://127.0.0.1:1/oauth2/suite/auth?suite_key=k").expect("qr");
        assert!(qr.lines().count() > 10 && qr.contains('█'), "{qr}");
        let args = Args {
            suite_key: "k".into(),
            suite_secret: Secret::new("s3cret"),
            secret_name: "dingtalk-suite".into(),
            name: None,
            namespace: "dingsync".into(),
            base: None,
            auth_url: None,
            out: None,
            apply: false,
            timeout_secs: 1,
        };
        assert_eq!(binding_name(&args, "dingABC_01"), "dingtalk-dingabc-01");
        assert!(!format!("{args:?}").contains("s3cret"));
    }
}
