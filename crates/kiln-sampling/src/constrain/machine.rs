//! The byte machine: a pushdown recogniser of the grammar's language. A
//! [`State`] is a small fixed-size stack (copied, never allocated), so the
//! vocabulary walk can branch at every trie node for the price of a memcpy.

use super::schema::{Grammar, LitId, Node, NodeId, MAX_DEPTH};

/// Stack capacity: schema nesting plus the frames inside one value.
const CAPACITY: usize = MAX_DEPTH + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjPhase {
    /// After `{`.
    Open,
    /// After `,`: a key must follow.
    Key,
    /// A key is being read (the frame above).
    InKey,
    /// After the key of property `p`: `:` must follow.
    Colon(u16),
    /// After a value: `,` or `}`.
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrPhase {
    Open,
    Comma,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumPhase {
    Sign,
    Zero,
    Int,
    Dot,
    Frac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// A value of this node must start here.
    Value(NodeId),
    Object {
        node: NodeId,
        next: u16,
        phase: ObjPhase,
    },
    Map {
        node: NodeId,
        phase: ObjPhase,
    },
    Array {
        node: NodeId,
        count: u32,
        phase: ArrPhase,
    },
    /// Inside a string: characters so far, escape progress, UTF-8 bytes
    /// owed and the range the next of them must lie in.
    Str {
        len: u32,
        min: u32,
        max: u32,
        escape: u8,
        hex: u8,
        utf8: u8,
        next_lo: u8,
        next_hi: u8,
    },
    /// Matching literals `lo..hi` of a set, `pos` bytes in.
    Lit {
        set: LitId,
        lo: u32,
        hi: u32,
        pos: u32,
    },
    Num {
        phase: NumPhase,
        integer: bool,
        digits: u8,
    },
}

/// Most digits before and after the decimal point (so every number is
/// exact in an `f64` and every integer fits an `i64`).
const MAX_DIGITS: u8 = 15;

/// Where the machine is.
#[derive(Clone, Copy)]
pub struct State {
    frames: [Frame; CAPACITY],
    len: u8,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.stack()).finish()
    }
}

impl State {
    /// The start: a value of the grammar's root.
    pub fn new(grammar: &Grammar) -> Self {
        let mut s = Self {
            frames: [Frame::Value(0); CAPACITY],
            len: 0,
        };
        s.push(Frame::Value(grammar.root));
        s
    }

    fn stack(&self) -> &[Frame] {
        &self.frames[..self.len as usize]
    }

    fn push(&mut self, f: Frame) -> bool {
        if (self.len as usize) < CAPACITY {
            self.frames[self.len as usize] = f;
            self.len += 1;
            true
        } else {
            false
        }
    }

    fn top(&mut self) -> Option<&mut Frame> {
        let i = (self.len as usize).checked_sub(1)?;
        self.frames.get_mut(i)
    }

    /// True when the whole value has been produced and nothing may follow.
    pub fn is_done(&self) -> bool {
        self.len == 0
    }

    /// True when the output may end here: done, or a top-level number or
    /// literal that is complete but could still be extended.
    pub fn can_end(&self, g: &Grammar) -> bool {
        match self.stack() {
            [] => true,
            [Frame::Num { phase, .. }] => {
                matches!(phase, NumPhase::Zero | NumPhase::Int | NumPhase::Frac)
            }
            [Frame::Lit { set, lo, pos, .. }] => {
                g.literals[*set as usize].items[*lo as usize].len() == *pos as usize
            }
            _ => false,
        }
    }

    /// When the top of the stack is plain string content (any run of
    /// ordinary characters keeps the machine in the same frame): the
    /// characters that still fit and those still owed to `minLength`.
    pub fn in_plain_string(&self) -> Option<(u32, u32)> {
        match self.stack().last() {
            Some(Frame::Str {
                len,
                min,
                max,
                escape: 0,
                hex: 0,
                utf8: 0,
                ..
            }) => Some((max - len, min.saturating_sub(*len))),
            _ => None,
        }
    }

    /// Feeds all of `bytes`; false (state undefined) when any is refused.
    pub fn feed(&mut self, g: &Grammar, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.step(g, b))
    }

    /// Feeds one byte; false when the grammar does not allow it here.
    pub fn step(&mut self, g: &Grammar, b: u8) -> bool {
        // A byte may close lazily-ended frames (numbers, literals) and then
        // be read by the frame below, so loop until someone consumes it.
        loop {
            let Some(top) = self.top() else { return false };
            match *top {
                Frame::Value(node) => match &g.nodes[node as usize] {
                    Node::Object { .. } => {
                        if b != b'{' {
                            return false;
                        }
                        *top = Frame::Object {
                            node,
                            next: 0,
                            phase: ObjPhase::Open,
                        };
                        return true;
                    }
                    Node::Map { .. } => {
                        if b != b'{' {
                            return false;
                        }
                        *top = Frame::Map {
                            node,
                            phase: ObjPhase::Open,
                        };
                        return true;
                    }
                    Node::Array { .. } => {
                        if b != b'[' {
                            return false;
                        }
                        *top = Frame::Array {
                            node,
                            count: 0,
                            phase: ArrPhase::Open,
                        };
                        return true;
                    }
                    Node::String { min, max } => {
                        if b != b'"' {
                            return false;
                        }
                        *top = Frame::Str {
                            len: 0,
                            min: *min,
                            max: *max,
                            escape: 0,
                            hex: 0,
                            utf8: 0,
                            next_lo: 0x80,
                            next_hi: 0xBF,
                        };
                        return true;
                    }
                    Node::Number { integer } => {
                        let phase = match b {
                            b'-' => NumPhase::Sign,
                            b'0' => NumPhase::Zero,
                            b'1'..=b'9' => NumPhase::Int,
                            _ => return false,
                        };
                        let digits = u8::from(phase != NumPhase::Sign);
                        *top = Frame::Num {
                            phase,
                            integer: *integer,
                            digits,
                        };
                        return true;
                    }
                    Node::Literals(set) => {
                        let items = &g.literals[*set as usize].items;
                        *top = Frame::Lit {
                            set: *set,
                            lo: 0,
                            hi: items.len() as u32,
                            pos: 0,
                        };
                        // Fall through to the literal matcher below.
                    }
                    Node::Union(members) => {
                        let Some(&m) = members.iter().find(|&&m| starts_with(g, m, b, 0)) else {
                            return false;
                        };
                        *top = Frame::Value(m);
                    }
                },
                Frame::Object { node, next, phase } => {
                    let Node::Object { props, key_sets } = &g.nodes[node as usize] else {
                        return false;
                    };
                    let rest_required = props.iter().skip(next as usize).any(|p| p.required);
                    match (phase, b) {
                        (ObjPhase::Open | ObjPhase::Key, b'"') if (next as usize) < props.len() => {
                            let set = key_sets[next as usize];
                            let hi = g.literals[set as usize].items.len() as u32;
                            *top = Frame::Object {
                                node,
                                next,
                                phase: ObjPhase::InKey,
                            };
                            return self.push(Frame::Lit {
                                set,
                                lo: 0,
                                hi,
                                pos: 0,
                            }) && self.step(g, b);
                        }
                        (ObjPhase::Open | ObjPhase::Value, b'}') if !rest_required => {
                            return self.pop_done(g);
                        }
                        (ObjPhase::Colon(p), b':') => {
                            *top = Frame::Object {
                                node,
                                next,
                                phase: ObjPhase::Value,
                            };
                            return self.push(Frame::Value(props[p as usize].node));
                        }
                        (ObjPhase::Value, b',') if (next as usize) < props.len() => {
                            *top = Frame::Object {
                                node,
                                next,
                                phase: ObjPhase::Key,
                            };
                            return true;
                        }
                        _ => return false,
                    }
                }
                Frame::Map { node, phase } => {
                    let Node::Map { values } = &g.nodes[node as usize] else {
                        return false;
                    };
                    match (phase, b) {
                        (ObjPhase::Open | ObjPhase::Key, b'"') => {
                            *top = Frame::Map {
                                node,
                                phase: ObjPhase::InKey,
                            };
                            return self.push(Frame::Str {
                                len: 0,
                                min: 0,
                                max: u32::MAX,
                                escape: 0,
                                hex: 0,
                                utf8: 0,
                                next_lo: 0x80,
                                next_hi: 0xBF,
                            });
                        }
                        (ObjPhase::Open | ObjPhase::Value, b'}') => return self.pop_done(g),
                        (ObjPhase::Colon(_), b':') => {
                            *top = Frame::Map {
                                node,
                                phase: ObjPhase::Value,
                            };
                            return self.push(Frame::Value(*values));
                        }
                        (ObjPhase::Value, b',') => {
                            *top = Frame::Map {
                                node,
                                phase: ObjPhase::Key,
                            };
                            return true;
                        }
                        _ => return false,
                    }
                }
                Frame::Array { node, count, phase } => {
                    let Node::Array { items, min, max } = &g.nodes[node as usize] else {
                        return false;
                    };
                    match (phase, b) {
                        (ArrPhase::Open | ArrPhase::Value, b']') if count >= *min => {
                            return self.pop_done(g);
                        }
                        (ArrPhase::Value, b',') if count < *max => {
                            *top = Frame::Array {
                                node,
                                count,
                                phase: ArrPhase::Comma,
                            };
                            return true;
                        }
                        (ArrPhase::Open, _) if *max > 0 => {
                            *top = Frame::Array {
                                node,
                                count: count + 1,
                                phase: ArrPhase::Value,
                            };
                            if !self.push(Frame::Value(*items)) {
                                return false;
                            }
                        }
                        (ArrPhase::Comma, _) => {
                            *top = Frame::Array {
                                node,
                                count: count + 1,
                                phase: ArrPhase::Value,
                            };
                            if !self.push(Frame::Value(*items)) {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                }
                Frame::Str {
                    len,
                    min,
                    max,
                    escape,
                    hex,
                    utf8,
                    next_lo,
                    next_hi,
                } => {
                    let mut f = Frame::Str {
                        len,
                        min,
                        max,
                        escape,
                        hex,
                        utf8,
                        next_lo: 0x80,
                        next_hi: 0xBF,
                    };
                    let Frame::Str {
                        len: ref mut n,
                        escape: ref mut e,
                        hex: ref mut h,
                        utf8: ref mut u,
                        next_lo: ref mut lo,
                        next_hi: ref mut hi,
                        ..
                    } = f
                    else {
                        return false;
                    };
                    let ok = if utf8 > 0 {
                        *u -= 1;
                        (next_lo..=next_hi).contains(&b)
                    } else if hex > 0 {
                        // No `\uD…`: a lone surrogate is not valid JSON text.
                        *h -= 1;
                        b.is_ascii_hexdigit() && !(hex == 4 && matches!(b, b'd' | b'D'))
                    } else if escape == 1 {
                        *e = 0;
                        match b {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => true,
                            b'u' => {
                                *h = 4;
                                true
                            }
                            _ => false,
                        }
                    } else if b == b'"' {
                        return len >= min && self.pop_done(g);
                    } else if len >= max || matches!(b, 0..=0x1F | 0x7F) {
                        false
                    } else if b == b'\\' {
                        *n += 1;
                        *e = 1;
                        true
                    } else if let Some((owed, (first_lo, first_hi))) = kiln_core::utf8_lead(b) {
                        *n += 1;
                        *u = owed;
                        *lo = first_lo;
                        *hi = first_hi;
                        true
                    } else {
                        false
                    };
                    if ok {
                        *top = f;
                    }
                    return ok;
                }
                Frame::Num {
                    phase,
                    integer,
                    digits,
                } => {
                    let room = digits < MAX_DIGITS;
                    let next = match (phase, b) {
                        // `-0` is a float to most parsers: not an integer.
                        (NumPhase::Sign, b'0') if !integer => Some((NumPhase::Zero, 1)),
                        (NumPhase::Sign, b'1'..=b'9') => Some((NumPhase::Int, 1)),
                        (NumPhase::Int, b'0'..=b'9') if room => Some((NumPhase::Int, digits + 1)),
                        (NumPhase::Zero | NumPhase::Int, b'.') if !integer => {
                            Some((NumPhase::Dot, 0))
                        }
                        (NumPhase::Dot, b'0'..=b'9') => Some((NumPhase::Frac, 1)),
                        (NumPhase::Frac, b'0'..=b'9') if room => Some((NumPhase::Frac, digits + 1)),
                        _ => None,
                    };
                    match next {
                        Some((phase, digits)) => {
                            *top = Frame::Num {
                                phase,
                                integer,
                                digits,
                            };
                            return true;
                        }
                        None if matches!(
                            phase,
                            NumPhase::Zero | NumPhase::Int | NumPhase::Frac
                        ) =>
                        {
                            // The number ended; the byte belongs to the parent.
                            if !self.pop_done(g) || self.is_done() {
                                return false;
                            }
                        }
                        None => return false,
                    }
                }
                Frame::Lit { set, lo, hi, pos } => {
                    let items = &g.literals[set as usize].items;
                    let p = pos as usize;
                    let (mut a, mut z) = (lo as usize, hi as usize);
                    while a < z && items[a].get(p).is_none_or(|&c| c < b) {
                        a += 1;
                    }
                    while z > a && items[z - 1].get(p).is_none_or(|&c| c > b) {
                        z -= 1;
                    }
                    if a < z {
                        *top = Frame::Lit {
                            set,
                            lo: a as u32,
                            hi: z as u32,
                            pos: pos + 1,
                        };
                        // Eagerly finish a literal nothing else extends.
                        if z - a == 1 && items[a].len() == p + 1 {
                            return self.pop_done(g);
                        }
                        return true;
                    }
                    // No literal continues with `b`: end here if one is complete.
                    if items[lo as usize].len() != p || !self.pop_done(g) || self.is_done() {
                        return false;
                    }
                }
            }
        }
    }

    /// Pops a finished value and tells its parent (keys become the
    /// property they name).
    fn pop_done(&mut self, g: &Grammar) -> bool {
        let Some(top) = self.top().copied() else {
            return false;
        };
        self.len -= 1;
        let Some(parent) = self.top() else {
            return true;
        };
        match (parent, top) {
            (Frame::Object { phase, next, .. }, Frame::Lit { set, lo, .. })
                if *phase == ObjPhase::InKey =>
            {
                let p = g.literals[set as usize].tags[lo as usize] as u16;
                *phase = ObjPhase::Colon(p);
                *next = p + 1;
            }
            (Frame::Map { phase, .. }, _) if *phase == ObjPhase::InKey => {
                *phase = ObjPhase::Colon(0);
            }
            _ => {}
        }
        true
    }

    /// Fewest bytes that complete the output from here.
    pub fn min_completion(&self, g: &Grammar) -> u32 {
        let mut total = 0u32;
        for (i, f) in self.stack().iter().enumerate() {
            let more = match *f {
                Frame::Value(node) => g.min_len[node as usize],
                Frame::Object { node, next, phase } => {
                    object_completion(g, node, next, phase, self.stack().get(i + 1))
                }
                Frame::Map { node, phase } => {
                    let Node::Map { values } = &g.nodes[node as usize] else {
                        return u32::MAX;
                    };
                    match phase {
                        ObjPhase::Open | ObjPhase::Value => 1,
                        ObjPhase::Key => 2 + 1 + g.min_len[*values as usize] + 1,
                        ObjPhase::Colon(_) | ObjPhase::InKey => 1 + g.min_len[*values as usize] + 1,
                    }
                }
                Frame::Array { node, count, phase } => {
                    let Node::Array { items, min, .. } = &g.nodes[node as usize] else {
                        return u32::MAX;
                    };
                    let item = g.min_len[*items as usize].saturating_add(1);
                    let owed = min.saturating_sub(count);
                    match phase {
                        ArrPhase::Open => {
                            if *min == 0 {
                                1
                            } else {
                                item.saturating_mul(*min)
                            }
                        }
                        ArrPhase::Comma => item.saturating_mul(owed.max(1)),
                        ArrPhase::Value => item.saturating_mul(owed).saturating_add(1),
                    }
                }
                Frame::Str {
                    len,
                    min,
                    escape,
                    hex,
                    utf8,
                    ..
                } => {
                    let content = min.saturating_sub(len);
                    content + u32::from(escape) + u32::from(hex) + u32::from(utf8) + 1
                }
                Frame::Num { phase, .. } => {
                    u32::from(matches!(phase, NumPhase::Sign | NumPhase::Dot))
                }
                // A key's bytes are counted by its object (which knows
                // what each candidate key implies).
                Frame::Lit { .. }
                    if matches!(
                        i.checked_sub(1).and_then(|j| self.stack().get(j)),
                        Some(Frame::Object {
                            phase: ObjPhase::InKey,
                            ..
                        })
                    ) =>
                {
                    0
                }
                Frame::Lit { set, lo, hi, pos } => g.literals[set as usize].items
                    [lo as usize..hi as usize]
                    .iter()
                    .map(|s| s.len() as u32 - pos)
                    .min()
                    .unwrap_or(u32::MAX),
            };
            total = total.saturating_add(more);
        }
        total
    }
}

/// Fewest bytes to close an object frame, including the key being read
/// (`key`, the frame above it) when there is one.
fn object_completion(
    g: &Grammar,
    node: NodeId,
    next: u16,
    phase: ObjPhase,
    key: Option<&Frame>,
) -> u32 {
    let Node::Object { props, .. } = &g.nodes[node as usize] else {
        return u32::MAX;
    };
    // `,"key":value` for every required property from `from` on, then `}`.
    let rest = |from: usize, mut first: bool| -> u32 {
        let mut n = 1u32;
        for p in props.iter().skip(from).filter(|p| p.required) {
            n = n.saturating_add(p.key_len + 1 + u32::from(!first) + g.min_len[p.node as usize]);
            first = false;
        }
        n
    };
    let next = next as usize;
    match phase {
        ObjPhase::Open => rest(next, true),
        ObjPhase::Value => rest(next, false),
        ObjPhase::Colon(p) => {
            (1 + g.min_len[props[p as usize].node as usize]).saturating_add(rest(next, false))
        }
        ObjPhase::Key => {
            // The comma is written: some property must follow.
            if props.iter().skip(next).any(|p| p.required) {
                rest(next, true)
            } else {
                props
                    .iter()
                    .enumerate()
                    .skip(next)
                    .map(|(j, p)| {
                        (p.key_len + 1 + g.min_len[p.node as usize])
                            .saturating_add(rest(j + 1, false))
                    })
                    .min()
                    .unwrap_or(u32::MAX)
            }
        }
        ObjPhase::InKey => {
            let Some(&Frame::Lit { set, lo, hi, pos }) = key else {
                return u32::MAX;
            };
            let lits = &g.literals[set as usize];
            (lo as usize..hi as usize)
                .map(|k| {
                    let p = lits.tags[k] as usize;
                    let key_left = lits.items[k].len() as u32 - pos;
                    (key_left + 1 + g.min_len[props[p].node as usize])
                        .saturating_add(rest(p + 1, false))
                })
                .min()
                .unwrap_or(u32::MAX)
        }
    }
}

/// Whether a value of `node` can start with byte `b`.
fn starts_with(g: &Grammar, node: NodeId, b: u8, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    match &g.nodes[node as usize] {
        Node::Object { .. } | Node::Map { .. } => b == b'{',
        Node::Array { .. } => b == b'[',
        Node::String { .. } => b == b'"',
        Node::Number { .. } => b == b'-' || b.is_ascii_digit(),
        Node::Literals(set) => g.literals[*set as usize]
            .items
            .iter()
            .any(|s| s.first() == Some(&b)),
        Node::Union(members) => members.iter().any(|&m| starts_with(g, m, b, depth + 1)),
    }
}
