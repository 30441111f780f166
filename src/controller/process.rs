//! The controller process (`dingsync controller`): run the Kubernetes controller (and, on every replica, the login
//! provider).

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use tokio_util::sync::CancellationToken;

use crate::{
    controller::{self, Settings, http, metrics::Metrics},
    runtime,
};

/// Options of `dingsync controller`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address of the HTTP server (`/metrics`, `/livez`, `/readyz`, DingTalk callbacks, login).
    #[arg(long, env = "DINGSYNC_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Watch only this namespace (empty: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// Run the controllers only while holding a Lease (for more than one replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "LEADER_ELECTION_LEASE", default_value = "dingsync-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (default: this pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's name (Events, lease identity).
    #[arg(long, env = "POD_NAME", default_value = "dingsync")]
    pub instance: String,
    /// Secret (in the pod's namespace) holding the login provider's signing keys; created if
    /// missing, rotated with overlap.
    #[arg(long, env = "LOGIN_KEYS_SECRET", default_value = "dingsync-login-keys")]
    pub login_keys_secret: String,
    /// Secret (in the pod's namespace) where the suiteTickets of third-party apps are kept,
    /// one key per SuiteKey; created if missing.
    #[arg(
        long,
        env = "SUITE_TICKETS_SECRET",
        default_value = "dingsync-suite-tickets"
    )]
    pub suite_tickets_secret: String,
    /// Concurrent reconciles per kind.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
}

/// Entry point of `dingsync controller`.
pub fn run(args: Args) -> anyhow::Result<()> {
    crate::telemetry::init();
    runtime::block_on(serve(args))?
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            runtime::shutdown_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    });

    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let health = http::Health {
        ready: Default::default(),
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "HTTP server listening");
    let login = Arc::new(controller::login::Login::new());
    let namespace = Some(args.watch_namespace.clone()).filter(|n| !n.is_empty());
    let ctx = controller::production_context_in(
        client.clone(),
        &args.instance,
        metrics,
        namespace.clone(),
    );
    let _ = ctx
        .suite_tickets
        .set(controller::suite_ticket::TicketStore {
            namespace: args.lease_namespace.clone(),
            name: args.suite_tickets_secret.clone(),
        });
    // With several replicas a callback push may reach one that does not feed its binding:
    // that replica checks it and hands it to the leader.
    let relay = args.leader_election.then(|| {
        let objects = crate::resolve::ClusterObjects::scoped(client.clone(), namespace.clone());
        let leader = controller::engine::relay::LeasePod {
            client: client.clone(),
            namespace: args.lease_namespace.clone(),
            lease: args.lease_name.clone(),
            instance: args.instance.clone(),
            port: args.listen.port(),
        };
        Arc::new(controller::engine::relay::CallbackRelay::new(
            Arc::new(objects),
            Arc::new(leader),
            args.instance.clone(),
        ))
    });
    let callbacks = controller::engine::callback_router_relaying(ctx.callbacks.clone(), relay);
    let server = axum::serve(
        listener,
        http::router(health.clone())
            .merge(callbacks)
            .merge(login.router()),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });

    // Ready once the API server answers; the controllers' caches fill right after.
    client.apiserver_version().await?;
    health.ready.store(true, Ordering::Relaxed);

    let settings = Settings {
        namespace,
        concurrency: args.concurrency,
        instance: args.instance.clone(),
    };
    // Login is served by every replica, leader or not.
    tokio::spawn(controller::login::run(
        ctx.clone(),
        login,
        settings.namespace.clone(),
        args.lease_namespace.clone(),
        args.login_keys_secret.clone(),
        shutdown.clone(),
    ));
    if args.leader_election {
        controller::run_with_leader_election(
            client,
            ctx,
            settings,
            args.lease_namespace,
            args.lease_name,
            shutdown.clone(),
        )
        .await?;
    } else {
        controller::run(client, ctx, settings, shutdown.clone()).await;
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
