//! Metadata filters: equality, ranges and `in` over document and chunk
//! metadata (chunk values win).

use serde_json::{Map, Value};

/// A condition on one metadata key.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `key == value`.
    Eq(String, Value),
    /// `key` is one of the values.
    In(String, Vec<Value>),
    /// `lo <= key <= hi` for numbers (either bound optional).
    Range(String, Option<f64>, Option<f64>),
    /// All conditions hold.
    And(Vec<Filter>),
}

impl Filter {
    /// Whether `meta` satisfies the filter.
    pub fn matches(&self, meta: &Map<String, Value>) -> bool {
        match self {
            Filter::Eq(k, v) => meta.get(k) == Some(v),
            Filter::In(k, vs) => meta.get(k).is_some_and(|x| vs.contains(x)),
            Filter::Range(k, lo, hi) => meta
                .get(k)
                .and_then(Value::as_f64)
                .is_some_and(|x| lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x <= h)),
            Filter::And(all) => all.iter().all(|f| f.matches(meta)),
        }
    }

    /// Parses `key=value`, `key=a|b|c` (in), `key>=n`, `key<=n`; values are
    /// JSON when they parse as JSON, else strings.
    pub fn parse(text: &str) -> Option<Filter> {
        let value = |s: &str| serde_json::from_str(s).unwrap_or(Value::String(s.to_string()));
        if let Some((k, v)) = text.split_once(">=") {
            return v
                .trim()
                .parse()
                .ok()
                .map(|n| Filter::Range(k.trim().into(), Some(n), None));
        }
        if let Some((k, v)) = text.split_once("<=") {
            return v
                .trim()
                .parse()
                .ok()
                .map(|n| Filter::Range(k.trim().into(), None, Some(n)));
        }
        let (k, v) = text.split_once('=')?;
        if v.contains('|') {
            return Some(Filter::In(
                k.trim().into(),
                v.split('|').map(value).collect(),
            ));
        }
        Some(Filter::Eq(k.trim().into(), value(v.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_match_as_documented() {
        let meta = json!({"lang": "en", "year": 2021, "tag": "a"});
        let meta = meta.as_object().unwrap();
        assert!(Filter::parse("lang=en").unwrap().matches(meta));
        assert!(!Filter::parse("lang=de").unwrap().matches(meta));
        assert!(Filter::parse("year>=2020").unwrap().matches(meta));
        assert!(!Filter::parse("year<=2020").unwrap().matches(meta));
        assert!(Filter::parse("tag=b|a").unwrap().matches(meta));
        assert!(Filter::parse("year=2021").unwrap().matches(meta));
        assert!(Filter::parse("nothing").is_none());
    }
}
