//! The sample mesh under `examples/baseline.yaml` in each egress mode, row by row, over IPv4
//! and IPv6; and once, the proof that every refused row passes traffic while the baseline
//! only audits (no NetworkPolicy written), so that none of them can pass by accident.

use serde_json::{json, Value};

use crate::mesh::{self, Session};
use crate::rows::{self, Mode};
use crate::sample::SAMPLE;
use crate::TestResult;

fn with_mode(mode: Mode) -> impl FnOnce(&mut Value) {
    move |spec: &mut Value| match mode {
        Mode::AllowList => {}
        Mode::ClusterOnly => spec["network"]["egress"]["mode"] = json!("ClusterOnly"),
        Mode::Unrestricted => spec["network"]["egress"] = json!({"mode": "Unrestricted"}),
    }
}

/// Enforces `mode` on the sample mesh and checks every row.
async fn enforce(session: &Session, mode: Mode) -> TestResult {
    let baseline = mesh::example_baseline(with_mode(mode))?;
    session.apply_baseline(&baseline, "Enforced").await?;
    let seen = rows::run(&session.mesh, SAMPLE).await?;
    println!("{mode:?}\n{}", rows::table(&seen));
    let wrong = rows::mismatches(&seen, mode);
    if wrong.is_empty() {
        return Ok(());
    }
    let detail = format!("{} rows differ:\n{}", wrong.len(), wrong.join("\n"));
    Err(crate::failure(
        &session.mesh.node,
        &format!("{mode:?}"),
        detail,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_refused_rows_pass_while_auditing_and_close_when_enforced() -> TestResult {
    let session = Session::start().await?;
    let result = async {
        // Audit: the operator writes nothing, so every row the baseline refuses must pass.
        let audit = mesh::example_baseline(|spec| spec["mode"] = json!("Audit"))?;
        session.apply_baseline(&audit, "AuditOnly").await?;
        let refused = rows::refused_rows(SAMPLE, Mode::AllowList);
        let seen = rows::run(&session.mesh, &refused).await?;
        let closed: Vec<String> = seen
            .iter()
            .filter(|s| !s.outcome.is_open())
            .map(rows::Seen::describe)
            .collect();
        if !closed.is_empty() || seen.len() < 30 {
            let closed = closed.join(
                "
",
            );
            return Err(format!(
                "{} probes; closed without a NetworkPolicy:
{closed}",
                seen.len()
            )
            .into());
        }
        enforce(&session, Mode::AllowList).await
    }
    .await;
    session.end(result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_only_rows() -> TestResult {
    let session = Session::start().await?;
    let result = enforce(&session, Mode::ClusterOnly).await;
    session.end(result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrestricted_rows() -> TestResult {
    let session = Session::start().await?;
    let result = enforce(&session, Mode::Unrestricted).await;
    session.end(result).await
}
