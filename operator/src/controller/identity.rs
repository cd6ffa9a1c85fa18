//! Who the operator is, as the API server sees it: the generated admission policies must
//! never refuse it.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::compile::DEFAULT_OPERATOR_USER;

/// The username from a SelfSubjectReview (GA in Kubernetes 1.28, allowed to every
/// authenticated user); else `system:serviceaccount:$POD_NAMESPACE:$SERVICE_ACCOUNT` as the
/// chart sets them; else the chart's default ServiceAccount.
pub async fn operator_user(client: &Client) -> String {
    let review = SelfSubjectReview {
        metadata: Default::default(),
        status: None,
    };
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(r) => {
            if let Some(name) = r.status.and_then(|s| s.user_info).and_then(|u| u.username) {
                return name;
            }
        }
        Err(e) => tracing::warn!(error = %e, "SelfSubjectReview failed; using the environment"),
    }
    from_env(
        std::env::var("POD_NAMESPACE").ok(),
        std::env::var("SERVICE_ACCOUNT").ok(),
    )
}

fn from_env(namespace: Option<String>, service_account: Option<String>) -> String {
    match (namespace, service_account) {
        (Some(ns), Some(sa)) if !ns.is_empty() && !sa.is_empty() => {
            format!("system:serviceaccount:{ns}:{sa}")
        }
        _ => DEFAULT_OPERATOR_USER.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_the_service_account() {
        assert_eq!(
            from_env(Some("ops".into()), Some("mb".into())),
            "system:serviceaccount:ops:mb"
        );
        assert_eq!(from_env(None, Some("mb".into())), DEFAULT_OPERATOR_USER);
    }
}
