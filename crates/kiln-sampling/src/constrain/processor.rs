//! The constraint as a logits processor: masks tokens the machine refuses.

use std::sync::Arc;

use kiln_core::{OutputConstraint, TokenBytes, TokenId};

use super::machine::State;
use super::schema::Grammar;
use super::ConstraintError;
use crate::processor::{History, LogitsProcessor};

/// Keeps generation inside a grammar. Clone it per sequence (the state is
/// copied, the grammar and vocabulary shared).
#[derive(Clone)]
pub struct Constraint {
    grammar: Arc<Grammar>,
    vocab: Arc<TokenBytes>,
    eos: Vec<TokenId>,
    max_new_tokens: usize,
    state: State,
    /// A token the machine refused was forced in (never by this processor's
    /// own mask): from then on only EOS is allowed.
    dead: bool,
    allowed: Vec<bool>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("state", &self.state)
            .field("dead", &self.dead)
            .finish()
    }
}

impl Constraint {
    /// A constraint for `grammar` over `vocab`, ending with any of `eos`,
    /// finishing within `max_new_tokens` whenever that is possible.
    pub fn new(
        grammar: Arc<Grammar>,
        vocab: Arc<TokenBytes>,
        eos: &[TokenId],
        max_new_tokens: usize,
    ) -> Result<Self, ConstraintError> {
        if eos.is_empty() {
            return Err(ConstraintError::NoEos);
        }
        let state = State::new(&grammar);
        Ok(Self {
            grammar,
            vocab,
            eos: eos.to_vec(),
            max_new_tokens,
            state,
            dead: false,
            allowed: Vec::new(),
        })
    }

    /// Compiles a request's [`OutputConstraint`].
    pub fn grammar_for(output: &OutputConstraint) -> Result<Grammar, ConstraintError> {
        match output {
            OutputConstraint::JsonObject => Ok(Grammar::any_object()),
            OutputConstraint::JsonSchema(schema) => Grammar::from_schema(schema),
            OutputConstraint::Choice(labels) => Grammar::choice(labels),
        }
    }

    /// True once a complete value has been produced.
    pub fn is_complete(&self) -> bool {
        self.state.can_end(&self.grammar)
    }

    /// Marks in `self.allowed` every token that keeps the output valid and
    /// closable within `budget` more tokens after it.
    fn compute_allowed(&mut self, budget: u32) {
        let n = self.vocab.len();
        self.allowed.clear();
        self.allowed.resize(n, false);
        let g = &*self.grammar;
        if self.dead || self.state.is_done() {
            return;
        }
        if let Some((room, owed)) = self.state.in_plain_string() {
            // Plain text keeps the string open whatever the rest of the
            // state is: allow it by length (and by what it leaves to
            // close), walk only the other tokens.
            let now = self.state.min_completion(g);
            let chars = self.vocab.plain_chars();
            let pending = self.vocab.plain_owed();
            for (id, (&n, &p)) in chars.iter().zip(pending).enumerate() {
                if n != 0 && n <= room {
                    let after = now.saturating_sub(n.min(owed)) + u32::from(p);
                    self.allowed[id] = after <= budget;
                }
            }
            walk(
                g,
                self.vocab.special_trie(),
                &self.state,
                budget,
                &mut self.allowed,
            );
        } else {
            walk(g, self.vocab.trie(), &self.state, budget, &mut self.allowed);
        }
    }
}

/// Depth-first walk of the token trie, carrying a machine state per node.
fn walk(
    g: &Grammar,
    trie: &kiln_core::TokenTrie,
    start: &State,
    budget: u32,
    allowed: &mut [bool],
) {
    let mut stack: Vec<(u32, State)> = vec![(0, *start)];
    while let Some((node, state)) = stack.pop() {
        for &(byte, child) in trie.children(node) {
            let mut next = state;
            if !next.step(g, byte) {
                continue;
            }
            let tokens = trie.tokens_at(child);
            if !tokens.is_empty() && next.min_completion(g) <= budget {
                for &id in tokens {
                    if let Some(a) = allowed.get_mut(id as usize) {
                        *a = true;
                    }
                }
            }
            stack.push((child, next));
        }
    }
}

impl LogitsProcessor for Constraint {
    fn apply(&mut self, logits: &mut [f32], history: &History<'_>) {
        let generated = history.generated().len();
        // Tokens that may follow the one chosen now, keeping one for EOS.
        let budget = self.max_new_tokens.saturating_sub(generated + 2);
        self.compute_allowed(u32::try_from(budget).unwrap_or(u32::MAX));
        let can_end = self.dead || self.state.can_end(&self.grammar);
        for (id, logit) in logits.iter_mut().enumerate() {
            let ok = self.allowed.get(id).copied().unwrap_or(false)
                || (can_end && self.eos.contains(&(id as TokenId)));
            if !ok {
                *logit = f32::NEG_INFINITY;
            }
        }
    }

    fn accept(&mut self, token: TokenId) {
        if self.eos.contains(&token) {
            return;
        }
        let ok = match self.vocab.get(token) {
            Some(bytes) => self.state.feed(&self.grammar, bytes),
            None => false,
        };
        if !ok {
            self.dead = true;
        }
    }

    fn name(&self) -> &'static str {
        "constraint"
    }
}
