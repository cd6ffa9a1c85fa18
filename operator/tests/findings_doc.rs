//! docs/findings.md lists every rule of the audit, with the severity and the control the code
//! gives it, and no rule the code does not have.

use std::collections::BTreeMap;

use meshbaseline::audit::Rule;

const DOC: &str = include_str!("../../docs/findings.md");

/// rule id -> (severity cell, control cell) of the doc's table.
fn documented() -> BTreeMap<String, (String, String)> {
    DOC.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let id = cells.get(1)?;
            (id.starts_with("MB") && cells.len() > 5)
                .then(|| (id.to_string(), (cells[2].to_string(), cells[3].to_string())))
        })
        .collect()
}

#[test]
fn every_rule_is_documented_with_its_severity_and_control() {
    let doc = documented();
    for rule in Rule::ALL {
        let (severity, control) = doc
            .get(rule.id())
            .unwrap_or_else(|| panic!("{} is not in docs/findings.md", rule.id()));
        assert_eq!(
            severity,
            rule.severity().as_str(),
            "{}: severity",
            rule.id()
        );
        let expected = rule.control().map_or("—".to_string(), |c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        });
        assert_eq!(control, &expected, "{}: control", rule.id());
    }
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    for id in doc.keys() {
        assert!(
            ids.contains(&id.as_str()),
            "docs/findings.md lists {id}, which the audit does not have"
        );
    }
}
