//! Event delivery: the event log, event faults, and the queues of each channel — Stream
//! connections with their pending and in-flight events, and HTTP callback registrations with
//! their pending pushes and failed list. The wire side lives in `sim/stream.rs` and
//! `sim/webhook.rs`; this part only keeps the books.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::event::Event;

/// Event-delivery faults applied to the next events on every channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EventFaults {
    /// Drop the next N events (never delivered).
    #[serde(default)]
    pub drop: u32,
    /// Deliver the next N events twice.
    #[serde(default)]
    pub duplicate: u32,
    /// Swap the next N pairs of consecutive events.
    #[serde(default)]
    pub reorder: u32,
}

/// Per-app Stream delivery queue.
#[derive(Default)]
pub struct AppQueue {
    pub pending: VecDeque<Pending>,
    pub inflight: HashMap<String, Inflight>,
}

pub struct Pending {
    pub event: Event,
    pub not_before: Instant,
    pub enqueued: Instant,
    pub attempts: u32,
}

impl Pending {
    pub fn new(event: Event) -> Self {
        let now = Instant::now();
        Self {
            event,
            not_before: now,
            enqueued: now,
            attempts: 0,
        }
    }
}

pub struct Inflight {
    pub event: Event,
    pub sent: Instant,
    pub conn: u64,
    pub attempts: u32,
    pub enqueued: Instant,
}

impl Inflight {
    /// Back to pending, due at `not_before`, keeping its age and attempts.
    pub fn requeue(self, not_before: Instant) -> Pending {
        Pending {
            event: self.event,
            not_before,
            enqueued: self.enqueued,
            attempts: self.attempts,
        }
    }
}

/// Message for a Stream connection task.
#[derive(Debug)]
pub enum ConnCmd {
    Frame(String),
    /// SYSTEM disconnect then close after the grace period (graceful), or drop now.
    Disconnect {
        graceful: bool,
    },
}

/// What a Stream client registered in `connections/open`: DingTalk pushes a connection only
/// the EVENTs and CALLBACK topics it named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriptions {
    /// Subscribed to `{"type":"EVENT","topic":"*"}`.
    pub events: bool,
    /// CALLBACK topics, e.g. `/v1.0/im/bot/messages/get`.
    pub callbacks: HashSet<String>,
}

pub struct ConnHandle {
    pub app_key: String,
    pub subscriptions: Subscriptions,
    pub tx: tokio::sync::mpsc::UnboundedSender<ConnCmd>,
    pub opened_ms: i64,
    /// Told to go away (SYSTEM disconnect sent): no new events are routed to it.
    pub draining: bool,
}

/// How a callback was registered: it decides owner key and payload shape.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStyle {
    /// `/call_back/register_call_back`: owner key = corpId, PascalCase payload, tag filter.
    Legacy,
    /// Developer-console subscription: owner key = AppKey, console payload, all events.
    Console,
}

#[derive(Clone, Serialize)]
pub struct CallbackReg {
    pub style: CallbackStyle,
    pub url: String,
    #[serde(skip)]
    pub token: String,
    #[serde(skip)]
    pub aes_key: String,
    pub tags: Vec<String>,
}

#[derive(Default)]
pub struct CallbackQueue {
    pub reg: Option<CallbackReg>,
    pub pending: VecDeque<Pending>,
    /// Given-up events, in the `get_call_back_failed_result` shape.
    pub failed: VecDeque<Value>,
    pub busy: bool,
}

const EVENT_LOG_CAP: usize = 10_000;

pub struct Delivery {
    pub event_faults: EventFaults,
    /// Event held back by a reorder fault.
    pub held: Option<Event>,
    pub event_log: VecDeque<Event>,
    pub conns: BTreeMap<u64, ConnHandle>,
    pub next_conn: u64,
    /// Apps that opened a Stream connection at least once (subscribed).
    pub stream_apps: HashSet<String>,
    /// Subscriptions of Stream tickets not yet used to connect.
    pub ticket_subscriptions: HashMap<String, Subscriptions>,
    pub queues: HashMap<String, AppQueue>,
    pub callbacks: HashMap<String, CallbackQueue>,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            event_faults: EventFaults::default(),
            held: None,
            event_log: VecDeque::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            stream_apps: HashSet::new(),
            ticket_subscriptions: HashMap::new(),
            queues: HashMap::new(),
            callbacks: HashMap::new(),
        }
    }
}

impl Delivery {
    /// Logs an event and queues it for every subscribed channel, applying event faults.
    /// `false` when a `drop` fault swallowed it.
    pub fn publish(&mut self, ev: Event) -> bool {
        self.event_log.push_back(ev.clone());
        if self.event_log.len() > EVENT_LOG_CAP {
            self.event_log.pop_front();
        }
        if self.event_faults.drop > 0 {
            self.event_faults.drop -= 1;
            return false;
        }
        let mut batch = vec![ev];
        if self.event_faults.duplicate > 0 {
            self.event_faults.duplicate -= 1;
            batch.push(batch[0].clone());
        }
        // Reorder: hold this event back and queue it right after the next one.
        if self.event_faults.reorder > 0 && self.held.is_none() {
            self.event_faults.reorder -= 1;
            self.held = batch.pop();
        } else if let Some(h) = self.held.take() {
            batch.push(h);
        }
        for e in batch {
            self.enqueue(e);
        }
        true
    }

    /// Replaces the event faults; switching reordering off queues a held-back event now.
    pub fn set_event_faults(&mut self, f: EventFaults) {
        if f.reorder == 0 {
            self.flush_held();
        }
        self.event_faults = f;
    }

    /// Queues a held-back event now (when reordering is switched off).
    pub fn flush_held(&mut self) {
        if let Some(h) = self.held.take() {
            self.enqueue(h);
        }
    }

    fn enqueue(&mut self, e: Event) {
        for app in &self.stream_apps {
            let q = self.queues.entry(app.clone()).or_default();
            q.pending.push_back(Pending::new(e.clone()));
        }
        for cb in self.callbacks.values_mut() {
            if let Some(reg) = &cb.reg
                && (reg.style == CallbackStyle::Console || reg.tags.contains(&e.event_type))
            {
                cb.pending.push_back(Pending::new(e.clone()));
            }
        }
    }

    /// Registers an open Stream connection; returns its id.
    pub fn open_conn(&mut self, conn: ConnHandle) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, conn);
        id
    }

    /// Forgets a closed connection; what it had in flight goes back to the front of its app's
    /// queue for another connection.
    pub fn close_conn(&mut self, conn_id: u64, app_key: &str) {
        self.conns.remove(&conn_id);
        let Some(q) = self.queues.get_mut(app_key) else {
            return;
        };
        let ids: Vec<String> = q
            .inflight
            .iter()
            .filter(|(_, i)| i.conn == conn_id)
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            if let Some(i) = q.inflight.remove(&id) {
                q.pending.push_front(i.requeue(Instant::now()));
            }
        }
    }

    /// Tells the connections (of one app, or all) to go away; returns how many were told.
    pub fn disconnect(&mut self, app_key: Option<&str>, graceful: bool) -> usize {
        let mut n = 0;
        for c in self.conns.values_mut() {
            if app_key.is_none_or(|k| k == c.app_key)
                && c.tx.send(ConnCmd::Disconnect { graceful }).is_ok()
            {
                c.draining = true;
                n += 1;
            }
        }
        n
    }

    /// Open connections as `{id, app_key, opened_ms, draining, events, callbacks}`.
    pub fn connections(&self) -> Vec<Value> {
        self.conns
            .iter()
            .map(|(id, c)| {
                let mut topics: Vec<&String> = c.subscriptions.callbacks.iter().collect();
                topics.sort();
                json!({"id": id, "app_key": c.app_key, "opened_ms": c.opened_ms,
                       "draining": c.draining, "events": c.subscriptions.events, "callbacks": topics})
            })
            .collect()
    }
}
