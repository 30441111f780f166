//! Run reports: what one run (a full sync, a window of event batches, an Outbound poll) did,
//! kept per target in ConfigMaps so `kubectl` and `dingsync report` read them without a
//! database. This module holds the record and what is derived from it (the status summary,
//! the log lines); `store` keeps them in ConfigMaps.

pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::target::{Failure, ReasonCount};

/// What kind of run a report is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunKind {
    /// A full sync (Inbound or Outbound).
    #[default]
    Full,
    /// Event batches applied between two reconciles of the target.
    Events,
    /// An Outbound poll that saw changes and pushed them.
    Poll,
}

/// One object a run could not sync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReportFailure {
    /// `User`, `Person` or `Department`.
    pub kind: String,
    /// DingTalk userid or dept_id (Outbound: the directory anchor).
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The directory entry's DN or SCIM externalId, when the run knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    /// Stable CamelCase code, e.g. `TemplateError`, `DirectoryRejected`, `InvalidValue`.
    pub reason: String,
    pub message: String,
}

impl From<&Failure> for ReportFailure {
    fn from(f: &Failure) -> Self {
        Self {
            kind: f.kind.clone(),
            id: f.id.clone(),
            name: f.name.clone().unwrap_or_default(),
            dn: f.dn.clone(),
            reason: f.reason.clone(),
            message: f.message.clone(),
        }
    }
}

impl From<&ReportFailure> for Failure {
    fn from(f: &ReportFailure) -> Self {
        Self {
            kind: f.kind.clone(),
            id: f.id.clone(),
            name: (!f.name.is_empty()).then(|| f.name.clone()),
            reason: f.reason.clone(),
            message: f.message.clone(),
            dn: f.dn.clone(),
        }
    }
}

/// Someone a lacking list names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// Who lacks a mobile or an email: exact counts, and the people (capped by the run).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LackingReport {
    pub missing_mobile: i64,
    pub missing_email: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobile: Vec<Named>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email: Vec<Named>,
}

impl LackingReport {
    pub fn of(mobile: usize, email: usize, lacking: &crate::sync::lacking::Lacking) -> Self {
        let named = |l: &[crate::sync::lacking::Named]| {
            l.iter()
                .map(|n| Named {
                    id: n.id.clone(),
                    name: n.name.clone(),
                })
                .collect()
        };
        Self {
            missing_mobile: mobile as i64,
            missing_email: email as i64,
            mobile: named(&lacking.mobile),
            email: named(&lacking.email),
        }
    }

    fn is_empty(&self) -> bool {
        self.missing_mobile == 0 && self.missing_email == 0
    }
}

/// Removals the deletion gate held back.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldDeletions {
    pub removals: i64,
    pub owned: i64,
    /// The approve annotation's value that lets exactly these removals through.
    pub token: String,
    pub message: String,
    /// What would be removed, one line each (`disable 张三`), when the run listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<String>,
}

/// What one run did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub run: RunKind,
    /// `Created`, `SpecChanged`, `Interval`, `Requested`, `Approved`, `EventsAsked` (full),
    /// `Event` (event batches), `Poll` (Outbound poll).
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<jiff::Timestamp>,
    /// False when the source read was incomplete (nothing was removed).
    pub complete: bool,
    /// Event batches this report covers (event reports only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batches: u64,
    /// Objects by what was done to them: `created`, `updated`, `moved`, `disabled`,
    /// `enabled`, `deleted`, `unchanged` (zeros left out).
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ReportFailure>,
    #[serde(default, skip_serializing_if = "LackingReport::is_empty")]
    pub lacking: LackingReport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldDeletions>,
    /// Why the run could not complete at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The verbs a report counts, in the order tables show them.
pub const VERBS: [&str; 7] = [
    "created",
    "updated",
    "moved",
    "disabled",
    "enabled",
    "deleted",
    "unchanged",
];

impl RunReport {
    /// Sets `counts` from (verb, n) pairs, leaving zeros out.
    pub fn count(&mut self, pairs: impl IntoIterator<Item = (&'static str, i64)>) {
        for (verb, n) in pairs {
            if n != 0 {
                *self.counts.entry(verb.to_string()).or_default() += n;
            }
        }
    }

    /// Folds a later report of the same kind into this one (event batches of one window).
    pub fn absorb(&mut self, later: RunReport) {
        self.batches += later.batches;
        self.complete &= later.complete;
        self.start_time = match (self.start_time, later.start_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.end_time = self.end_time.max(later.end_time);
        for (verb, n) in later.counts {
            *self.counts.entry(verb).or_default() += n;
        }
        self.failures.extend(later.failures);
        self.lacking.missing_mobile += later.lacking.missing_mobile;
        self.lacking.missing_email += later.lacking.missing_email;
        self.lacking.mobile.extend(later.lacking.mobile);
        self.lacking.email.extend(later.lacking.email);
        self.held = later.held.or(self.held.take());
        self.error = match (self.error.take(), later.error) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
    }

    /// A short id: the kind of run and when it started, e.g. `Full@2026-12-05T13:50:00Z`.
    pub fn id(&self) -> String {
        let at = self
            .start_time
            .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
            .unwrap_or_default();
        format!("{:?}@{at}", self.run)
    }
}

/// Event reports taken together become one report (a window of batches): event batches come
/// every few seconds, and one report each would push full syncs out of the kept ones.
pub fn merge_event_reports(reports: Vec<RunReport>) -> Vec<RunReport> {
    let mut out: Vec<RunReport> = vec![];
    let mut events: Option<RunReport> = None;
    for r in reports {
        if r.run == RunKind::Events {
            match &mut events {
                Some(e) => e.absorb(r),
                None => events = Some(r),
            }
        } else {
            out.push(r);
        }
    }
    out.extend(events);
    out.sort_by_key(|r| r.start_time);
    out
}

/// Failures status lists; the rest are counted by reason and kept in the reports.
pub const STATUS_FAILURES: usize = 5;

/// What `status.failures`, `failuresTruncated` and `failureReasons` say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSummary {
    pub failures: Vec<Failure>,
    pub truncated: Option<i64>,
    pub reasons: Vec<ReasonCount>,
}

/// A kept report as the index lists it: where it is, one line saying what it did, and its
/// failures as far as status needs them (counts by reason, the first few).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Its number: its ConfigMaps are `<target>-report-<seq>` (and `-<k>` for more pages).
    pub seq: u64,
    pub pages: usize,
    pub run: RunKind,
    pub line: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, i64>,
    /// The first [`STATUS_FAILURES`] failures by reason and id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first: Vec<ReportFailure>,
}

fn failure_order(a: &&ReportFailure, b: &&ReportFailure) -> std::cmp::Ordering {
    (&a.reason, &a.id, &a.kind).cmp(&(&b.reason, &b.id, &b.kind))
}

impl Entry {
    pub fn of(seq: u64, pages: usize, r: &RunReport) -> Self {
        let mut reasons = BTreeMap::new();
        for f in &r.failures {
            *reasons.entry(f.reason.clone()).or_default() += 1;
        }
        let mut sorted: Vec<&ReportFailure> = r.failures.iter().collect();
        sorted.sort_by(failure_order);
        Self {
            seq,
            pages,
            run: r.run,
            line: r.line(),
            reasons,
            first: sorted.into_iter().take(STATUS_FAILURES).cloned().collect(),
        }
    }
}

impl RunReport {
    /// One line: the run, when, its counts and failures.
    pub fn line(&self) -> String {
        let counts: Vec<String> = (self.counts.iter())
            .map(|(v, n)| format!("{v}={n}"))
            .collect();
        let held = (self.held.as_ref())
            .map(|h| format!(" held={}", h.removals))
            .unwrap_or_default();
        format!(
            "{} {} {} failed={}{held}",
            self.id(),
            self.trigger,
            counts.join(" "),
            self.failures.len()
        )
    }
}

/// The current failures of `kept` (newest first): those of the newest full run and of the
/// event batches and polls after it, counted by reason (most first) and the first few sorted
/// by reason and id.
pub fn summarize(kept: &[RunReport]) -> StatusSummary {
    let entries: Vec<Entry> = kept.iter().map(|r| Entry::of(0, 0, r)).collect();
    summarize_entries(&entries)
}

/// [`summarize`] from the index alone.
pub fn summarize_entries(kept: &[Entry]) -> StatusSummary {
    let mut first: Vec<&ReportFailure> = vec![];
    let mut by_reason: BTreeMap<&str, i64> = BTreeMap::new();
    for e in kept {
        first.extend(&e.first);
        for (reason, n) in &e.reasons {
            *by_reason.entry(reason.as_str()).or_default() += n;
        }
        if e.run == RunKind::Full {
            break;
        }
    }
    let total: i64 = by_reason.values().sum();
    let mut reasons: Vec<ReasonCount> = by_reason
        .into_iter()
        .map(|(reason, count)| ReasonCount {
            reason: reason.to_string(),
            count,
        })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    first.sort_by(failure_order);
    let failures: Vec<Failure> = (first.iter().take(STATUS_FAILURES))
        .map(|f| Failure::from(*f))
        .collect();
    let extra = total - failures.len() as i64;
    StatusSummary {
        failures,
        truncated: (extra > 0).then_some(extra),
        reasons,
    }
}

/// Writes one log line per failed object (warn, `event=object_failed`, the failure's message
/// as the line's message) and one per run with its counts (info, `event=run_finished`).
/// Failures carry only what the report shows: ids, names, reasons and messages, never a
/// credential.
pub fn log(target: &str, r: &RunReport) {
    for f in &r.failures {
        tracing::warn!(
            target = target,
            run = ?r.run,
            kind = %f.kind,
            id = %f.id,
            name = %f.name,
            dn = f.dn.as_deref().unwrap_or(""),
            reason = %f.reason,
            event = "object_failed",
            "{}",
            f.message
        );
    }
    let count = |verb: &str| r.counts.get(verb).copied().unwrap_or(0);
    tracing::info!(
        target = target,
        run = ?r.run,
        trigger = %r.trigger,
        complete = r.complete,
        created = count("created"),
        updated = count("updated"),
        moved = count("moved"),
        disabled = count("disabled"),
        enabled = count("enabled"),
        deleted = count("deleted"),
        unchanged = count("unchanged"),
        failed = r.failures.len(),
        held = r.held.as_ref().map_or(0, |h| h.removals),
        error = r.error.as_deref().unwrap_or(""),
        event = "run_finished",
        "{:?} run finished",
        r.run
    );
}

#[cfg(test)]
mod tests;
