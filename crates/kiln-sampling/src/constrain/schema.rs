//! JSON Schema → a compiled grammar of nodes the byte machine walks.
//!
//! Supported: `type` (one or a list), `properties` + `required` (properties
//! are produced in the schema's order, optional ones may be skipped, no
//! others: OpenAI's strict mode), `additionalProperties` as a schema for
//! objects without `properties`, `items`, `minItems`/`maxItems`, `enum`,
//! `const`, `anyOf`/`oneOf` whose branches start differently (an object, an
//! array, a string, a number, a literal), `minLength`/`maxLength`, `$ref` to
//! `#/$defs/…` or `#/definitions/…`. Annotations (`title`, `description`,
//! `format`, `default`, `examples`) are ignored. Keywords that cannot be
//! guaranteed (`pattern`, `minimum`, `allOf`, …) are refused, never ignored.

use std::collections::HashMap;

use serde_json::Value;

use super::ConstraintError;

/// Index of a node in [`Grammar::nodes`].
pub type NodeId = u32;
/// Index of a literal set in [`Grammar::literals`].
pub type LitId = u32;

/// Sorted byte strings; the matching candidates of a prefix are a range.
#[derive(Debug, Clone)]
pub struct LiteralSet {
    /// The literals, sorted.
    pub items: Vec<Vec<u8>>,
    /// Per literal: the caller's tag (a property index for object keys).
    pub tags: Vec<u32>,
}

impl LiteralSet {
    fn new(mut pairs: Vec<(Vec<u8>, u32)>) -> Self {
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        let (items, tags) = pairs.into_iter().unzip();
        Self { items, tags }
    }
}

/// One property of an object node.
#[derive(Debug, Clone)]
pub struct Prop {
    /// The value's node.
    pub node: NodeId,
    /// Whether the property must appear.
    pub required: bool,
    /// Bytes of the quoted key.
    pub key_len: u32,
}

/// A grammar node: what a JSON value at this place may be.
#[derive(Debug, Clone)]
pub enum Node {
    /// An object with known properties, produced in order.
    Object {
        /// The properties in schema order.
        props: Vec<Prop>,
        /// Per start position `i`: the keys that may come next (`props[i..]`
        /// up to and including the first required one), tagged by index.
        key_sets: Vec<LitId>,
    },
    /// An object with free keys and values of one node.
    Map {
        /// The values' node.
        values: NodeId,
    },
    /// An array of one node.
    Array {
        /// The items' node.
        items: NodeId,
        /// Fewest items.
        min: u32,
        /// Most items.
        max: u32,
    },
    /// A string with a length range in characters.
    String {
        /// Fewest characters.
        min: u32,
        /// Most characters.
        max: u32,
    },
    /// A JSON number (no exponent); `integer` allows digits only.
    Number {
        /// Integers only.
        integer: bool,
    },
    /// One of a set of exact texts (enum, const, booleans, null, labels).
    Literals(LitId),
    /// One of several nodes, told apart by their first byte.
    Union(Vec<NodeId>),
}

/// What the whole output must be.
#[derive(Debug, Clone)]
pub struct Grammar {
    /// The nodes; `root` is where the output starts.
    pub nodes: Vec<Node>,
    /// Literal sets referred to by nodes.
    pub literals: Vec<LiteralSet>,
    /// The start node.
    pub root: NodeId,
    /// Per node: the fewest bytes of a value of it.
    pub min_len: Vec<u32>,
}

/// Deepest nesting a schema may have.
pub const MAX_DEPTH: usize = 24;

const IGNORED: &[&str] = &[
    "title",
    "description",
    "format",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "strict",
    "readOnly",
    "writeOnly",
    "deprecated",
];

impl Grammar {
    /// Any JSON value (OpenAI's `json_object` asks for an object: see
    /// [`Grammar::any_object`]).
    pub fn any_value() -> Self {
        let mut b = Builder::default();
        let root = b.any();
        b.finish(root)
    }

    /// Any JSON object.
    pub fn any_object() -> Self {
        let mut b = Builder::default();
        let any = b.any();
        let root = b.push(Node::Map { values: any });
        b.finish(root)
    }

    /// Exactly one of `labels` (raw text, not JSON).
    pub fn choice(labels: &[String]) -> Result<Self, ConstraintError> {
        if labels.is_empty() || labels.iter().any(String::is_empty) {
            return Err(ConstraintError::Schema(
                "labels must be a non-empty list of non-empty strings".into(),
            ));
        }
        let mut b = Builder::default();
        let set = b.literal_set(labels.iter().map(|l| l.as_bytes().to_vec()).collect());
        let root = b.push(Node::Literals(set));
        b.finish_checked(root)
    }

    /// Compiles a JSON Schema.
    pub fn from_schema(schema: &Value) -> Result<Self, ConstraintError> {
        let mut b = Builder {
            defs: collect_defs(schema),
            ..Builder::default()
        };
        let root = b.compile(schema, "#", 0)?;
        b.finish_checked(root)
    }
}

fn collect_defs(schema: &Value) -> HashMap<String, Value> {
    let mut defs = HashMap::new();
    for key in ["$defs", "definitions"] {
        if let Some(map) = schema.get(key).and_then(Value::as_object) {
            for (name, s) in map {
                defs.insert(format!("#/{key}/{name}"), s.clone());
            }
        }
    }
    defs
}

#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    literals: Vec<LiteralSet>,
    defs: HashMap<String, Value>,
    /// `$ref` targets compiled so far (recursion points at the same node).
    refs: HashMap<String, NodeId>,
    any: Option<NodeId>,
}

fn err(path: &str, message: impl std::fmt::Display) -> ConstraintError {
    ConstraintError::Schema(format!("{path}: {message}"))
}

impl Builder {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    fn literal_set(&mut self, items: Vec<Vec<u8>>) -> LitId {
        let pairs = items.into_iter().zip(0..).collect();
        self.literals.push(LiteralSet::new(pairs));
        (self.literals.len() - 1) as LitId
    }

    /// Any JSON value (recursive: containers of any values).
    fn any(&mut self) -> NodeId {
        if let Some(id) = self.any {
            return id;
        }
        let id = self.push(Node::Union(Vec::new()));
        self.any = Some(id);
        let map = self.push(Node::Map { values: id });
        let array = self.push(Node::Array {
            items: id,
            min: 0,
            max: u32::MAX,
        });
        let string = self.push(Node::String {
            min: 0,
            max: u32::MAX,
        });
        let number = self.push(Node::Number { integer: false });
        let set = self.literal_set(vec![b"true".to_vec(), b"false".to_vec(), b"null".to_vec()]);
        let lits = self.push(Node::Literals(set));
        self.nodes[id as usize] = Node::Union(vec![map, array, string, number, lits]);
        id
    }

    fn compile(
        &mut self,
        schema: &Value,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, ConstraintError> {
        if depth > MAX_DEPTH {
            return Err(err(path, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let obj = match schema {
            Value::Bool(true) => return Ok(self.any()),
            Value::Object(o) => o,
            _ => return Err(err(path, "a schema must be an object or `true`")),
        };
        if let Some(r) = obj.get("$ref") {
            let target = r
                .as_str()
                .ok_or_else(|| err(path, "$ref must be a string"))?;
            if let Some(&id) = self.refs.get(target) {
                return Ok(id);
            }
            let def = self.defs.get(target).cloned().ok_or_else(|| {
                err(
                    path,
                    format!("$ref {target:?} not found (only #/$defs/… and #/definitions/…)"),
                )
            })?;
            // Reserve the node so recursive references resolve to it.
            let id = self.push(Node::Union(Vec::new()));
            self.refs.insert(target.to_string(), id);
            let inner = self.compile(&def, target, depth + 1)?;
            self.nodes[id as usize] = Node::Union(vec![inner]);
            return Ok(id);
        }
        for key in obj.keys() {
            let known = matches!(
                key.as_str(),
                "type"
                    | "properties"
                    | "required"
                    | "additionalProperties"
                    | "items"
                    | "minItems"
                    | "maxItems"
                    | "enum"
                    | "const"
                    | "anyOf"
                    | "oneOf"
                    | "minLength"
                    | "maxLength"
            );
            if !known && !IGNORED.contains(&key.as_str()) {
                return Err(err(
                    path,
                    format!("the keyword {key:?} is not supported by constrained decoding"),
                ));
            }
        }
        if let Some(c) = obj.get("const") {
            return Ok(self.literals_node(std::slice::from_ref(c)));
        }
        if let Some(e) = obj.get("enum") {
            let values = e
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| err(path, "enum must be a non-empty array"))?;
            return Ok(self.literals_node(values));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = obj.get(key) {
                let list = list
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| err(path, format!("{key} must be a non-empty array")))?;
                let mut members = Vec::new();
                for (i, s) in list.iter().enumerate() {
                    members.push(self.compile(s, &format!("{path}/{key}/{i}"), depth + 1)?);
                }
                return self.union(members, path);
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            None => return self.untyped(obj, path, depth),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| err(path, "type list entries must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(err(path, "type must be a string or a list of strings")),
        };
        let mut members = Vec::new();
        for t in types {
            members.push(self.typed(t, obj, path, depth)?);
        }
        if members.len() == 1 {
            return Ok(members[0]);
        }
        self.union(members, path)
    }

    /// A schema without `type`: inferred from its keywords, else any value.
    fn untyped(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, ConstraintError> {
        if obj.contains_key("properties") || obj.contains_key("additionalProperties") {
            return self.typed("object", obj, path, depth);
        }
        if obj.contains_key("items") {
            return self.typed("array", obj, path, depth);
        }
        Ok(self.any())
    }

    fn typed(
        &mut self,
        t: &str,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, ConstraintError> {
        let count = |key: &str, default: u32| -> Result<u32, ConstraintError> {
            match obj.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| err(path, format!("{key} must be a non-negative integer"))),
            }
        };
        Ok(match t {
            "object" => self.object(obj, path, depth)?,
            "array" => {
                let items = match obj.get("items") {
                    Some(s) => self.compile(s, &format!("{path}/items"), depth + 1)?,
                    None => self.any(),
                };
                let (min, max) = (count("minItems", 0)?, count("maxItems", u32::MAX)?);
                if min > max {
                    return Err(err(path, "minItems > maxItems"));
                }
                self.push(Node::Array { items, min, max })
            }
            "string" => {
                let (min, max) = (count("minLength", 0)?, count("maxLength", u32::MAX)?);
                if min > max {
                    return Err(err(path, "minLength > maxLength"));
                }
                self.push(Node::String { min, max })
            }
            "number" => self.push(Node::Number { integer: false }),
            "integer" => self.push(Node::Number { integer: true }),
            "boolean" => self.literals_node(&[Value::Bool(true), Value::Bool(false)]),
            "null" => self.literals_node(&[Value::Null]),
            other => return Err(err(path, format!("unknown type {other:?}"))),
        })
    }

    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, ConstraintError> {
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| err(path, "required must list strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(err(path, "required must be an array")),
        };
        let Some(props) = obj
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
        else {
            let values = match obj.get("additionalProperties") {
                None | Some(Value::Bool(true)) => self.any(),
                Some(Value::Bool(false)) => {
                    let set = self.literal_set(vec![b"{}".to_vec()]);
                    return Ok(self.push(Node::Literals(set)));
                }
                Some(s) => self.compile(s, &format!("{path}/additionalProperties"), depth + 1)?,
            };
            if !required.is_empty() {
                return Err(err(path, "required names properties that are not declared"));
            }
            return Ok(self.push(Node::Map { values }));
        };
        if let Some(missing) = required.iter().find(|r| !props.contains_key(**r)) {
            return Err(err(
                path,
                format!("required property {missing:?} is not in properties"),
            ));
        }
        let mut list = Vec::new();
        let mut keys = Vec::new();
        for (name, s) in props {
            let node = self.compile(s, &format!("{path}/properties/{name}"), depth + 1)?;
            let key = serde_json::to_vec(&Value::String(name.clone())).unwrap_or_default();
            list.push(Prop {
                node,
                required: required.contains(&name.as_str()),
                key_len: key.len() as u32,
            });
            keys.push(key);
        }
        let mut key_sets = Vec::new();
        for start in 0..=list.len() {
            let mut pairs = Vec::new();
            for (i, p) in list.iter().enumerate().skip(start) {
                pairs.push((keys[i].clone(), i as u32));
                if p.required {
                    break;
                }
            }
            self.literals.push(LiteralSet::new(pairs));
            key_sets.push((self.literals.len() - 1) as LitId);
        }
        Ok(self.push(Node::Object {
            props: list,
            key_sets,
        }))
    }

    fn literals_node(&mut self, values: &[Value]) -> NodeId {
        let items = values
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap_or_default())
            .collect();
        let set = self.literal_set(items);
        self.push(Node::Literals(set))
    }

    /// A union; refused when two members can start with the same byte.
    fn union(&mut self, members: Vec<NodeId>, path: &str) -> Result<NodeId, ConstraintError> {
        let mut seen = [false; 256];
        for &m in &members {
            let mut starts = [false; 256];
            self.first_bytes(m, &mut starts, 0);
            for b in 0..256 {
                if starts[b] && seen[b] {
                    return Err(err(
                        path,
                        "anyOf/oneOf/type branches must start differently (e.g. an object and a string); two of them can both start with the same character",
                    ));
                }
                seen[b] |= starts[b];
            }
        }
        Ok(self.push(Node::Union(members)))
    }

    fn first_bytes(&self, node: NodeId, out: &mut [bool; 256], depth: usize) {
        if depth > 64 {
            return;
        }
        match &self.nodes[node as usize] {
            Node::Object { .. } | Node::Map { .. } => out[b'{' as usize] = true,
            Node::Array { .. } => out[b'[' as usize] = true,
            Node::String { .. } => out[b'"' as usize] = true,
            Node::Number { .. } => {
                out[b'-' as usize] = true;
                for d in b'0'..=b'9' {
                    out[d as usize] = true;
                }
            }
            Node::Literals(set) => {
                for item in &self.literals[*set as usize].items {
                    if let Some(&b) = item.first() {
                        out[b as usize] = true;
                    }
                }
            }
            Node::Union(members) => {
                for &m in members {
                    self.first_bytes(m, out, depth + 1);
                }
            }
        }
    }

    fn finish(self, root: NodeId) -> Grammar {
        let min_len = min_lengths(&self.nodes, &self.literals);
        Grammar {
            nodes: self.nodes,
            literals: self.literals,
            root,
            min_len,
        }
    }

    fn finish_checked(self, root: NodeId) -> Result<Grammar, ConstraintError> {
        let g = self.finish(root);
        if g.min_len[root as usize] == u32::MAX {
            return Err(ConstraintError::Schema(
                "the schema admits no finite value".into(),
            ));
        }
        Ok(g)
    }
}

/// Fewest bytes of a value per node, by fixpoint iteration (recursive
/// schemas settle once every node's cheapest form is found).
fn min_lengths(nodes: &[Node], literals: &[LiteralSet]) -> Vec<u32> {
    let mut len = vec![u32::MAX; nodes.len()];
    let add = |a: u32, b: u32| a.saturating_add(b);
    loop {
        let mut changed = false;
        for (i, node) in nodes.iter().enumerate() {
            let value = match node {
                Node::Object { props, .. } => {
                    let mut total = 2u32;
                    let mut first = true;
                    for p in props.iter().filter(|p| p.required) {
                        // `"key":value`, with a comma between properties.
                        let key = p.key_len + 1 + u32::from(!first);
                        total = add(total, add(key, len[p.node as usize]));
                        first = false;
                    }
                    total
                }
                Node::Map { .. } => 2,
                Node::Array { items, min, .. } => {
                    if *min == 0 {
                        2
                    } else {
                        add(1, add(len[*items as usize], 1).saturating_mul(*min))
                    }
                }
                Node::String { min, .. } => add(2, *min),
                Node::Number { .. } => 1,
                Node::Literals(set) => literals[*set as usize]
                    .items
                    .iter()
                    .map(|s| s.len() as u32)
                    .min()
                    .unwrap_or(u32::MAX),
                Node::Union(members) => members
                    .iter()
                    .map(|&m| len[m as usize])
                    .min()
                    .unwrap_or(u32::MAX),
            };
            if value < len[i] {
                len[i] = value;
                changed = true;
            }
        }
        if !changed {
            return len;
        }
    }
}
