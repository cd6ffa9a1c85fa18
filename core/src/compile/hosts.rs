//! DestinationRule hosts and `exportTo` as Istio reads them (`pilot/pkg/model/config.go`,
//! `push_context.go`): the compiler decides with them whether a tenant's rule would be shadowed
//! by ours, the audit which rule a client uses.

/// Istio's `ResolveShortnameToFQDN`: a name without a dot is a Service of the rule's own
/// namespace; everything else (`*`, IP addresses, `*.payments.svc`, `Foo.` ...) is taken as
/// written, not lower-cased, trimmed or completed.
pub fn resolve(host: &str, namespace: &str, domain: &str) -> String {
    if host.is_empty() || host == "*" || host.parse::<std::net::IpAddr>().is_ok() {
        return host.to_string();
    }
    if host.contains('.') {
        return host.to_string();
    }
    format!("{host}.{namespace}.svc.{domain}")
}

/// A resolved DestinationRule host matching a service hostname `needle`, or `None`; the key
/// orders matches as Istio's `MostSpecificHostMatch` does: an exact host first, then the
/// wildcard Istio's `host.MoreSpecific` prefers (the longest).
pub fn match_rank(pattern: &str, needle: &str) -> Option<(u8, usize)> {
    let needle_wild = needle.starts_with('*');
    match pattern.strip_prefix('*') {
        // Exact first: a wildcard needle looks for the same wildcard, a plain one the same host.
        _ if pattern == needle => Some((2, pattern.len())),
        None => None,
        Some(suffix) => {
            let rest = if needle_wild { &needle[1..] } else { needle };
            rest.ends_with(suffix).then_some((1, pattern.len()))
        }
    }
}

/// How a rule's `exportTo` places it in Istio's indexes (`setDestinationRules`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export {
    /// In its namespace's local index: clients of that namespace look there first.
    pub local: bool,
    /// In its namespace's exported index: clients of other namespaces look there when the
    /// rule's namespace serves the host, or is the root namespace.
    pub exported: bool,
}

/// `export_to` of a rule in `namespace`; a rule with a `workloadSelector` is private. Istio's
/// `defaultDestinationRuleExportTo` is assumed to be its default, `*`.
pub fn export(export_to: &[String], namespace: &str, workload_selector: bool) -> Export {
    if workload_selector {
        return Export {
            local: true,
            exported: false,
        };
    }
    // A set, as Istio makes it: duplicates count once.
    let set: std::collections::BTreeSet<&str> = export_to.iter().map(String::as_str).collect();
    let local = set.is_empty() || set.contains("*") || set.contains(".") || set.contains(namespace);
    let private_only = set.len() == 1 && (set.contains(".") || set.contains(namespace));
    Export {
        local,
        exported: !private_only,
    }
}

/// Whether an exported rule in `namespace` is visible to clients in `client`
/// (`getExportedDestinationRuleFromNamespace`).
pub fn visible_to(export_to: &[String], client: &str) -> bool {
    export_to.is_empty() || export_to.iter().any(|e| e == "*" || e == client)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "cluster.local";

    /// Istio's `ResolveShortnameToFQDN` completes short names only.
    #[test]
    fn resolve_completes_short_names_only() {
        assert_eq!(
            resolve("ledger", "payments", D),
            "ledger.payments.svc.cluster.local"
        );
        assert_eq!(resolve("*", "payments", D), "*");
        assert_eq!(resolve("*.payments.svc", "x", D), "*.payments.svc");
        assert_eq!(
            resolve("Ledger.payments.svc.cluster.local.", "x", D),
            "Ledger.payments.svc.cluster.local."
        );
        assert_eq!(resolve("10.0.0.1", "x", D), "10.0.0.1");
        assert_eq!(resolve("::1", "x", D), "::1");
    }

    /// Istio's `MostSpecificHostMatch` and `host.MoreSpecific`.
    #[test]
    fn exact_beats_wildcards_and_longer_wildcards_beat_shorter() {
        let svc = "a.payments.svc.cluster.local";
        let exact = match_rank(svc, svc).unwrap();
        let ns = match_rank("*.payments.svc.cluster.local", svc).unwrap();
        let all = match_rank("*.svc.cluster.local", svc).unwrap();
        let any = match_rank("*", svc).unwrap();
        assert!(exact > ns && ns > all && all > any);
        assert_eq!(
            match_rank("*.payments.svc", svc),
            None,
            "Istio does not complete .svc"
        );
        assert_eq!(match_rank("b.payments.svc.cluster.local", svc), None);
        // A wildcard needle: the same wildcard, or a broader one.
        let ours = "*.payments.svc.cluster.local";
        assert!(match_rank(ours, ours).is_some());
        assert!(match_rank("*.cluster.local", ours).is_some());
        assert!(match_rank("*", ours).is_some());
        assert_eq!(match_rank("*.x.payments.svc.cluster.local", ours), None);
        assert_eq!(
            match_rank(svc, ours),
            None,
            "a plain host never matches a wildcard"
        );
    }

    /// Istio's `setDestinationRules`: which index a rule lands in.
    #[test]
    fn export_to_places_rules_like_istio() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            export(&[], "a", false),
            Export {
                local: true,
                exported: true
            }
        );
        assert_eq!(
            export(&v(&["."]), "a", false),
            Export {
                local: true,
                exported: false
            }
        );
        assert_eq!(
            export(&v(&["a"]), "a", false),
            Export {
                local: true,
                exported: false
            }
        );
        assert_eq!(
            export(&v(&["b"]), "a", false),
            Export {
                local: false,
                exported: true
            }
        );
        assert_eq!(
            export(&v(&[".", "b"]), "a", false),
            Export {
                local: true,
                exported: true
            }
        );
        assert_eq!(
            export(&v(&["*"]), "a", true),
            Export {
                local: true,
                exported: false
            }
        );
        assert!(visible_to(&v(&["*"]), "z") && visible_to(&[], "z"));
        assert!(!visible_to(&v(&["b"]), "z") && !visible_to(&v(&["~"]), "z"));
    }
}
