//! The world most integration tests run in: a simulated DingTalk enterprise, a real DingTalk
//! client pointed at it, and, when asked for, a private slapd and a scim2-server.
//!
//! ```ignore
//! let Some(w) = World::builder().people(40).seed(9).slapd().build().await else {
//!     return; // slapd missing and not required: already said why
//! };
//! let dir = w.ldap(&w.node("events"), Layout::FlatWithGroups).await;
//! ```

use std::sync::Arc;

use dingsync::{
    api::target::Layout,
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::{
        ldap::{
            LdapDirectory,
            client::{ConnectOptions, Pool, Secret as LdapSecret},
            store::Store,
        },
        scim::client::{BearerToken, ScimClient},
    },
    sim::{
        self, Org, SimConfig, SimHandle, Simulator,
        generate::{GenSpec, generate},
    },
    sync::dingtalk_source::DingTalkSource,
};

use super::{manifests, scim_server::ScimServer, slapd, slapd::Slapd};

/// The corpId of every generated enterprise.
pub const CORP: &str = "dingsimcorp";

/// How to build a [`World`]; see [`World::builder`] for the defaults.
pub struct WorldBuilder {
    spec: GenSpec,
    org: Option<Org>,
    sim: SimConfig,
    rate: u32,
    slapd: bool,
    scim: bool,
}

impl WorldBuilder {
    /// People in the generated enterprise.
    pub fn people(mut self, n: usize) -> Self {
        self.spec.people = n;
        self
    }
    /// Departments in the generated enterprise.
    pub fn departments(mut self, n: usize) -> Self {
        self.spec.departments = n;
        self
    }
    /// The generator's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.spec.seed = seed;
        self
    }
    /// This enterprise instead of a generated one.
    pub fn org(mut self, org: Org) -> Self {
        self.org = Some(org);
        self
    }
    /// The simulator's settings (default: `SimConfig::fast()` without a QPS limit).
    pub fn sim_config(mut self, config: SimConfig) -> Self {
        self.sim = config;
        self
    }
    /// The client's calls per API per second.
    pub fn rate(mut self, per_api_per_second: u32) -> Self {
        self.rate = per_api_per_second;
        self
    }
    /// Start a private slapd too.
    pub fn slapd(mut self) -> Self {
        self.slapd = true;
        self
    }
    /// Start a scim2-server too.
    pub fn scim(mut self) -> Self {
        self.scim = true;
        self
    }

    /// Start everything. `None` when a server is missing and the test may skip (the reason is
    /// printed); when servers are required that is a panic instead.
    pub async fn build(self) -> Option<World> {
        // Servers first: a skipped test then starts nothing else.
        let slapd = match self.slapd {
            true => Some(slapd::start_or_skip()?),
            false => None,
        };
        let scim = match self.scim {
            true => Some(ScimServer::start()?),
            false => None,
        };
        let org = self.org.unwrap_or_else(|| generate(&self.spec));
        let corp = org.corp_id.clone();
        let sim = Simulator::start(self.sim, org, "127.0.0.1:0")
            .await
            .expect("simulator starts");
        Some(World {
            client: DingTalkClient::new(client_config(&sim, &corp, self.rate)),
            sim,
            slapd,
            scim,
            corp,
            rate: self.rate,
        })
    }
}

fn client_config(sim: &SimHandle, corp: &str, rate: u32) -> ClientConfig {
    let mut c = ClientConfig::new(
        corp,
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&sim.base_url());
    c.per_api_per_second = rate;
    c
}

/// A running world; everything in it stops when it is dropped (the simulator with its
/// runtime, the servers by PID).
pub struct World {
    pub sim: SimHandle,
    /// The app's client, with the builder's rate.
    pub client: DingTalkClient,
    pub slapd: Option<Slapd>,
    pub scim: Option<ScimServer>,
    corp: String,
    rate: u32,
}

impl World {
    /// Defaults: 30 people in 5 departments (seed 1) of [`CORP`], `SimConfig::fast()`
    /// without a QPS limit, a client at 500 calls per API per second, no servers.
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            spec: GenSpec {
                people: 30,
                departments: 5,
                seed: 1,
                corp_id: CORP.into(),
                ..Default::default()
            },
            org: None,
            sim: SimConfig {
                qps_limit: None,
                ..SimConfig::fast()
            },
            rate: 500,
            slapd: false,
            scim: false,
        }
    }

    pub fn corp(&self) -> &str {
        &self.corp
    }

    /// A new client for the simulator, with settings changed from the builder's.
    pub fn client_with(&self, tweak: impl FnOnce(&mut ClientConfig)) -> DingTalkClient {
        let mut c = client_config(&self.sim, &self.corp, self.rate);
        tweak(&mut c);
        DingTalkClient::new(c)
    }

    /// The whole enterprise (from the root department) as a sync source.
    pub fn source(&self) -> DingTalkSource {
        DingTalkSource::new(self.client.clone(), vec![1])
    }

    /// The slapd; the world must have been built with [`WorldBuilder::slapd`].
    pub fn slapd(&self) -> &Slapd {
        self.slapd.as_ref().expect("a world built with .slapd()")
    }

    /// The scim2-server; the world must have been built with [`WorldBuilder::scim`].
    pub fn scim(&self) -> &ScimServer {
        self.scim.as_ref().expect("a world built with .scim()")
    }

    /// A fresh organizational unit in slapd for one target.
    pub fn node(&self, name: &str) -> String {
        self.slapd().new_node(name).expect("new node in slapd")
    }

    /// A connection pool to slapd as the service account.
    pub async fn ldap_pool(&self) -> Arc<Pool> {
        ldap_pool(self.slapd()).await
    }

    /// The LDAP directory of `node`, owned by this world's enterprise.
    pub async fn ldap(&self, node: &str, layout: Layout) -> LdapDirectory {
        ldap_directory(self.slapd(), node, layout, &self.corp).await
    }

    /// A client of the scim2-server.
    pub async fn scim_client(&self) -> ScimClient {
        let s = self.scim();
        ScimClient::connect(&s.base_url, BearerToken::new(&s.token), None)
            .await
            .expect("SCIM connect")
    }

    /// Manifests for `dingsync plan` / `apply`: this world's DingTalk synced into `node` of
    /// its slapd, the AppSecret left to `DINGSYNC_SECRET_APP_APPSECRET` unless given, and
    /// `attributes` mapped beyond `cn` and `sn`.
    pub fn inbound_ldap_yaml(
        &self,
        node: &str,
        app_secret: Option<&str>,
        attributes: &[(&str, &str)],
    ) -> String {
        let server = self.slapd();
        manifests::InboundLdap {
            sim_url: &self.sim.base_url(),
            app_key: sim::DEFAULT_APP_KEY,
            app_secret,
            ldap_url: &server.url(),
            bind_dn: slapd::SERVICE_DN,
            node,
            password: server.service_password(),
            attributes,
        }
        .yaml()
    }
}

/// A console-style HTTP callback subscription of the simulator's app, served on a loopback
/// port by a receiver in front of `handler`; returns the URL DingTalk pushes to.
pub async fn serve_callbacks(
    w: &World,
    handler: Arc<dyn dingsync::dingtalk::EventHandler>,
    (token, aes): (&str, &str),
) -> String {
    use dingsync::dingtalk::{
        callback::CallbackCrypto,
        events::{CallbackReceiver, callback_endpoint},
    };
    let crypto = CallbackCrypto::new(token, aes, sim::DEFAULT_APP_KEY).unwrap();
    let receiver = Arc::new(CallbackReceiver::new(crypto, handler));
    let app = axum::Router::new()
        .route("/callback", axum::routing::post(callback_endpoint))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    w.sim
        .subscribe_callback(sim::DEFAULT_APP_KEY, &url, token, aes)
        .await
        .unwrap();
    url
}

/// A connection pool to `server` as the service account.
pub async fn ldap_pool(server: &Slapd) -> Arc<Pool> {
    Pool::connect(ConnectOptions::new(
        server.url(),
        slapd::SERVICE_DN,
        LdapSecret::new(server.service_password()),
    ))
    .await
    .expect("connect to slapd")
}

/// The LDAP directory of `node` in `server`, owned by enterprise `corp`.
pub async fn ldap_directory(
    server: &Slapd,
    node: &str,
    layout: Layout,
    corp: &str,
) -> LdapDirectory {
    LdapDirectory::new(
        Store::open(ldap_pool(server).await, node, layout, corp)
            .await
            .expect("open the LDAP store"),
    )
}
