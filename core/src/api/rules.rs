//! Validation of the user deny rules (a subset of Istio's AuthorizationPolicy rule syntax).

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::baseline::{DenyRuleSpec, RuleOperation};
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
        check_http_ports(r, &p, errs);
        for (field, len) in [
            ("from", r.from.len()),
            ("to", r.to.len()),
            ("when", r.when.len()),
        ] {
            if len > MAX_RULE_ENTRIES {
                errs.push(
                    format!("{p}.{field}"),
                    format!("has {len} entries; at most {MAX_RULE_ENTRIES} are allowed"),
                );
            }
        }
    }
}

/// The CEL rule refusing deny rules with HTTP fields but no `ports` in every `to` entry. On a
/// TCP filter chain Istio cannot evaluate HTTP fields and, for DENY, drops them (its authz
/// model's `checkError`), so the rule would deny every connection the rest of it matches.
pub const HTTP_DENY_RULE_NEEDS_PORTS: &str = "!((has(self.to) && self.to.exists(o, (has(o.hosts) && size(o.hosts) > 0) || (has(o.notHosts) && size(o.notHosts) > 0) || (has(o.methods) && size(o.methods) > 0) || (has(o.notMethods) && size(o.notMethods) > 0) || (has(o.paths) && size(o.paths) > 0) || (has(o.notPaths) && size(o.notPaths) > 0))) || (has(self.when) && self.when.exists(c, c.key.startsWith('request.')))) || (has(self.to) && size(self.to) > 0 && self.to.all(o, has(o.ports) && size(o.ports) > 0))";

/// The most `from`, `to` or `when` entries of one deny rule (as the CRD schema says).
pub const MAX_RULE_ENTRIES: usize = 16;

/// Operation fields Istio cannot evaluate on a TCP connection (its authz model's host, path
/// and method generators fail `forTCP`).
fn http_operation_fields(o: &RuleOperation) -> Vec<&'static str> {
    [
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(f, _)| f)
    .collect()
}

/// `when` keys Istio cannot evaluate on a TCP connection: request headers and the
/// `request.auth.*` attributes of a JWT.
fn http_when_key(key: &str) -> bool {
    key.starts_with("request.")
}

/// Istio builds every rule for TCP filter chains too (ports no Service declares as HTTP, and
/// passthrough); there it drops the HTTP fields of a DENY rule (`checkError` in its authz
/// model) and denies everything the rest of the rule matches: a path rule from one namespace
/// cuts all its non-HTTP connections, mesh-wide. Naming the ports keeps that to those ports.
fn check_http_ports(r: &DenyRuleSpec, p: &str, errs: &mut FieldErrors) {
    let mut http: Vec<String> =
        r.to.iter()
            .enumerate()
            .flat_map(|(j, o)| {
                http_operation_fields(o)
                    .into_iter()
                    .map(move |f| format!("to[{j}].{f}"))
            })
            .collect();
    http.extend(
        r.when
            .iter()
            .filter(|c| http_when_key(&c.key))
            .map(|c| format!("when key {}", c.key)),
    );
    if http.is_empty() {
        return;
    }
    let why = format!(
        "the rule uses HTTP fields ({}); on TCP connections Istio drops them from a DENY rule and denies everything the rest of the rule matches, so name the HTTP ports",
        http.join(", ")
    );
    if r.to.is_empty() {
        errs.push(format!("{p}.to"), format!("must name ports: {why}"));
    }
    for (j, o) in r.to.iter().enumerate() {
        if o.ports.is_empty() {
            errs.push(format!("{p}.to[{j}].ports"), format!("must be set: {why}"));
        }
    }
}

/// `spec.authorization.trustDomain`: the first part of a SPIFFE identity, so no `/`.
pub(crate) fn check_trust_domain(td: &str, errs: &mut FieldErrors) {
    let ok = !td.is_empty()
        && td.len() <= 253
        && td
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && td.starts_with(|c: char| c.is_ascii_alphanumeric())
        && td.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        errs.push(
            "spec.authorization.trustDomain",
            format!("{td:?} is not a trust domain (letters, digits, '-', '_' and '.', such as cluster.local)"),
        );
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
