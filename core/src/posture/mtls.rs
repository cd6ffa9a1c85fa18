//! The mTLS mode a workload's port gets, and the PeerAuthentication that decides it: Istio's
//! `ComposePeerAuthentication` (pilot/pkg/security/authn/policy_applier.go) over the policies
//! `getConfigsForWorkload` finds (pilot/pkg/model/authentication.go).

use crate::api::istio::PeerAuthentication;
use crate::inventory::PodLabels;

use super::authz::Port;

/// A PeerAuthentication's scope, narrowest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    /// No policy: Istio's default, PERMISSIVE.
    Default,
    Mesh,
    Namespace,
    Workload,
    Port,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Default => "default",
            Level::Mesh => "mesh",
            Level::Namespace => "namespace",
            Level::Workload => "workload",
            Level::Port => "port",
        }
    }
}

/// The mode of one port and where it comes from.
#[derive(Clone, Debug)]
pub struct Decision<'a> {
    /// `STRICT`, `PERMISSIVE` or `DISABLE`.
    pub mode: &'static str,
    pub level: Level,
    pub policy: Option<&'a PeerAuthentication>,
    /// Policies of the same scope that lost to the oldest (creation time, then name, as
    /// Istio's `configCompareByCreationTime` orders them).
    pub shadowed: Vec<&'a PeerAuthentication>,
}

fn has_selector(pa: &PeerAuthentication) -> bool {
    pa.spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty())
}

/// Istio's mode names; anything else (a typo the schema would refuse) reads as UNSET.
fn mode_of(m: Option<&str>) -> Option<&'static str> {
    match m {
        Some("STRICT") => Some("STRICT"),
        Some("PERMISSIVE") => Some("PERMISSIVE"),
        Some("DISABLE") => Some("DISABLE"),
        _ => None,
    }
}

fn spec_mode(pa: &PeerAuthentication) -> Option<&'static str> {
    mode_of(pa.spec.mtls.as_ref().and_then(|m| m.mode.as_deref()))
}

/// `configCompareByCreationTime`: creation time, then name, then namespace. Manifests carry no
/// creation time; such objects sort after those with one, as the audit orders them.
fn age(p: &PeerAuthentication) -> (jiff::Timestamp, &str, &str) {
    (
        crate::inventory::created(&p.metadata).unwrap_or(jiff::Timestamp::MAX),
        p.metadata.name.as_deref().unwrap_or_default(),
        p.metadata.namespace.as_deref().unwrap_or_default(),
    )
}

/// The oldest of `candidates` and the rest.
fn oldest<'a>(
    candidates: impl Iterator<Item = &'a PeerAuthentication>,
) -> Option<(&'a PeerAuthentication, Vec<&'a PeerAuthentication>)> {
    let mut all: Vec<&PeerAuthentication> = candidates.collect();
    all.sort_by(|a, b| age(a).cmp(&age(b)));
    let first = *all.first()?;
    Some((first, all.split_off(1)))
}

/// The policies that apply to a workload, by scope: Istio's `ComposePeerAuthentication` picks
/// one mesh-level (root namespace, no selector), one namespace-level and one workload-level
/// policy (a selector that is a subset of the workload's labels, not in the root namespace),
/// the oldest of each.
pub struct Composed<'a> {
    mesh: Option<(&'a PeerAuthentication, Vec<&'a PeerAuthentication>)>,
    namespace: Option<(&'a PeerAuthentication, Vec<&'a PeerAuthentication>)>,
    workload: Option<(&'a PeerAuthentication, Vec<&'a PeerAuthentication>)>,
}

impl<'a> Composed<'a> {
    /// `root` and `own` are the PeerAuthentications of the root namespace and of the
    /// workload's namespace (the same list when the workload is in the root namespace).
    pub fn new(
        root_ns: &str,
        namespace: &str,
        root: &'a [std::sync::Arc<PeerAuthentication>],
        own: &'a [std::sync::Arc<PeerAuthentication>],
        labels: PodLabels<'_>,
    ) -> Composed<'a> {
        let root_list = root.iter().map(|p| &**p);
        let own_list = own.iter().map(|p| &**p);
        let mesh = oldest(root_list.filter(|p| !has_selector(p)));
        let namespace_level = if namespace == root_ns {
            None
        } else {
            oldest(own_list.clone().filter(|p| !has_selector(p)))
        };
        // Workload policies in the root namespace are ignored.
        let workload = if namespace == root_ns {
            None
        } else {
            oldest(own_list.filter(|p| {
                has_selector(p)
                    && p.spec
                        .selector
                        .as_ref()
                        .is_some_and(|s| labels.has_all(&s.match_labels))
            }))
        };
        Composed {
            mesh,
            namespace: namespace_level,
            workload,
        }
    }

    /// The workload's policy: its port-level settings add rows to the posture.
    pub fn workload_policy(&self) -> Option<&'a PeerAuthentication> {
        self.workload.as_ref().map(|(p, _)| *p)
    }

    /// Every policy that takes part, winners first.
    pub fn all(&self) -> impl Iterator<Item = &'a PeerAuthentication> + '_ {
        [&self.mesh, &self.namespace, &self.workload]
            .into_iter()
            .flatten()
            .flat_map(|(w, rest)| std::iter::once(*w).chain(rest.iter().copied()))
    }

    /// The mode of `port`: mesh, then namespace, then workload, then the workload's port-level
    /// setting, each UNSET inheriting from the one before; a mesh-level UNSET is PERMISSIVE.
    pub fn decide(&self, port: Port) -> Decision<'a> {
        let mut d = Decision {
            mode: "PERMISSIVE",
            level: Level::Default,
            policy: None,
            shadowed: Vec::new(),
        };
        for (level, slot) in [
            (Level::Mesh, &self.mesh),
            (Level::Namespace, &self.namespace),
            (Level::Workload, &self.workload),
        ] {
            let Some((pa, rest)) = slot else { continue };
            d.shadowed.extend(rest.iter().copied());
            if let Some(m) = spec_mode(pa) {
                d.mode = m;
                d.level = level;
                d.policy = Some(pa);
            } else if level == Level::Mesh {
                // `addPeerAuthentication`: UNSET at mesh level is PERMISSIVE.
                d.level = level;
                d.policy = Some(pa);
            }
        }
        if let (Port::Number(n), Some((pa, _))) = (port, &self.workload) {
            // UNSET at port level inherits the workload's mode, and its decider.
            let setting = pa.spec.port_level_mtls.get(&n.to_string());
            if let Some(m) = setting.and_then(|s| mode_of(s.mode.as_deref())) {
                d.mode = m;
                d.level = Level::Port;
                d.policy = Some(pa);
            }
        }
        d
    }

    /// The ports the workload policy sets on its own.
    pub fn port_level_ports(&self) -> Vec<u16> {
        self.workload
            .iter()
            .flat_map(|(pa, _)| pa.spec.port_level_mtls.keys())
            .filter_map(|k| k.parse::<u16>().ok())
            .collect()
    }
}
