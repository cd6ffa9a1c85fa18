//! What a tenant with `edit` in its namespace would try, to switch the baseline off without
//! touching a generated object: the chart's RBAC and Kubernetes' `edit` role must refuse each
//! (the generated objects themselves are the scenario suite's). A near miss proves the client
//! really is the tenant with `edit`.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use meshbaseline::api::MeshBaseline;
use meshbaseline_e2e::real::OPERATOR_NAMESPACE;
use serde_json::json;

use crate::{real_cluster, TestResult};

const NS: &str = "tenant-probe";

fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>, wrong: &mut Vec<String>) {
    match r {
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        other => wrong.push(format!("{what}: not refused: {other:?}")),
    }
}

async fn allowed(tenant: &kube::Client, attrs: ResourceAttributes) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attrs),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(tenant.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[tokio::test]
async fn a_tenant_with_edit_cannot_reach_the_baseline_or_the_operator() -> TestResult {
    let cluster = real_cluster().await?;
    let label = "e2e.meshbaseline.dev/scenario";
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": NS, "labels": {label: NS}}});
    cluster.apply_as("meshbaseline-e2e", &ns, true).await?;
    let baseline = json!({"apiVersion": "meshbaseline.dev/v1alpha1", "kind": "MeshBaseline",
        "metadata": {"name": NS}, "spec": {"namespaceSelector": {"matchLabels": {label: NS}}}});
    cluster
        .apply_as("meshbaseline-e2e", &baseline, true)
        .await?;
    let tenant = cluster.tenant_client();
    let mut wrong = Vec::new();

    // Leave the baseline's selection by relabelling the namespace.
    let namespaces: Api<Namespace> = Api::all(tenant.clone());
    let unlabel = json!({"metadata": {"labels": {label: null}}});
    refused(
        "relabel own namespace",
        namespaces
            .patch(NS, &PatchParams::default(), &Patch::Merge(&unlabel))
            .await,
        &mut wrong,
    );
    // Edit or delete the baseline.
    let baselines: Api<DynamicObject> =
        Api::all_with(tenant.clone(), &ApiResource::erase::<MeshBaseline>(&()));
    let audit = json!({"spec": {"mode": "Audit"}});
    refused(
        "switch the baseline to Audit",
        baselines
            .patch(NS, &PatchParams::default(), &Patch::Merge(&audit))
            .await,
        &mut wrong,
    );
    refused(
        "delete the baseline",
        baselines.delete(NS, &DeleteParams::default()).await,
        &mut wrong,
    );
    // Take the operator's Lease (a follower that never leads writes nothing).
    let leases: Api<Lease> = Api::namespaced(tenant.clone(), OPERATOR_NAMESPACE);
    refused(
        "read the operator's Lease",
        leases.get("meshbaseline-leader").await,
        &mut wrong,
    );
    // Grant itself more: bind cluster-admin in its namespace.
    let bindings: Api<RoleBinding> = Api::namespaced(tenant.clone(), NS);
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "escalate", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": meshbaseline_e2e::real::TENANT_USER}]
    }))?;
    refused(
        "bind cluster-admin",
        bindings.create(&PostParams::default(), &binding).await,
        &mut wrong,
    );
    // Become the operator: impersonate its ServiceAccount, or mint a token for it.
    let operator_sa = |verb: &str, sub: Option<&str>| ResourceAttributes {
        verb: Some(verb.into()),
        resource: Some("serviceaccounts".into()),
        subresource: sub.map(Into::into),
        namespace: Some(OPERATOR_NAMESPACE.into()),
        name: Some("meshbaseline".into()),
        ..Default::default()
    };
    for (what, attrs) in [
        ("impersonate the operator", operator_sa("impersonate", None)),
        (
            "mint a token for the operator",
            operator_sa("create", Some("token")),
        ),
    ] {
        if allowed(&tenant, attrs).await? {
            wrong.push(format!("{what}: allowed"));
        }
    }
    // Remove the CRD (and so every baseline).
    let crds: Api<DynamicObject> = Api::all_with(
        tenant.clone(),
        &ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()),
    );
    refused(
        "delete the MeshBaseline CRD",
        crds.delete("meshbaselines.meshbaseline.dev", &DeleteParams::default())
            .await,
        &mut wrong,
    );

    // Near miss: in its own namespace the tenant may write NetworkPolicies (the operator
    // repairs generated ones; that is the scenario suite's part).
    let policies: Api<NetworkPolicy> = Api::namespaced(tenant.clone(), NS);
    let own: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "own", "namespace": NS}, "spec": {"podSelector": {}}}))?;
    policies.create(&PostParams::default(), &own).await?;

    cluster.cleanup().await?;
    assert!(wrong.is_empty(), "{wrong:#?}");
    Ok(())
}
