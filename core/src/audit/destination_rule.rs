//! MB201: DestinationRules that turn off or downgrade mTLS towards in-mesh hosts under a
//! STRICT baseline, resolved the way Istio picks the DestinationRule a client uses
//! (`PushContext.destinationRule`).
//!
//! Istio's lookup for a client in namespace C calling a host of namespace S: the rules local to
//! C (exported to `.`, `*`, C, or nowhere in particular), then S's exported rules, then the
//! root namespace's exported rules; within each, the most specific host wins, and an exported
//! winner that is not exported to C ends the search there. Clients in the root namespace look
//! at its private rules instead of C's.

use std::collections::HashMap;

use super::context::{age_key, name_of, ns_of, Ctx};
use super::peer_authentication::PaIndex;
use super::{Finding, Rule};
use crate::api::baseline::{Control, MtlsMode};
use crate::api::istio::{DestinationRule, TrafficPolicy};
use crate::compile::hosts;
use crate::object::Kind;

const KIND: &str = "DestinationRule";

/// A DestinationRule host as Istio resolves it (short names are relative to the rule's
/// namespace; nothing else is completed or normalised).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Exact(String),
    /// `*.suffix`, stored as `.suffix`.
    Wildcard(String),
    Any,
}

/// What a client calls: one service, or "some service of namespace S".
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    Service(&'a str),
    AnyIn(&'a str),
}

/// The namespaces whose services a host covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Servers {
    One(String),
    All,
    External,
}

pub(crate) fn parse_host(raw: &str, dr_ns: &str, domain: &str) -> Host {
    let h = hosts::resolve(raw, dr_ns, domain);
    if h == "*" {
        Host::Any
    } else if let Some(rest) = h.strip_prefix('*') {
        Host::Wildcard(rest.to_string())
    } else {
        Host::Exact(h)
    }
}

pub(crate) fn servers(host: &Host, domain: &str) -> Servers {
    let cluster = format!(".svc.{domain}");
    match host {
        Host::Any => Servers::All,
        Host::Exact(h) => match h.strip_suffix(&cluster).and_then(|r| r.rsplit_once('.')) {
            Some((svc, ns)) if !svc.is_empty() && !ns.is_empty() => Servers::One(ns.to_string()),
            _ => Servers::External,
        },
        Host::Wildcard(suffix) => {
            if let Some(ns) = suffix
                .strip_suffix(&cluster)
                .and_then(|r| r.strip_prefix('.'))
                .filter(|ns| !ns.is_empty() && !ns.contains('.'))
            {
                Servers::One(ns.to_string())
            } else if cluster.ends_with(suffix.as_str()) {
                // `*.svc.cluster.local`, `*.cluster.local`, `*.local`
                Servers::All
            } else {
                Servers::External
            }
        }
    }
}

struct Entry<'a> {
    dr: &'a DestinationRule,
    /// The host as Istio resolves it.
    resolved: String,
    host: Host,
}

impl Entry<'_> {
    /// Higher is more specific; `None` when the host does not match (Istio's
    /// `MostSpecificHostMatch`). "Some service of S" is matched as the wildcard `*.S.svc...`.
    fn specificity(&self, target: Target, domain: &str) -> Option<(u8, usize)> {
        match target {
            Target::Service(s) => hosts::match_rank(&self.resolved, s),
            Target::AnyIn(ns) => match self.host {
                Host::Exact(_) => None,
                _ => hosts::match_rank(&self.resolved, &format!("*.{ns}.svc.{domain}")),
            },
        }
    }

    fn visible_to(&self, client: &str) -> bool {
        hosts::visible_to(&self.dr.spec.export_to, client)
    }
}

pub(crate) struct DrIndex<'a> {
    /// Oldest first: Istio merges rules for the same host and keeps the oldest's policy.
    entries: Vec<Entry<'a>>,
    local: HashMap<&'a str, Vec<usize>>,
    exported: HashMap<&'a str, Vec<usize>>,
    /// The root namespace's rules that are not exported (Istio's `rootNamespaceLocal`).
    root_private: Vec<usize>,
    root: &'a str,
    domain: &'a str,
}

impl<'a> DrIndex<'a> {
    pub fn new(ctx: &Ctx<'a>) -> Self {
        let domain = ctx.baseline.cluster_domain.as_str();
        let root = ctx.root();
        let mut drs: Vec<&DestinationRule> = ctx
            .inventory
            .destination_rules
            .iter()
            .map(|o| &**o)
            .collect();
        drs.sort_by(|a, b| age_key(&a.metadata).cmp(&age_key(&b.metadata)));
        let mut index = DrIndex {
            entries: Vec::with_capacity(drs.len()),
            local: HashMap::new(),
            exported: HashMap::new(),
            root_private: Vec::new(),
            root,
            domain,
        };
        for dr in drs {
            let ns = ns_of(&dr.metadata);
            let export = hosts::export(&dr.spec.export_to, ns, dr.spec.workload_selector.is_some());
            let i = index.entries.len();
            if export.local {
                index.local.entry(ns).or_default().push(i);
            }
            if export.exported {
                index.exported.entry(ns).or_default().push(i);
            } else if ns == root {
                index.root_private.push(i);
            }
            index.entries.push(Entry {
                dr,
                resolved: hosts::resolve(&dr.spec.host, ns, domain),
                host: parse_host(&dr.spec.host, ns, domain),
            });
        }
        index
    }

    fn best(&self, pool: Option<&Vec<usize>>, target: Target) -> Option<&Entry<'a>> {
        let mut best: Option<(&Entry, (u8, usize))> = None;
        for e in pool.into_iter().flatten().map(|&i| &self.entries[i]) {
            if let Some(s) = e.specificity(target, self.domain) {
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((e, s));
                }
            }
        }
        best.map(|(e, _)| e)
    }

    /// The DestinationRule a client in `client` uses for `target` served from `server`.
    pub(crate) fn lookup(
        &self,
        client: &str,
        target: Target,
        server: &str,
    ) -> Option<&'a DestinationRule> {
        let own = if client == self.root {
            self.best(Some(&self.root_private), target)
        } else {
            self.best(self.local.get(client), target)
        };
        if let Some(e) = own {
            return Some(e.dr);
        }
        for ns in [server, self.root] {
            if let Some(e) = self.best(self.exported.get(ns), target) {
                if e.visible_to(client) {
                    return Some(e.dr);
                }
            }
        }
        None
    }

    /// The client namespaces (from a representative set) for which `dr` is the rule Istio
    /// applies when calling `target` in `server`. `None` stands for "any other namespace".
    fn applies_to(
        &self,
        dr: &DestinationRule,
        target: Target,
        server: &str,
    ) -> Vec<Option<String>> {
        let own = ns_of(&dr.metadata);
        let mut clients: Vec<Option<&str>> = vec![Some(own)];
        if own == server || own == self.root {
            clients.push(Some(server));
            // A namespace with no DestinationRules of its own: "" never names one.
            clients.push(None);
            for e in &dr.spec.export_to {
                if !matches!(e.as_str(), "." | "*" | "~") {
                    clients.push(Some(e.as_str()));
                }
            }
        }
        // Named namespaces first, "any other namespace" last.
        clients.sort_by_key(|c| (c.is_none(), *c));
        clients.dedup();
        clients
            .into_iter()
            .filter(|c| {
                self.lookup(c.unwrap_or(""), target, server)
                    .is_some_and(|found| std::ptr::eq(found, dr))
            })
            .map(|c| c.map(str::to_string))
            .collect()
    }
}

/// Where a DestinationRule disables or downgrades TLS: "field path: MODE".
fn weak_tls(dr: &DestinationRule) -> Vec<String> {
    fn policy(prefix: &str, tp: &TrafficPolicy, out: &mut Vec<String>) {
        let weak = |m: Option<&str>| matches!(m, Some("DISABLE" | "SIMPLE"));
        if let Some(m) = tp.tls.as_ref().and_then(|t| t.mode.as_deref()) {
            if weak(Some(m)) {
                out.push(format!("{prefix}.tls.mode: {m}"));
            }
        }
        for (i, p) in tp.port_level_settings.iter().enumerate() {
            if let Some(m) = p.tls.as_ref().and_then(|t| t.mode.as_deref()) {
                if weak(Some(m)) {
                    let port = p.port.as_ref().and_then(|p| p.number).unwrap_or(0);
                    out.push(format!(
                        "{prefix}.portLevelSettings[{i}] (port {port}).tls.mode: {m}"
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(tp) = &dr.spec.traffic_policy {
        policy("spec.trafficPolicy", tp, &mut out);
    }
    for (i, s) in dr.spec.subsets.iter().enumerate() {
        if let Some(tp) = &s.traffic_policy {
            policy(
                &format!("spec.subsets[{i}] ({}).trafficPolicy", s.name),
                tp,
                &mut out,
            );
        }
    }
    out
}

pub(super) fn check(ctx: &Ctx, out: &mut Vec<Finding>) {
    if ctx.baseline.mtls.mode != MtlsMode::Strict {
        return;
    }
    let weak: Vec<(&DestinationRule, Vec<String>)> = ctx
        .inventory
        .destination_rules
        .iter()
        .map(|o| &**o)
        .filter(|dr| !ctx.is_ours(Kind::DestinationRule, &dr.metadata))
        .map(|dr| (dr, weak_tls(dr)))
        .filter(|(_, w)| !w.is_empty())
        .collect();
    if weak.is_empty() {
        return;
    }
    let index = DrIndex::new(ctx);
    let pas = PaIndex::new(ctx);
    let domain = ctx.baseline.cluster_domain.as_str();
    // Server namespaces a mesh-wide host (`*`, `*.local`) reaches: every namespace the input
    // shows, by its Namespace object or by the objects in it (manifests often have none).
    let all_servers = || -> Vec<&str> {
        let inv = ctx.inventory;
        inv.namespaces
            .keys()
            .map(String::as_str)
            .chain(inv.services.iter().map(|s| s.namespace.as_str()))
            .chain(inv.pods.iter().map(|p| &*p.namespace))
            .chain(
                inv.destination_rules
                    .iter()
                    .map(|o| &**o)
                    .map(|o| ns_of(&o.metadata)),
            )
            .chain(
                inv.peer_authentications
                    .iter()
                    .map(|o| &**o)
                    .map(|o| ns_of(&o.metadata)),
            )
            .chain(
                inv.authorization_policies
                    .iter()
                    .map(|o| &**o)
                    .map(|o| ns_of(&o.metadata)),
            )
            .chain(
                inv.network_policies
                    .iter()
                    .map(|o| &**o)
                    .map(|o| ns_of(&o.metadata)),
            )
            .chain(
                inv.sidecars
                    .iter()
                    .map(|o| &**o)
                    .map(|o| ns_of(&o.metadata)),
            )
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    for (dr, modes) in weak {
        let (ns, name) = (ns_of(&dr.metadata), name_of(&dr.metadata));
        if ns != ctx.root() && ctx.protected(ns) && ctx.exempt(ns, Control::Mtls) {
            continue;
        }
        let host = parse_host(&dr.spec.host, ns, domain);
        let server_list: Vec<String> = match servers(&host, domain) {
            Servers::External => continue,
            Servers::One(s) => vec![s],
            Servers::All => all_servers().into_iter().map(str::to_string).collect(),
        };
        let mut hits: Vec<(String, Vec<Option<String>>)> = Vec::new();
        for server in &server_list {
            if !ctx.protected(server) || ctx.exempt(server, Control::Mtls) {
                continue;
            }
            let target = match &host {
                Host::Exact(h) => Target::Service(h),
                _ => Target::AnyIn(server),
            };
            let clients = index.applies_to(dr, target, server);
            if !clients.is_empty() {
                hits.push((server.clone(), clients));
            }
        }
        let Some((server, clients)) = hits.first() else {
            continue;
        };
        let who: Vec<String> = clients
            .iter()
            .map(|c| match c {
                Some(c) => format!("namespace {c}"),
                None => "namespaces without their own DestinationRule for it".to_string(),
            })
            .collect();
        let servers_txt = if hits.len() > 1 {
            format!(
                "services of {} protected namespaces, e.g. {server}",
                hits.len()
            )
        } else {
            format!("services of namespace {server}")
        };
        out.push(ctx.finding(
            Rule::MB201,
            KIND,
            Some(ns),
            name,
            format!(
                "DestinationRule {ns}/{name} (host {:?}) sets {} for {servers_txt}, and it is the DestinationRule Istio applies for clients in {} (lookup: client namespace, then {server}, then {}). The server side is governed by {}; the baseline enforces STRICT mTLS, so these clients send plaintext or non-mesh TLS that the server rejects (503 UC, connection reset) or that bypasses mutual authentication.",
                dr.spec.host,
                modes.join(", "),
                who.join(", "),
                ctx.root(),
                pas.describe(server),
            ),
            "Set the listed tls.mode fields to ISTIO_MUTUAL (or remove the tls settings so Istio's automatic mTLS applies); keep DISABLE/SIMPLE only for hosts outside the mesh.".to_string(),
        ));
    }
}
