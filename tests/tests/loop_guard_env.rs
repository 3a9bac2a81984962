//! The loop guard's process-wide defaults from `TRACER_LOOP_MAX_HOPS`, `TRACER_LOOP_MAX_REPEATS`
//! and `TRACER_LOOP_GUARD=off`: read once, so each case runs in a child process of its own.

#[path = "support/loops.rs"]
mod loops;

use loops::*;
use tracer_runtime::LoopGuard;

/// Runs `env_probe` in a child process with `vars` and `PROBE_CASE=case`.
fn probe(case: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "env_probe",
        "--ignored",
        "--test-threads=1",
        "--nocapture",
    ])
    .env("PROBE_CASE", case);
    for v in [
        "TRACER_LOOP_MAX_HOPS",
        "TRACER_LOOP_MAX_REPEATS",
        "TRACER_LOOP_GUARD",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{case} {vars:?}:\n{text}"
    );
    text
}

#[test]
fn max_repeats_from_the_environment() {
    probe("repeats-1", &[("TRACER_LOOP_MAX_REPEATS", "1")]);
}

#[test]
fn max_hops_from_the_environment() {
    probe("hops-2", &[("TRACER_LOOP_MAX_HOPS", "2")]);
}

#[test]
fn the_guard_switched_off_from_the_environment() {
    probe("off", &[("TRACER_LOOP_GUARD", "off")]);
}

#[test]
fn a_bad_value_is_reported_and_the_defaults_kept() {
    let text = probe("defaults", &[("TRACER_LOOP_MAX_HOPS", "lots")]);
    assert!(
        text.contains(
            "tracer: the call-loop guard ignores TRACER_LOOP_MAX_HOPS=\"lots\": a non-negative integer"
        ),
        "{text}"
    );
    assert_eq!(
        LoopGuard::from_env().map(|_| ()),
        Ok(()),
        "this process has no such variable"
    );
}

#[tokio::test]
#[ignore = "run in a child process by the tests above"]
async fn env_probe() {
    let case = std::env::var("PROBE_CASE").unwrap();
    // Layers built with no `.with_loop_guard(..)`: the process-wide defaults.
    install("env-a");
    node("env-a", Proto::Http, LoopGuard::new()).await;
    node("env-g", Proto::Grpc, LoopGuard::new()).await;
    let with_path = |p: &str| format!("tracer.path={p}");
    let ask = |node: &'static str, path: String| async move {
        call_with(node, "", false, &[("baggage", path.as_str())]).await
    };
    match case.as_str() {
        "repeats-1" => {
            for n in ["env-a", "env-g"] {
                assert!(ask(n, with_path(&format!("2:{n}>x"))).await.is_ok());
                let err = ask(n, with_path(&format!("4:{n}>x>{n}>x")))
                    .await
                    .unwrap_err();
                assert!(
                    err.contains(&format!("call loop: {n} > x > {n} > …")),
                    "{err}"
                );
            }
        }
        "hops-2" => {
            for n in ["env-a", "env-g"] {
                assert!(ask(n, with_path("2:x>y")).await.is_ok());
                let err = ask(n, with_path("3:x>y>z")).await.unwrap_err();
                assert!(
                    err.contains(&format!(
                        "call chain too long: 3 calls (at most 2): x > y > z > {n}"
                    )),
                    "{err}"
                );
            }
        }
        "off" => {
            assert!(!LoopGuard::new().is_on());
            let many = ["env-a"; 20].join(">");
            for n in ["env-a", "env-g"] {
                assert!(ask(n, with_path(&format!("40:{many}"))).await.is_ok());
            }
            // The clients carry no path either: env-a calls env-g, which sees none.
            assert_eq!(call("env-a", "env-g", false).await.unwrap(), "env-a>env-g");
        }
        "defaults" => {
            assert_eq!(LoopGuard::new(), LoopGuard::BUILT_IN);
            let p5 = ["env-a"; 5].join(">");
            assert!(ask("env-a", with_path(&format!("9:{p5}"))).await.is_err());
            let p4 = ["env-a"; 4].join(">");
            assert!(ask("env-a", with_path(&format!("9:{p4}"))).await.is_ok());
        }
        other => panic!("unknown case {other}"),
    }
}
