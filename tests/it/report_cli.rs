//! `dingsync report` and `approve` as commands: the kubectl plugin name, and what they say
//! without a cluster. Their reading and filtering run against the fake API in `controller`.

use std::process::Command;

#[test]
fn installed_as_kubectl_dingsync_it_is_a_kubectl_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-dingsync");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dingsync"), &plugin).unwrap();
    let out = Command::new(&plugin)
        .args(["report", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("kubectl dingsync report"), "{help}");
    for option in ["--failed", "--reason", "--output", "--namespace"] {
        assert!(help.contains(option), "{option} in {help}");
    }
    let approve = Command::new(&plugin)
        .args(["approve", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&approve.stdout).contains("--yes"));
}

#[test]
fn without_a_cluster_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dingsync"))
        .args(["report", "acme-to-ldap", "--failed"])
        .env("KUBECONFIG", dir.path().join("missing"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Kubernetes client"), "{err}");
}
