//! Random JSON Schemas (within what constrained decoding supports) and an
//! independent validator, shared by the constrained-decoding tests.
#![allow(dead_code, clippy::unwrap_used)]

use kiln_sampling::Rng;
use serde_json::{json, Map, Value};

fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// A random schema of at most `depth` nesting levels.
pub fn random_schema(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 6 } else { 9 };
    match pick(rng, kinds) {
        0 => {
            let mut s = json!({"type": "string"});
            if pick(rng, 3) == 0 {
                s["maxLength"] = json!(pick(rng, 12) + 1);
            }
            if pick(rng, 4) == 0 {
                s["minLength"] = json!(pick(rng, 3));
            }
            s
        }
        1 => json!({"type": "integer"}),
        2 => json!({"type": "number"}),
        3 => json!({"type": "boolean"}),
        4 => {
            let pool = [
                "red", "green", "blue", "x", "a b", "naïve", "\"q\"", "1", "12",
            ];
            let n = pick(rng, 4) + 1;
            let mut values: Vec<Value> =
                (0..n).map(|_| json!(pool[pick(rng, pool.len())])).collect();
            if pick(rng, 3) == 0 {
                values.push(json!(pick(rng, 100)));
            }
            if pick(rng, 4) == 0 {
                values.push(Value::Null);
            }
            values.dedup();
            json!({"enum": values})
        }
        5 => {
            if pick(rng, 2) == 0 {
                json!({"type": ["string", "null"]})
            } else {
                json!({"const": "fixed"})
            }
        }
        6 | 7 => {
            let n = pick(rng, 4) + 1;
            let mut props = Map::new();
            let mut required = Vec::new();
            for i in 0..n {
                let name = format!(
                    "{}{}",
                    ["id", "name", "tags", "score", "ok", "x"][pick(rng, 6)],
                    i
                );
                props.insert(name.clone(), random_schema(rng, depth - 1));
                if pick(rng, 3) != 0 {
                    required.push(json!(name));
                }
            }
            json!({"type": "object", "properties": props, "required": required})
        }
        _ => {
            let mut s = json!({"type": "array", "items": random_schema(rng, depth - 1)});
            if pick(rng, 2) == 0 {
                s["maxItems"] = json!(pick(rng, 4) + 1);
            }
            if pick(rng, 3) == 0 {
                s["minItems"] = json!(1);
            }
            s
        }
    }
}

/// Whether `v` is valid against `schema` (the supported keywords only).
pub fn validates(schema: &Value, v: &Value) -> bool {
    if let Some(c) = schema.get("const") {
        return c == v;
    }
    if let Some(e) = schema.get("enum") {
        return e.as_array().unwrap().contains(v);
    }
    if let Some(list) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
        return list.as_array().unwrap().iter().any(|s| validates(s, v));
    }
    let types: Vec<&str> = match schema.get("type") {
        None => return true,
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(l)) => l.iter().map(|t| t.as_str().unwrap()).collect(),
        _ => return false,
    };
    types.iter().any(|t| match *t {
        "string" => v.as_str().is_some_and(|s| {
            let n = s.chars().count() as u64;
            schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_none_or(|m| n <= m)
                && schema
                    .get("minLength")
                    .and_then(Value::as_u64)
                    .is_none_or(|m| n >= m)
        }),
        "integer" => {
            v.is_i64()
                || v.is_u64()
                || v.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && !v.to_string().contains('.'))
        }
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.as_array().is_some_and(|a| {
            let n = a.len() as u64;
            schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_none_or(|m| n <= m)
                && schema
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .is_none_or(|m| n >= m)
                && a.iter()
                    .all(|x| schema.get("items").is_none_or(|s| validates(s, x)))
        }),
        "object" => v.as_object().is_some_and(|o| {
            let props = schema.get("properties").and_then(Value::as_object);
            let required = schema.get("required").and_then(Value::as_array);
            required.is_none_or(|r| r.iter().all(|k| o.contains_key(k.as_str().unwrap())))
                && o.iter()
                    .all(|(k, x)| props.is_some_and(|p| p.get(k).is_some_and(|s| validates(s, x))))
        }),
        _ => false,
    })
}
