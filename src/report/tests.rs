use super::{store::*, *};

fn failing(n: usize, reason: &str) -> Vec<ReportFailure> {
    (0..n)
        .map(|i| ReportFailure {
            kind: "User".into(),
            id: format!("user{i:05}"),
            name: format!("员工 {i}"),
            dn: Some(format!(
                "uid=user{i:05},ou=people,ou=acme,dc=example,dc=com"
            )),
            reason: reason.into(),
            message: format!("attribute mail: template error in rule {i}: undefined value"),
        })
        .collect()
}

fn report(run: RunKind, at: i64, failures: Vec<ReportFailure>) -> RunReport {
    RunReport {
        run,
        trigger: "Interval".into(),
        start_time: Some(jiff::Timestamp::from_second(at).unwrap()),
        end_time: Some(jiff::Timestamp::from_second(at + 5).unwrap()),
        complete: true,
        failures,
        ..Default::default()
    }
}

#[test]
fn ten_thousand_failures_are_paged_and_read_back_whole() {
    let big = report(RunKind::Full, 100, failing(10_000, "TemplateError"));
    let pages = encode_report("acme", None, 7, &big);
    assert!(pages.len() >= 2, "{} pages", pages.len());
    for p in &pages {
        let size: usize = p.data.as_ref().unwrap().values().map(String::len).sum();
        assert!(size < 1000 * 1024, "a page of {size} bytes");
    }
    assert_eq!(pages[0].metadata.name.as_deref(), Some("acme-report-7"));
    assert_eq!(pages[1].metadata.name.as_deref(), Some("acme-report-7-1"));
    let back = decode_report(&pages).unwrap();
    assert_eq!(back, big);
    let index = encode_index("acme", None, &[Entry::of(7, pages.len(), &big)]);
    assert_eq!(index.metadata.name.as_deref(), Some("acme-reports"));
    let entries = decode_index(&index).unwrap();
    assert_eq!((entries[0].seq, entries[0].pages), (7, pages.len()));
    assert_eq!(entries[0].reasons["TemplateError"], 10_000);
    assert_eq!(entries[0].first.len(), STATUS_FAILURES);
}

#[test]
fn status_lists_the_first_few_current_failures_and_counts_them_by_reason() {
    let mut events = report(RunKind::Events, 300, failing(1, "DirectoryRejected"));
    events.failures[0].id = "late".into();
    let kept = vec![
        events,
        report(RunKind::Full, 200, failing(1_000, "TemplateError")),
        // Older than the last full run: fixed or not, that run saw again.
        report(RunKind::Full, 100, failing(7, "Old")),
    ];
    let s = summarize(&kept);
    assert_eq!(s.failures.len(), STATUS_FAILURES);
    assert_eq!(s.failures[0].id, "late", "sorted by reason, then id");
    assert_eq!(s.failures[1].id, "user00000");
    assert_eq!(s.truncated, Some(1_001 - STATUS_FAILURES as i64));
    let reasons: Vec<(&str, i64)> = s
        .reasons
        .iter()
        .map(|r| (r.reason.as_str(), r.count))
        .collect();
    assert_eq!(
        reasons,
        [("TemplateError", 1_000), ("DirectoryRejected", 1)]
    );
}

#[test]
fn event_reports_of_one_window_become_one() {
    let mut a = report(RunKind::Events, 10, failing(1, "X"));
    a.batches = 1;
    a.count([("created", 1)]);
    let mut b = report(RunKind::Events, 20, failing(2, "Y"));
    b.batches = 1;
    b.count([("created", 2), ("updated", 1)]);
    let poll = report(RunKind::Poll, 15, vec![]);
    let merged = merge_event_reports(vec![a, poll, b]);
    assert_eq!(merged.len(), 2);
    let events = merged.iter().find(|r| r.run == RunKind::Events).unwrap();
    assert_eq!(events.batches, 2);
    assert_eq!(events.failures.len(), 3);
    assert_eq!(events.counts["created"], 3);
    assert_eq!(events.start_time.unwrap().as_second(), 10);
    assert_eq!(events.end_time.unwrap().as_second(), 25);
}

#[test]
fn index_names_each_run_in_one_line() {
    let mut r = report(RunKind::Full, 0, failing(2, "X"));
    r.count([("created", 3), ("deleted", 0)]);
    let index = encode_index("acme", None, &[Entry::of(1, 1, &r)]);
    let index = &index.data.as_ref().unwrap()[INDEX_KEY];
    assert_eq!(
        index,
        "Full@1970-01-01T00:00:00Z Interval created=3 failed=2\n"
    );
}
