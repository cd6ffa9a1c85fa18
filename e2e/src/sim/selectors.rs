//! Label and field selectors of list and watch requests.

use serde_json::Value;

use super::errors::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` plus `fieldSelector`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    labels: Vec<Req>,
    fields: Vec<Req>,
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_req(s: &str) -> Result<Req, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: {s:?}"));
    if let Some(key) = s.strip_prefix('!') {
        return Ok(Req::NotExists(key.trim().to_string()));
    }
    if let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) {
        // `)` before `(` is malformed, not a set (and would be an inverted slice).
        if close < open {
            return Err(bad());
        }
        let mut head = s[..open].split_whitespace();
        let (Some(key), Some(op), None) = (head.next(), head.next(), head.next()) else {
            return Err(bad());
        };
        let values = s[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        return match op {
            "in" => Ok(Req::In(key.to_string(), values.collect())),
            "notin" => Ok(Req::NotIn(key.to_string(), values.collect())),
            _ => Err(bad()),
        };
    }
    parse_eq(s).map(Ok).unwrap_or_else(|| {
        if s.contains(char::is_whitespace) || s.contains('=') {
            Err(bad())
        } else {
            Ok(Req::Exists(s.to_string()))
        }
    })
}

fn parse_eq(s: &str) -> Option<Req> {
    if let Some((k, v)) = s.split_once("!=") {
        return Some(Req::NotEq(k.trim().to_string(), v.trim().to_string()));
    }
    let (k, v) = s.split_once("==").or_else(|| s.split_once('='))?;
    Some(Req::Eq(k.trim().to_string(), v.trim().to_string()))
}

impl Selector {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = split_top(labels.unwrap_or(""))
            .into_iter()
            .map(parse_label_req)
            .collect::<Result<_, _>>()?;
        let fields = split_top(fields.unwrap_or(""))
            .into_iter()
            .map(|s| {
                let req = parse_eq(s).ok_or_else(|| {
                    ApiError::bad_request(format!("invalid field selector: {s:?}"))
                })?;
                let (Req::Eq(k, _) | Req::NotEq(k, _)) = &req else {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: {s:?}"
                    )));
                };
                // Simplification: only the two field labels every resource supports.
                if k != "metadata.name" && k != "metadata.namespace" {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {k}"
                    )));
                }
                Ok(req)
            })
            .collect::<Result<_, _>>()?;
        Ok(Selector { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = |k: &str| Some(if k == "metadata.name" { name } else { ns });
        self.labels.iter().all(|r| eval(r, label)) && self.fields.iter().all(|r| eval(r, field))
    }
}

fn eval<'a>(req: &Req, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    match req {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::NotEq(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_operators() {
        let obj = json!({"metadata": {"name": "a", "namespace": "n", "labels": {"env": "prod", "tier": "web"}}});
        let ok = |l: &str| Selector::parse(Some(l), None).unwrap().matches(&obj);
        assert!(ok("env=prod"));
        assert!(ok("env==prod,tier"));
        assert!(!ok("env!=prod"));
        assert!(ok("env in (prod, dev),tier notin (db)"));
        assert!(!ok("env notin (prod)"));
        assert!(ok("!missing"));
        assert!(!ok("!env"));
        assert!(ok("missing notin (x)"));
        assert!(!ok("missing in (x)"));
        let f = |s: &str| Selector::parse(None, Some(s)).unwrap().matches(&obj);
        assert!(f("metadata.name=a,metadata.namespace!=x"));
        assert!(!f("metadata.name=b"));
        assert_eq!(
            Selector::parse(None, Some("spec.x=1")).unwrap_err().code,
            400
        );
        assert_eq!(Selector::parse(Some("a b c"), None).unwrap_err().code, 400);
    }
}
