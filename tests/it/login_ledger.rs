//! The login's single-use ledger as the controller keeps it, in Kubernetes Leases: two replicas
//! (two ledgers on one API server) agree that a code is used once, see each other's
//! revocations, never put the id itself into the API, and clean up what expired.

use std::sync::Arc;

use dingsync::{controller::login::LeaseLedger, login::Ledger};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, api::ListParams};
use kube_fake_client::ClientBuilder;

const NS: &str = "dingsync-system";

#[tokio::test]
async fn two_replicas_share_single_use_and_revocation_through_leases() {
    let client = ClientBuilder::new().build().await.expect("fake client");
    let a = Arc::new(LeaseLedger::new(client.clone(), NS));
    let b = Arc::new(LeaseLedger::new(client.clone(), NS));
    let now = Timestamp::now();
    let soon = now + SignedDuration::from_secs(60);
    let code = "code-id-kXq3";

    assert!(a.first_use(code, soon).await.unwrap(), "first redemption");
    assert!(
        !b.first_use(code, soon).await.unwrap(),
        "the other replica refuses the second"
    );
    assert!(
        !a.first_use(code, soon).await.unwrap(),
        "and so does the first"
    );
    assert!(b.first_use("another", soon).await.unwrap());

    assert!(!a.revoked(code).await.unwrap());
    b.revoke(code, now + SignedDuration::from_hours(1))
        .await
        .unwrap();
    b.revoke(code, now + SignedDuration::from_hours(1))
        .await
        .unwrap();
    assert!(a.revoked(code).await.unwrap(), "revocation seen everywhere");

    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let names: Vec<String> = leases
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("kXq3")),
        "ids are hashed: {names:?}"
    );

    // The codes' records expire after a minute, the revocation after an hour.
    let gone = a
        .forget_expired(now + SignedDuration::from_mins(2))
        .await
        .unwrap();
    assert_eq!(gone, 2);
    assert!(b.revoked(code).await.unwrap());
    assert!(
        b.first_use(code, soon).await.unwrap(),
        "an expired record is forgotten"
    );
    assert_eq!(
        b.forget_expired(now + SignedDuration::from_hours(2))
            .await
            .unwrap(),
        2
    );
    assert!(!a.revoked(code).await.unwrap());
}
