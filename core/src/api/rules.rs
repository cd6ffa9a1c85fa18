//! Validation of the user deny rules (a subset of Istio's AuthorizationPolicy rule syntax).

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::baseline::DenyRuleSpec;
use super::model::FieldErrors;

pub(crate) fn check_deny_rules(rules: &[DenyRuleSpec], errs: &mut FieldErrors) {
    let mut names = BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        let p = format!("spec.authorization.denyRules[{i}]");
        if !super::model::is_dns1123_label(&r.name) || r.name.len() > 40 {
            errs.push(
                format!("{p}.name"),
                format!(
                    "{:?} must be a DNS-1123 label of at most 40 characters",
                    r.name
                ),
            );
        }
        if !names.insert(r.name.as_str()) {
            errs.push(format!("{p}.name"), format!("{:?} is used twice", r.name));
        }
        if r.from.is_empty() && r.to.is_empty() && r.when.is_empty() {
            errs.push(
                p.clone(),
                "needs at least one of from, to or when; an empty rule would deny all traffic in the mesh",
            );
        }
        for (j, s) in r.from.iter().enumerate() {
            let sp = format!("{p}.from[{j}]");
            let lists = [
                ("principals", &s.principals),
                ("notPrincipals", &s.not_principals),
                ("namespaces", &s.namespaces),
                ("notNamespaces", &s.not_namespaces),
            ];
            for (field, values) in lists {
                non_empty_strings(&format!("{sp}.{field}"), values, errs);
            }
            for (field, values) in [
                ("ipBlocks", &s.ip_blocks),
                ("notIpBlocks", &s.not_ip_blocks),
            ] {
                for (k, v) in values.iter().enumerate() {
                    if v.parse::<IpNet>().is_err() && v.parse::<std::net::IpAddr>().is_err() {
                        errs.push(
                            format!("{sp}.{field}[{k}]"),
                            format!("{v:?} is not an IP address or CIDR"),
                        );
                    }
                }
            }
            if s == &Default::default() {
                errs.push(
                    sp,
                    "an empty source matches everything; remove it or fill it in",
                );
            }
        }
        for (j, o) in r.to.iter().enumerate() {
            let op = format!("{p}.to[{j}]");
            for (field, values) in [("ports", &o.ports), ("notPorts", &o.not_ports)] {
                for (k, v) in values.iter().enumerate() {
                    if !matches!(v.parse::<u32>(), Ok(1..=65535)) {
                        errs.push(
                            format!("{op}.{field}[{k}]"),
                            format!("{v:?} is not a port number"),
                        );
                    }
                }
            }
            for (field, values) in [
                ("hosts", &o.hosts),
                ("notHosts", &o.not_hosts),
                ("methods", &o.methods),
                ("notMethods", &o.not_methods),
                ("paths", &o.paths),
                ("notPaths", &o.not_paths),
            ] {
                non_empty_strings(&format!("{op}.{field}"), values, errs);
            }
            if o == &Default::default() {
                errs.push(
                    op,
                    "an empty operation matches everything; remove it or fill it in",
                );
            }
        }
        for (j, c) in r.when.iter().enumerate() {
            let cp = format!("{p}.when[{j}]");
            if c.key.trim().is_empty() {
                errs.push(format!("{cp}.key"), "must be set");
            }
            if c.values.is_empty() && c.not_values.is_empty() {
                errs.push(cp, "needs values or notValues");
            }
        }
    }
}

fn non_empty_strings(path: &str, values: &[String], errs: &mut FieldErrors) {
    for (k, v) in values.iter().enumerate() {
        if v.trim().is_empty() {
            errs.push(format!("{path}[{k}]"), "must not be empty");
        }
    }
}

/// The names of the deny rules that use HTTP attributes (`to` hosts, methods or paths, `when`
/// keys other than ztunnel's L4 ones). Sidecars and waypoints enforce them as written; ztunnel
/// enforces a DENY rule without its HTTP parts, so it denies more than written.
pub fn http_deny_rules(rules: &[DenyRuleSpec]) -> Vec<&str> {
    rules
        .iter()
        .filter(|r| {
            r.to.iter().any(|o| {
                [
                    &o.hosts,
                    &o.not_hosts,
                    &o.methods,
                    &o.not_methods,
                    &o.paths,
                    &o.not_paths,
                ]
                .iter()
                .any(|v| !v.is_empty())
            }) || r
                .when
                .iter()
                .any(|c| !crate::dataplane::L4_WHEN_KEYS.contains(&c.key.as_str()))
        })
        .map(|r| r.name.as_str())
        .collect()
}
