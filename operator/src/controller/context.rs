//! What the controller's tasks share, one field per concern: the API client and the one
//! executor, the index of the cluster, the freshness model, the baselines and what the
//! controller remembers of each, and the pending reconcile requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;
use kube::Client;
use parking_lot::Mutex;

use crate::api::MeshBaseline;
use crate::object::Kind;
use crate::telemetry::{Health, Metrics};

use super::baselines::Baselines;
use super::cache::Triggers;
use super::executor::Executor;
use super::freshness::Freshness;
use super::index::Index;
use super::lease::Leadership;
use super::served::Served;

pub struct Ctx {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The local lease deadline: checked before every reconcile and every write.
    pub leadership: Arc<Leadership>,
    /// The one writer.
    pub executor: Executor,
    /// Pending reconcile requests.
    pub triggers: Arc<Triggers>,
    /// The cluster as the watches show it.
    pub index: Index,
    /// What changed since each baseline's last reconcile, and our own records.
    pub freshness: Freshness,
    /// The baselines as their watch shows them, and what the controller remembers of each.
    pub baselines: Baselines,
    /// Watches of the optional kinds (Istio's, ClusterNetworkPolicy, the admission kinds),
    /// started and stopped as the cluster starts or stops serving them.
    pub dynamic_watches: Mutex<HashMap<Kind, tokio::task::AbortHandle>>,
    /// The operator's own username, which the generated admission policies let through.
    pub operator_user: String,
    /// See `Config::write_batch`.
    pub write_batch: Duration,
}

impl Ctx {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        leadership: Arc<Leadership>,
        baselines: Store<MeshBaseline>,
        pod_name: String,
        operator_user: String,
    ) -> Ctx {
        let served = Arc::new(Served::default());
        Ctx {
            executor: Executor::new(
                client.clone(),
                metrics.clone(),
                Some(pod_name),
                leadership.clone(),
                served.clone(),
            ),
            client,
            metrics,
            health,
            leadership,
            triggers: Arc::new(Triggers::default()),
            index: Index::new(served),
            freshness: Freshness::default(),
            baselines: Baselines::new(baselines),
            dynamic_watches: Mutex::new(HashMap::new()),
            operator_user,
            write_batch: Duration::from_secs(2),
        }
    }
}
