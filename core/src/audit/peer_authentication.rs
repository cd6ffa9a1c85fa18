//! MB101–MB104: PeerAuthentications that weaken or confuse the mesh's mTLS mode.

use std::collections::HashMap;

use super::context::{age_key, name_of, ns_of, Ctx};
use super::{Finding, Rule};
use crate::api::baseline::MtlsMode;
use crate::api::istio::PeerAuthentication;
use crate::object::Kind;

const KIND: &str = "PeerAuthentication";

fn has_selector(pa: &PeerAuthentication) -> bool {
    pa.spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty())
}

/// `name (MODE)`, as the messages name a policy.
fn name_and_mode(pa: &PeerAuthentication) -> String {
    format!(
        "{} ({})",
        name_of(&pa.metadata),
        mode(pa).unwrap_or("UNSET")
    )
}

fn mode(pa: &PeerAuthentication) -> Option<&str> {
    pa.spec.mtls.as_ref().and_then(|m| m.mode.as_deref())
}

/// Whether an mTLS mode lets plaintext in where the baseline does not: under STRICT both
/// PERMISSIVE and DISABLE do, under PERMISSIVE only DISABLE. UNSET inherits, so never.
pub(crate) fn weaker(baseline: MtlsMode, mode: Option<&str>) -> bool {
    matches!(
        (baseline, mode),
        (MtlsMode::Strict, Some("PERMISSIVE" | "DISABLE"))
            | (MtlsMode::Permissive, Some("DISABLE"))
    )
}

fn baseline_mode(ctx: &Ctx) -> &'static str {
    match ctx.baseline.mtls.mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive => "PERMISSIVE",
    }
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    let root = ctx.root();
    let base = ctx.baseline.mtls.mode;
    let bmode = baseline_mode(ctx);
    for pa in &ctx.inventory.peer_authentications {
        if ctx.is_ours(Kind::PeerAuthentication, &pa.metadata) {
            continue;
        }
        let (ns, name) = (ns_of(&pa.metadata), name_of(&pa.metadata));
        let m = mode(pa);
        if ns == root {
            if !ctx.owns_root() {
                continue;
            }
            if has_selector(pa) {
                out.push(ctx.finding(
                    Rule::MB104,
                    KIND,
                    Some(ns),
                    name,
                    format!(
                        "PeerAuthentication {ns}/{name} has a selector but lives in the root namespace {root}: Istio ignores workload selectors there, so the mode it sets ({}) does not apply to the workloads its author meant.",
                        m.unwrap_or("UNSET")
                    ),
                    "Move the PeerAuthentication into the namespace of the workloads it selects, or delete it.".into(),
                ));
            } else if weaker(base, m) {
                out.push(ctx.finding(
                    Rule::MB101,
                    KIND,
                    Some(ns),
                    name,
                    format!(
                        "Mesh-wide PeerAuthentication {ns}/{name} sets mTLS mode {} while the baseline requires {bmode}: every namespace without its own PeerAuthentication accepts plaintext.",
                        m.unwrap_or("UNSET")
                    ),
                    format!("Set spec.mtls.mode to {bmode} or delete the PeerAuthentication and let the baseline's mesh-wide policy apply."),
                ));
            }
            continue;
        }
        if !ctx.applies(ns, Rule::MB101) {
            continue;
        }
        if !has_selector(pa) {
            if weaker(base, m) {
                out.push(ctx.finding(
                    Rule::MB101,
                    KIND,
                    Some(ns),
                    name,
                    format!(
                        "PeerAuthentication {ns}/{name} sets mTLS mode {} for the whole namespace {ns}, overriding the baseline's mesh-wide {bmode}: workloads in {ns} accept plaintext, so their traffic can be read or spoofed and callers are not authenticated.",
                        m.unwrap_or("UNSET")
                    ),
                    format!("Set spec.mtls.mode to {bmode} (or UNSET) or delete the PeerAuthentication; if a client outside the mesh needs plaintext, ask for a time-boxed exemption instead."),
                ));
            }
            continue;
        }
        let mut weak: Vec<String> = Vec::new();
        if weaker(base, m) {
            weak.push(format!("spec.mtls.mode {}", m.unwrap_or("UNSET")));
        }
        for (port, tls) in &pa.spec.port_level_mtls {
            if weaker(base, tls.mode.as_deref()) {
                weak.push(format!(
                    "port {port} mode {}",
                    tls.mode.as_deref().unwrap_or("UNSET")
                ));
            }
        }
        if !weak.is_empty() {
            out.push(ctx.finding(
                Rule::MB102,
                KIND,
                Some(ns),
                name,
                format!(
                    "PeerAuthentication {ns}/{name} weakens mTLS for the workloads it selects in {ns} ({}), below the baseline's {bmode}: those workloads accept plaintext on the affected ports.",
                    weak.join(", ")
                ),
                format!("Set the weakened modes to {bmode} (or UNSET), or delete the PeerAuthentication."),
            ));
        }
    }
    if ctx.owns_root() {
        mesh_wide_conflicts(ctx, out);
        ours_shadowed(ctx, out);
    }
}

/// MB105: Istio uses the oldest mesh-wide PeerAuthentication and ignores the others
/// (`addPeerAuthentication` sorts by creation time, then name); when an older one exists,
/// the baseline's `meshbaseline-mesh-mtls` is not in force and the mesh's mode is whatever
/// that one says. Ours not created yet (Audit mode, manifests) would be the newest.
fn ours_shadowed(ctx: &Ctx, out: &mut Vec<Finding>) {
    let root = ctx.root();
    let name = crate::compile::names::MESH_PEER_AUTHENTICATION;
    if !ctx.generates(Kind::PeerAuthentication, root, name) {
        return;
    }
    let root_mesh_wide = || {
        ctx.inventory
            .peer_authentications
            .iter()
            .map(|o| &**o)
            .filter(|pa| ns_of(&pa.metadata) == root && !has_selector(pa))
    };
    let ours = root_mesh_wide()
        .find(|pa| ctx.is_ours(Kind::PeerAuthentication, &pa.metadata))
        .map(|pa| &pa.metadata);
    let ours_created = ours.and_then(crate::inventory::created);
    let older =
        |pa: &PeerAuthentication| match (crate::inventory::created(&pa.metadata), ours_created) {
            (Some(_), Some(_)) => ours.is_some_and(|o| age_key(&pa.metadata) < age_key(o)),
            (Some(_), None) | (None, None) => true,
            (None, Some(_)) => false,
        };
    // Whatever sits at our name is replaced by ours.
    let mut older: Vec<&PeerAuthentication> = root_mesh_wide()
        .filter(|pa| name_of(&pa.metadata) != name && older(pa))
        .collect();
    older.sort_by(|a, b| age_key(&a.metadata).cmp(&age_key(&b.metadata)));
    let Some(winner) = older.first() else {
        return;
    };
    let bmode = baseline_mode(ctx);
    // A mesh-level UNSET means PERMISSIVE to Istio.
    let mode_of = |pa: &PeerAuthentication| match mode(pa) {
        None | Some("UNSET") => "UNSET, which Istio reads as PERMISSIVE at mesh level".to_string(),
        Some(m) => m.to_string(),
    };
    let in_force = if crate::inventory::created(&winner.metadata).is_some() {
        format!(
            "Istio uses only the oldest mesh-wide PeerAuthentication, {root}/{} (mode {})",
            name_of(&winner.metadata),
            mode_of(winner)
        )
    } else {
        let all: Vec<String> = older
            .iter()
            .map(|pa| format!("{root}/{} (mode {})", name_of(&pa.metadata), mode_of(pa)))
            .collect();
        format!(
            "Istio uses only the oldest mesh-wide PeerAuthentication, one of {} (their creation times are unknown from manifests), all older than the baseline's",
            all.join(", ")
        )
    };
    let names: Vec<String> = older
        .iter()
        .map(|pa| format!("{root}/{}", name_of(&pa.metadata)))
        .collect();
    // The policies that may be in force (one when creation times are known). When they all
    // have the baseline's mode, the mesh's mode is still the baseline's: only the repair of
    // ours is moot, so the finding is low and does not degrade the status.
    let deciding: &[&PeerAuthentication] = if crate::inventory::created(&winner.metadata).is_some()
    {
        &older[..1]
    } else {
        &older
    };
    let same_mode = deciding.iter().all(|pa| match mode(pa) {
        None | Some("UNSET") => bmode == "PERMISSIVE",
        Some(m) => m == bmode,
    });
    let consequence = if same_mode {
        format!("; it has the baseline's mode {bmode} today, but an edit of it weakens the whole mesh and drift repair of {name} changes nothing")
    } else {
        format!(", so every namespace without a namespace-wide PeerAuthentication of its own gets that policy's mode, and drift repair of {name} changes nothing")
    };
    let mut finding = ctx.finding(
        Rule::MB105,
        KIND,
        Some(root),
        name,
        format!(
            "The baseline's mesh-wide PeerAuthentication {root}/{name} ({bmode}) is not in force: {in_force}{consequence}."
        ),
        format!("Delete {} (or fold their intent into the baseline's spec.mtls.mode); {name} is then in force.", names.join(", ")),
    );
    if same_mode {
        finding.severity = crate::audit::Severity::Low;
    }
    out.push(finding);
}

/// MB103: Istio uses the oldest mesh-wide PeerAuthentication and ignores the others.
fn mesh_wide_conflicts(ctx: &Ctx, out: &mut Vec<Finding>) {
    let root = ctx.root();
    let mut mesh_wide: Vec<&PeerAuthentication> = ctx
        .inventory
        .peer_authentications
        .iter()
        .map(|o| &**o)
        .filter(|pa| ns_of(&pa.metadata) == root && !has_selector(pa))
        .collect();
    if mesh_wide.len() < 2 {
        return;
    }
    mesh_wide.sort_by(|a, b| age_key(&a.metadata).cmp(&age_key(&b.metadata)));
    let names: Vec<String> = mesh_wide.iter().map(|pa| name_and_mode(pa)).collect();
    let oldest = &mesh_wide[0].metadata;
    let winner = if crate::inventory::created(oldest).is_some() {
        format!(
            "Istio uses the oldest, {}, and ignores the rest",
            name_of(oldest)
        )
    } else {
        "Istio uses the oldest by creation time (unknown from manifests) and ignores the rest"
            .to_string()
    };
    for pa in mesh_wide
        .iter()
        .filter(|pa| !ctx.is_ours(Kind::PeerAuthentication, &pa.metadata))
    {
        let name = name_of(&pa.metadata);
        out.push(ctx.finding(
            Rule::MB103,
            KIND,
            Some(root),
            name,
            format!(
                "{} mesh-wide PeerAuthentications in the root namespace {root}: {}. {winner}, so the mesh's mTLS mode depends on creation order.",
                mesh_wide.len(),
                names.join(", ")
            ),
            format!("Delete {root}/{name}, or fold its intent into a single mesh-wide PeerAuthentication (the baseline generates meshbaseline-mesh-mtls)."),
        ));
    }
}

/// The PeerAuthentications that decide the server side of `ns`, for MB201 messages.
pub(crate) struct PaIndex<'a> {
    namespace_wide: HashMap<&'a str, &'a PeerAuthentication>,
    workload: HashMap<&'a str, Vec<&'a PeerAuthentication>>,
    root: &'a str,
}

impl<'a> PaIndex<'a> {
    pub fn new(ctx: &Ctx<'a>) -> Self {
        let mut namespace_wide: HashMap<&str, &PeerAuthentication> = HashMap::new();
        let mut workload: HashMap<&str, Vec<&PeerAuthentication>> = HashMap::new();
        for pa in &ctx.inventory.peer_authentications {
            let ns = ns_of(&pa.metadata);
            if has_selector(pa) {
                workload.entry(ns).or_default().push(pa);
                continue;
            }
            let slot = namespace_wide.entry(ns).or_insert(pa);
            if age_key(&pa.metadata) < age_key(&slot.metadata) {
                *slot = pa;
            }
        }
        PaIndex {
            namespace_wide,
            workload,
            root: ctx.root(),
        }
    }

    /// "PeerAuthentication ns/name (MODE)" for the policy that applies to `ns`, naming
    /// workload-level ones that override it for some pods.
    pub fn describe(&self, ns: &str) -> String {
        let base = if let Some(pa) = self.namespace_wide.get(ns) {
            format!(
                "namespace-wide PeerAuthentication {ns}/{}",
                name_and_mode(pa)
            )
        } else if let Some(pa) = self.namespace_wide.get(self.root) {
            format!(
                "mesh-wide PeerAuthentication {}/{}",
                self.root,
                name_and_mode(pa)
            )
        } else {
            "none (mesh default PERMISSIVE)".to_string()
        };
        match self.workload.get(ns) {
            Some(w) if ns != self.root => {
                let names: Vec<String> = w.iter().map(|pa| name_and_mode(pa)).collect();
                format!(
                    "{base}; workload-level in {ns} for the pods they select: {}",
                    names.join(", ")
                )
            }
            _ => base,
        }
    }
}
