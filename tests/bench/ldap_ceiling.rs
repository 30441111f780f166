//! Benchmark: dingsync's apply against slapd's own write ceiling, on the production-like test
//! slapd (`tests/it/support/slapd.rs`: back_mdb, memberof, refint, ppolicy, equality indexes
//! on member, memberOf, uid, mail, mobile, businessCategory …).
//!
//! One generated enterprise (`DINGSYNC_BENCH_CEILING_PEOPLE`, default 20,000 people in one
//! department per 20) is planned once as a first sync into an empty node. The same writes then
//! go to slapd in two ways, each into a fresh server started with the same config:
//!
//! * **ceiling**: a bare ldap3 loader that sends exactly the entries dingsync writes (same DNs,
//!   attributes, anchor values, placeholder member), department groups in waves by depth,
//!   then the people, then one modify per department adding all its members and dropping the
//!   placeholder — on one connection one request at a time, with the concurrency of
//!   dingsync's apply (the pool's connections, `Directory::write_concurrency` in flight) and
//!   twice as deep;
//! * **dingsync**: `sync::run` of the same source snapshot into an `LdapDirectory`, timed from
//!   its first write to its end, so reading DingTalk, reading the empty node and planning are
//!   left out.
//!
//! Writes are counted the same way on both sides (a group, a person or a department's member
//! batch is one write; dingsync's LDAP requests are counted too), and after the first loader
//! run its node is read back through dingsync and compared with a node dingsync wrote, so the
//! two did the same work. The loader builds its requests before its clock starts; dingsync
//! builds its own while it applies, which shows in the CPU columns (µs of CPU per write, of
//! the writer's process and of slapd). Rounds (`DINGSYNC_BENCH_CEILING_ROUNDS`, default 3)
//! interleave the runs; the table shows medians.

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use ldap3::{LdapConnAsync, Mod};
use support::slapd::{self, Slapd};

use dingsync::{
    api::target::Layout,
    directory::{
        Anchors, Attrs, Directory, DirectoryError, Snapshot, SourceTree,
        ldap::{
            ConnectOptions, LdapDirectory, Pool, Secret as LdapSecret, Store,
            dn::Dn,
            schema::{
                ANCHOR_ATTR, AnchorKind, GROUP_RDN, GROUPS_OU, OU_RDN, PEOPLE_OU, PERSON_RDN,
                StoredAnchor,
            },
        },
    },
    sync::{self, Op, Options, Plan, StaticSource},
};

/// The allocator the `dingsync` binary ships with, so the figures are the binary's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CORP: &str = "dingbenchcorp";
/// The bound dingsync's apply is held to: at least 80 % of the fastest loader's writes/s.
const BOUND: f64 = 0.80;

/// One LDAP add: DN and attributes as ldap3 takes them.
type Entry = (String, Vec<(String, HashSet<String>)>);

/// The writes of a first sync, as bare LDAP requests.
struct Work {
    /// Department groups by depth: a wave only after its parents' wave.
    groups: Vec<Vec<Entry>>,
    people: Vec<Entry>,
    /// Per department: its group's DN and the DNs of its members.
    members: Vec<(String, Vec<String>)>,
}

fn ldap_attrs(attrs: Attrs) -> Vec<(String, HashSet<String>)> {
    attrs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.map(str::to_owned).collect()))
        .collect()
}

fn with_anchor_and_class(attrs: &Attrs, kind: AnchorKind, id: &str, class: &str) -> Attrs {
    let mut a: Attrs = attrs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec()))
        .collect();
    a.update("objectclass", |v| {
        if !v.iter().any(|c| c.eq_ignore_ascii_case(class)) {
            v.push(class.to_owned());
        }
    });
    a.update(&ANCHOR_ATTR.to_ascii_lowercase(), |v| {
        v.push(StoredAnchor::new(kind, CORP, id).encode())
    });
    a
}

/// The entries and member batches dingsync's plan writes into `node` (flat layout).
fn work_of(plan: &Plan, node: &str) -> Work {
    let node_dn = Dn::parse(node).expect("node DN");
    let people_base = Dn::child(&node_dn, OU_RDN, PEOPLE_OU);
    let groups_base = Dn::child(&node_dn, OU_RDN, GROUPS_OU);
    let mut dept: HashMap<&str, (Dn, usize)> = HashMap::new();
    let mut person: HashMap<&str, String> = HashMap::new();
    let mut work = Work {
        groups: vec![],
        people: vec![],
        members: vec![],
    };
    for step in &plan.steps {
        match &step.op {
            Op::CreateDept {
                id,
                name,
                parent,
                attrs,
            } => {
                let (parent_dn, depth) = match parent.as_deref().and_then(|p| dept.get(p)) {
                    Some((dn, depth)) => (dn.clone(), depth + 1),
                    None => (groups_base.clone(), 0),
                };
                let dn = Dn::child(&parent_dn, GROUP_RDN, name);
                let mut a = with_anchor_and_class(attrs, AnchorKind::Dept, id, "groupOfNames");
                a.insert(GROUP_RDN, vec![name.clone()]);
                // The placeholder member dingsync writes: the group's own DN.
                a.insert("member", vec![dn.to_string()]);
                if work.groups.len() <= depth {
                    work.groups.resize_with(depth + 1, Vec::new);
                }
                work.groups[depth].push((dn.to_string(), ldap_attrs(a)));
                dept.insert(id, (dn, depth));
            }
            Op::CreatePerson { id, attrs, .. } => {
                let uid = attrs.first(PERSON_RDN).expect("uid");
                let dn = Dn::child(&people_base, PERSON_RDN, uid).to_string();
                let a = with_anchor_and_class(attrs, AnchorKind::User, id, "inetOrgPerson");
                work.people.push((dn.clone(), ldap_attrs(a)));
                person.insert(id, dn);
            }
            Op::AddMembers { dept: d, people } => work.members.push((
                dept[d.as_str()].0.to_string(),
                people.iter().map(|p| person[p.as_str()].clone()).collect(),
            )),
            other => panic!(
                "a first sync into an empty node plans no {:?}",
                other.verb()
            ),
        }
    }
    work
}

/// Bound connections of the service account dingsync uses (same ACLs, same limits).
async fn connections(server: &Slapd, n: usize) -> Vec<ldap3::Ldap> {
    let mut out = vec![];
    for _ in 0..n {
        let (conn, mut ldap) = LdapConnAsync::new(&server.url()).await.expect("connect");
        ldap3::drive!(conn);
        ldap.simple_bind(slapd::SERVICE_DN, server.service_password())
            .await
            .and_then(|r| r.success())
            .expect("bind");
        out.push(ldap);
    }
    out
}

/// Seconds spent on department groups, people and member batches, then the CPU seconds the
/// writer's process (this one) and slapd used meanwhile.
type Phases = [f64; 5];

/// CPU seconds (user + system) process `pid` (or this one) has used so far.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15 (in clock ticks).
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(vec![], |(_, rest)| rest.split(' ').collect());
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// CPU seconds of this process and of `server` so far.
fn cpu(server: &Slapd) -> [f64; 2] {
    [cpu_secs(None), cpu_secs(server.pid())]
}

/// Send `work` to slapd: `conns` connections, `in_flight` requests at once.
async fn load(server: &Slapd, work: &Work, conns: usize, in_flight: usize) -> Phases {
    let handles = connections(server, conns).await;
    let on = |i: usize| handles[i % handles.len()].clone();
    let cpu_before = cpu(server);
    let t = Instant::now();
    for wave in &work.groups {
        run_all(wave.iter().enumerate(), in_flight, |(i, (dn, a))| {
            let mut h = on(i);
            async move { h.add(dn, a.clone()).await?.success().map(|_| ()) }
        })
        .await;
    }
    let groups = t.elapsed().as_secs_f64();
    run_all(work.people.iter().enumerate(), in_flight, |(i, (dn, a))| {
        let mut h = on(i);
        async move { h.add(dn, a.clone()).await?.success().map(|_| ()) }
    })
    .await;
    let people = t.elapsed().as_secs_f64();
    run_all(
        work.members.iter().enumerate(),
        in_flight,
        |(i, (g, ms))| {
            let mut h = on(i);
            let mods = vec![
                Mod::Add("member".to_owned(), ms.iter().cloned().collect()),
                Mod::Delete("member".to_owned(), HashSet::from([g.clone()])),
            ];
            async move { h.modify(g, mods).await?.success().map(|_| ()) }
        },
    )
    .await;
    let members = t.elapsed().as_secs_f64();
    let cpu_after = cpu(server);
    [
        groups,
        people - groups,
        members - people,
        cpu_after[0] - cpu_before[0],
        cpu_after[1] - cpu_before[1],
    ]
}

async fn run_all<I, F, Fut>(items: I, in_flight: usize, f: F)
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<(), ldap3::LdapError>>,
{
    stream::iter(items.map(f))
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await
        .expect("slapd accepts every write");
}

/// `dir`, noting when the first write is sent (everything before it is reading and planning).
struct FirstWrite<D> {
    inner: D,
    at: OnceLock<Instant>,
}

impl<D> FirstWrite<D> {
    fn mark(&self) {
        self.at.get_or_init(Instant::now);
    }
}

#[async_trait]
impl<D: Directory> Directory for FirstWrite<D> {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        self.inner.read().await
    }
    async fn read_some(&self, anchors: &Anchors) -> Result<Snapshot, DirectoryError> {
        self.inner.read_some(anchors).await
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.create_person(id, attrs, main_dept).await
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.link_person(key, id).await
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.update_person(id, changes).await
    }
    async fn move_person(&self, id: &str, name: &str, dept: &str) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.move_person(id, name, dept).await
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.disable_person(id).await
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.enable_person(id).await
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.delete_person(id).await
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.add_members(dept, people).await
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.remove_members(dept, people).await
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.create_dept(id, name, parent, attrs).await
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.update_dept(id, changes).await
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.move_dept(id, name, parent).await
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        self.mark();
        self.inner.delete_dept(id).await
    }
    async fn read_roles(&self) -> Result<Vec<dingsync::directory::RoleEntry>, DirectoryError> {
        self.inner.read_roles().await
    }
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        self.inner.create_role(id, name, members).await
    }
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        self.inner.rename_role(id, name).await
    }
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        self.inner.role_members(id, add, remove).await
    }
    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        self.inner.delete_role(id).await
    }
    fn writes(&self) -> u64 {
        self.inner.writes()
    }
    fn write_concurrency(&self) -> usize {
        self.inner.write_concurrency()
    }
    async fn read_tree(&self, since: Option<&str>) -> Result<SourceTree, DirectoryError> {
        self.inner.read_tree(since).await
    }
}

async fn directory(server: &Slapd, node: &str) -> LdapDirectory {
    // The pool a target gets (`LdapTarget::from_spec`): the default number of connections.
    let opts = ConnectOptions::new(
        server.url(),
        slapd::SERVICE_DN,
        LdapSecret::new(server.service_password()),
    );
    let pool = Pool::connect(opts).await.expect("connect");
    LdapDirectory::new(
        Store::open(pool, node, Layout::FlatWithGroups, CORP)
            .await
            .expect("open the node"),
    )
}

/// dingsync's first sync of `source` into a fresh node, timed from its first write (its
/// phases end where the apply reports progress); its writes and the LDAP requests they took.
async fn dingsync_apply(server: &Slapd, source: &StaticSource) -> (Phases, u64, u64) {
    let node = server.new_node("bench").expect("node");
    let dir = FirstWrite {
        inner: directory(server, &node).await,
        at: OnceLock::new(),
    };
    let requests = dir.inner.store().pool().writes_sent();
    let ends = std::sync::Mutex::new(vec![]);
    let cpu_began = std::sync::Mutex::new(None);
    let progress = |phase: &str, done: usize, _: Option<usize>| {
        // Each phase's end (the call with nothing done yet marks the start of writing).
        if phase == "Applying" && done > 0 {
            ends.lock().unwrap().push((Instant::now(), cpu(server)));
        } else if phase == "Planning" {
            // Planning is CPU of its own, before the first write: left out as well as can be.
            *cpu_began.lock().unwrap() = Some(cpu(server));
        }
    };
    let report = sync::run(
        source,
        &dir,
        &support::conformance::mapping(),
        &Options::default(),
        false,
        &progress,
    )
    .await
    .expect("sync runs");
    assert!(
        report.failures.is_empty(),
        "{} failures, e.g. {:?}",
        report.failures.len(),
        report.failures.first()
    );
    let began = *dir.at.get().expect("the first sync writes");
    let ends = ends.into_inner().unwrap();
    assert_eq!(ends.len(), 3, "groups, people and members, one phase each");
    let secs = |a: Instant, b: Instant| (b - a).as_secs_f64();
    let cpu_began = cpu_began.into_inner().unwrap().expect("planned");
    let planning = plan_cpu_secs(source);
    let phases = [
        secs(began, ends[0].0),
        secs(ends[0].0, ends[1].0),
        secs(ends[1].0, ends[2].0),
        ends[2].1[0] - cpu_began[0] - planning,
        ends[2].1[1] - cpu_began[1],
    ];
    let requests = dir.inner.store().pool().writes_sent() - requests;
    (phases, report.writes, requests)
}

/// CPU seconds a plan of `source` into an empty node takes (to take out of the apply's).
fn plan_cpu_secs(source: &StaticSource) -> f64 {
    let snapshot = source.0.lock().unwrap().clone().normalise();
    let before = cpu_secs(None);
    let plan = sync::plan::plan(
        &snapshot,
        &Default::default(),
        &support::conformance::mapping(),
        &Options::default(),
    );
    let took = cpu_secs(None) - before;
    drop(plan);
    took
}

/// What a node holds, keyed by source id, with DNs made relative to the node.
fn comparable(s: Snapshot, node: &str) -> BTreeMap<String, String> {
    let rel = |k: &str| k.trim_end_matches(node).to_owned();
    let mut out = BTreeMap::new();
    for p in s.people {
        let mut attrs: Vec<_> = p
            .attrs
            .iter()
            .map(|(k, v)| {
                let mut v = v.to_vec();
                v.sort();
                (k.to_string(), v)
            })
            .collect();
        attrs.sort();
        let line = format!("{} {:?} {:?}", rel(&p.key), attrs, p.departments);
        out.insert(format!("user {}", p.id.unwrap_or_default()), line);
    }
    for d in s.departments {
        let line = format!("{} {} {:?}", rel(&d.key), d.name, d.parent);
        out.insert(format!("dept {}", d.id), line);
    }
    out
}

/// The loader's node, read through dingsync, holds what dingsync's holds.
async fn assert_same_result(server: &Slapd, loader_node: &str, source: &StaticSource) {
    let node = server.new_node("check").expect("node");
    let dir = directory(server, &node).await;
    let report = sync::run(
        source,
        &dir,
        &support::conformance::mapping(),
        &Options::default(),
        false,
        &|_, _, _| {},
    )
    .await
    .expect("sync runs");
    assert!(report.failures.is_empty());
    let theirs = comparable(dir.read().await.expect("read"), &node);
    let loaded = directory(server, loader_node).await;
    let ours = comparable(loaded.read().await.expect("read"), loader_node);
    assert_eq!(ours.len(), theirs.len(), "entries in the two nodes");
    for (k, v) in &theirs {
        assert_eq!(ours.get(k), Some(v), "{k} as the loader wrote it");
    }
}

fn fresh_slapd() -> Slapd {
    Slapd::start().expect("slapd starts")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Loader shapes (connections × requests in flight): one connection one request at a time;
/// dingsync's own (the pool's default connections, `width` in flight); twice as deep, to
/// show what is left. `DINGSYNC_BENCH_CEILING_SHAPES=1x1,4x8,8x32` tries others.
fn shapes(width: usize) -> Vec<(usize, usize)> {
    let pool = pool_size();
    let default = format!("1x1,{pool}x{width},{pool}x{}", 2 * width);
    std::env::var("DINGSYNC_BENCH_CEILING_SHAPES")
        .unwrap_or(default)
        .split(',')
        .filter_map(|s| {
            let (c, f) = s.trim().split_once('x')?;
            Some((c.parse().ok()?, f.parse().ok()?))
        })
        .collect()
}

/// Connections of the pool a target gets (`LdapTarget::from_spec`).
fn pool_size() -> usize {
    ConnectOptions::new("ldap://x", "cn=x", LdapSecret::new("x")).connections
}

/// One run of every writer per round, in turn, each on a fresh slapd.
struct Runs {
    /// Per loader shape, the phases of each round.
    ceiling: Vec<Vec<Phases>>,
    ours: Vec<Phases>,
    /// Department groups, people and member batches written.
    counts: (usize, usize, usize),
    /// LDAP write requests dingsync sent (the loader sends one per write).
    requests: u64,
}

async fn measure(plan: &Plan, source: &StaticSource, shapes: &[(usize, usize)]) -> Runs {
    let rounds = support::bench::env_usize("DINGSYNC_BENCH_CEILING_ROUNDS", 3).max(1);
    let mut runs = Runs {
        ceiling: vec![vec![]; shapes.len()],
        ours: vec![],
        counts: (0, 0, 0),
        requests: 0,
    };
    for round in 0..rounds {
        for (i, &(conns, in_flight)) in shapes.iter().enumerate() {
            let server = fresh_slapd();
            let node = server.new_node("bench").expect("node");
            // The node's containers, as `Store::open` makes them.
            drop(directory(&server, &node).await);
            let work = work_of(plan, &node);
            runs.counts = (
                work.groups.iter().map(Vec::len).sum(),
                work.people.len(),
                work.members.len(),
            );
            let took = load(&server, &work, conns, in_flight).await;
            eprintln!("round {round}: loader {conns} conn × {in_flight}: {took:.2?}");
            runs.ceiling[i].push(took);
            if round == 0 && i == 0 {
                assert_same_result(&server, &node, source).await;
            }
        }
        let server = fresh_slapd();
        let (took, w, requests) = dingsync_apply(&server, source).await;
        eprintln!("round {round}: dingsync apply: {took:.2?}, {w} writes, {requests} requests");
        let (g, p, m) = runs.counts;
        assert_eq!(
            w as usize,
            g + p + m,
            "dingsync and the loader write as much"
        );
        runs.requests = requests;
        runs.ours.push(took);
    }
    runs
}

#[tokio::main]
async fn main() {
    if let Some(why) = slapd::unavailable() {
        panic!("slapd is needed: {why}");
    }
    let people = support::bench::env_usize("DINGSYNC_BENCH_CEILING_PEOPLE", 20_000);
    let snapshot = support::bench::source_snapshot(people, 23).await;
    let source = StaticSource::new(snapshot.clone());
    let plan = sync::plan::plan(
        &snapshot.normalise(),
        &Default::default(),
        &support::conformance::mapping(),
        &Options::default(),
    );
    let width = {
        let server = fresh_slapd();
        let node = server.new_node("probe").expect("node");
        directory(&server, &node).await.write_concurrency()
    };
    let shapes = shapes(width);
    let runs = measure(&plan, &source, &shapes).await;
    report(&runs, &shapes, width);
}

/// Medians per phase and of the totals.
fn medians(runs: &[Phases]) -> (Phases, f64) {
    let phase = |i: usize| median(&runs.iter().map(|p| p[i]).collect::<Vec<_>>());
    let total = median(&runs.iter().map(|p| p[..3].iter().sum()).collect::<Vec<_>>());
    ([phase(0), phase(1), phase(2), phase(3), phase(4)], total)
}

fn report(runs: &Runs, shapes: &[(usize, usize)], width: usize) {
    let (groups, people, batches) = runs.counts;
    let writes = groups + people + batches;
    let rate = |n: usize, secs: f64| n as f64 / secs;
    println!(
        "\n## slapd write ceiling vs dingsync's apply: {people} people, {groups} department \
         groups, {batches} member batches = {writes} writes (medians of {} rounds)",
        runs.ours.len()
    );
    println!(
        "| writer | time (s) | writes/s | groups/s | people/s | member batches/s | \
         writer CPU µs/write | slapd CPU µs/write | dingsync / this |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (ours_p, ours) = medians(&runs.ours);
    let row = |name: String, p: Phases, total: f64, ratio: String| {
        println!(
            "| {name} | {total:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {ratio} |",
            rate(writes, total),
            rate(groups, p[0]),
            rate(people, p[1]),
            rate(batches, p[2]),
            p[3] * 1e6 / writes as f64,
            p[4] * 1e6 / writes as f64,
        )
    };
    let mut best = f64::INFINITY;
    for (&(conns, in_flight), times) in shapes.iter().zip(&runs.ceiling) {
        let (p, total) = medians(times);
        best = best.min(total);
        let name = format!("ldap3 loader, {conns} connection(s), {in_flight} in flight");
        row(name, p, total, format!("{:.3}", total / ours));
    }
    let name = format!(
        "dingsync apply ({} connections, {width} in flight)",
        pool_size()
    );
    row(name, ours_p, ours, String::new());
    let ratio = best / ours;
    println!(
        "| **dingsync / best ceiling** | | | | | | | | **{ratio:.3}** (bound ≥ {BOUND:.2}: {}) |",
        if ratio >= BOUND { "ok" } else { "MISSED" }
    );
    let totals = |v: &[Phases]| {
        v.iter()
            .map(|p| format!("{:.2}", p[..3].iter().sum::<f64>()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for ((conns, in_flight), t) in shapes.iter().zip(&runs.ceiling) {
        println!("loader {conns}×{in_flight} runs (s): {}", totals(t));
    }
    println!("dingsync runs (s): {}", totals(&runs.ours));
    println!(
        "LDAP write requests: loader {writes}, dingsync {}",
        runs.requests
    );
}
