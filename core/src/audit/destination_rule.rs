//! MB201: DestinationRules that turn off or downgrade mTLS towards in-mesh hosts under a
//! STRICT baseline, resolved the way Istio picks the DestinationRule a client uses.
//!
//! Istio's lookup for a client in namespace C calling a host of namespace S: the
//! DestinationRules of C (all of them), then those of S exported to C, then those of the root
//! namespace exported to C; within the first namespace that has a match, the most specific
//! host wins. Clients in the root namespace itself look in S first.

use std::collections::HashMap;

use super::context::{age_key, name_of, ns_of, Ctx};
use super::peer_authentication::PaIndex;
use super::{Finding, Rule};
use crate::api::baseline::{Control, MtlsMode};
use crate::api::istio::{DestinationRule, TrafficPolicy};
use crate::object::Kind;

const KIND: &str = "DestinationRule";

/// A DestinationRule host, normalised: short names are relative to the rule's namespace.
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
    let h = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let svc_suffix = ".svc";
    let h = if h.ends_with(svc_suffix) {
        format!("{h}.{domain}")
    } else {
        h
    };
    if h == "*" {
        Host::Any
    } else if let Some(rest) = h.strip_prefix('*') {
        Host::Wildcard(rest.to_string())
    } else if !h.contains('.') {
        Host::Exact(format!("{h}.{dr_ns}.svc.{domain}"))
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
    host: Host,
}

impl Entry<'_> {
    /// Higher is more specific; `None` when the host does not match.
    fn specificity(&self, target: Target, domain: &str) -> Option<(u8, usize)> {
        match (&self.host, target) {
            (Host::Any, _) => Some((0, 0)),
            (Host::Exact(h), Target::Service(s)) => (h == s).then_some((2, h.len())),
            (Host::Exact(_), Target::AnyIn(_)) => None,
            (Host::Wildcard(suf), Target::Service(s)) => {
                (s.len() > suf.len() && s.ends_with(suf.as_str())).then_some((1, suf.len()))
            }
            (Host::Wildcard(suf), Target::AnyIn(ns)) => format!(".{ns}.svc.{domain}")
                .ends_with(suf.as_str())
                .then_some((1, suf.len())),
        }
    }

    fn exported_to(&self, client: &str) -> bool {
        let own = ns_of(&self.dr.metadata);
        let export = &self.dr.spec.export_to;
        export.is_empty()
            || export
                .iter()
                .any(|e| e == "*" || e == client || (e == "." && client == own))
    }
}

pub(crate) struct DrIndex<'a> {
    by_ns: HashMap<&'a str, Vec<Entry<'a>>>,
    root: &'a str,
    domain: &'a str,
}

impl<'a> DrIndex<'a> {
    pub fn new(ctx: &Ctx<'a>) -> Self {
        let domain = ctx.baseline.cluster_domain.as_str();
        let mut by_ns: HashMap<&str, Vec<Entry>> = HashMap::new();
        for dr in &ctx.inventory.destination_rules {
            let ns = ns_of(&dr.metadata);
            by_ns.entry(ns).or_default().push(Entry {
                dr,
                host: parse_host(&dr.spec.host, ns, domain),
            });
        }
        // Ties between equally specific hosts go to the oldest rule, as in Istio.
        for entries in by_ns.values_mut() {
            entries.sort_by(|a, b| age_key(&a.dr.metadata).cmp(&age_key(&b.dr.metadata)));
        }
        DrIndex {
            by_ns,
            root: ctx.root(),
            domain,
        }
    }

    fn best_in(
        &self,
        ns: &str,
        target: Target,
        visible: impl Fn(&Entry) -> bool,
    ) -> Option<&'a DestinationRule> {
        let mut best: Option<(&Entry, (u8, usize))> = None;
        for e in self.by_ns.get(ns)?.iter().filter(|e| visible(e)) {
            if let Some(s) = e.specificity(target, self.domain) {
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((e, s));
                }
            }
        }
        best.map(|(e, _)| e.dr)
    }

    /// The DestinationRule a client in `client` uses for `target` served from `server`.
    pub(crate) fn lookup(
        &self,
        client: &str,
        target: Target,
        server: &str,
    ) -> Option<&'a DestinationRule> {
        // Istio looks at the service's namespace first for proxies in the root namespace, so
        // that namespace rules override mesh-wide ones there too.
        let server_first = (client == self.root && server != client)
            .then(|| self.best_in(server, target, |e| e.exported_to(client)))
            .flatten();
        server_first
            .or_else(|| self.best_in(client, target, |_| true))
            .or_else(|| {
                (server != client)
                    .then(|| self.best_in(server, target, |e| e.exported_to(client)))
                    .flatten()
            })
            .or_else(|| {
                (self.root != client && self.root != server)
                    .then(|| self.best_in(self.root, target, |e| e.exported_to(client)))
                    .flatten()
            })
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
