//! Conversation memory: chat sessions persisted in a directory (one JSON
//! file per session, written atomically), and what of a session the model
//! sees — everything (buffer), the last turns (window), or a running
//! summary of older turns plus the recent ones (summary).

use std::path::{Path, PathBuf};

use kiln_core::{ChatMessage, ChatOptions, TextGenerator};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// A conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatSession {
    /// The session's name.
    pub name: String,
    /// The system message.
    #[serde(default)]
    pub system: Option<String>,
    /// A summary of turns no longer kept verbatim (summary memory).
    #[serde(default)]
    pub summary: Option<String>,
    /// The turns kept verbatim (user / assistant messages).
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
}

/// What of a session goes into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Every turn.
    Buffer,
    /// The last `n` exchanges (user + assistant pairs).
    Window(usize),
    /// Older turns folded into a summary once the kept turns exceed this
    /// many tokens.
    Summary(usize),
}

impl std::str::FromStr for Memory {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self, AgentError> {
        let bad = || {
            AgentError::Template(format!(
                "memory {s:?}: use buffer, window:N or summary:TOKENS"
            ))
        };
        match s.split_once(':') {
            None if s == "buffer" => Ok(Self::Buffer),
            Some(("window", n)) => n.parse().map(Self::Window).map_err(|_| bad()),
            Some(("summary", n)) => n.parse().map(Self::Summary).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

impl ChatSession {
    /// The messages to send: system (with the summary, if any), then the
    /// turns the memory keeps.
    pub fn context(&self, memory: Memory) -> Vec<ChatMessage> {
        let mut out = Vec::new();
        let system = match (&self.system, &self.summary) {
            (Some(s), Some(sum)) => {
                Some(format!("{s}\n\nSummary of the conversation so far: {sum}"))
            }
            (Some(s), None) => Some(s.clone()),
            (None, Some(sum)) => Some(format!("Summary of the conversation so far: {sum}")),
            (None, None) => None,
        };
        out.extend(system.map(|s| ChatMessage::new("system", s)));
        let turns: &[ChatMessage] = match memory {
            Memory::Window(n) => {
                // Keep whole exchanges: start at a user message.
                let users: Vec<usize> = self
                    .messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.role == "user")
                    .map(|(i, _)| i)
                    .collect();
                let start = users
                    .len()
                    .checked_sub(n)
                    .map_or(0, |k| users.get(k).copied().unwrap_or(0));
                if n == 0 {
                    &[]
                } else {
                    &self.messages[start..]
                }
            }
            Memory::Buffer | Memory::Summary(_) => &self.messages,
        };
        out.extend(turns.iter().cloned());
        out
    }

    /// Summary memory: while the kept turns hold more than `budget` tokens
    /// (by `count`), folds the oldest exchange into the summary with `model`.
    /// Returns how many exchanges were folded.
    pub fn compact(
        &mut self,
        budget: usize,
        count: &dyn Fn(&str) -> usize,
        model: &dyn TextGenerator,
    ) -> Result<usize, AgentError> {
        let mut folded = 0;
        loop {
            let total: usize = self.messages.iter().map(|m| count(&m.content)).sum();
            // Always keep the latest exchange verbatim.
            let second_user = self
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.role == "user")
                .nth(1)
                .map(|(i, _)| i);
            let (true, Some(cut)) = (total > budget, second_user) else {
                return Ok(folded);
            };
            let old: Vec<ChatMessage> = self.messages.drain(..cut).collect();
            let transcript: String = old
                .iter()
                .map(|m| format!("{}: {}\n", m.role, m.content))
                .collect();
            let prompt = format!(
                "Progressively summarize the conversation, adding onto the previous summary and returning a new summary.\n\n\
                 Current summary:\n{}\n\nNew lines of conversation:\n{transcript}\nNew summary:",
                self.summary.as_deref().unwrap_or("")
            );
            let options = ChatOptions {
                max_tokens: Some(200),
                temperature: Some(0.0),
                ..ChatOptions::default()
            };
            let summary = model.chat(&[ChatMessage::new("user", prompt)], &options, &mut |_| {})?;
            self.summary = Some(summary.trim().to_string());
            folded += 1;
        }
    }
}

/// Sessions stored as `<dir>/<name>.json`.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    /// A store in `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> Result<PathBuf, AgentError> {
        let ok = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(AgentError::Template(format!(
                "session name {name:?}: use letters, digits, - and _"
            )));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// The session `name`, or a new empty one.
    pub fn load(&self, name: &str) -> Result<ChatSession, AgentError> {
        let path = self.path(name)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| AgentError::Template(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ChatSession {
                name: name.to_string(),
                ..ChatSession::default()
            }),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Writes `session` (to a temporary file, synced, then renamed: a crash
    /// leaves the old or the new version, never half of one).
    pub fn save(&self, session: &ChatSession) -> Result<(), AgentError> {
        use std::io::Write;
        let path = self.path(&session.name)?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(session)
            .map_err(|e| AgentError::Template(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    /// The names of the stored sessions, sorted.
    pub fn list(&self) -> Result<Vec<String>, AgentError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| io(&self.dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes session `name` (no error when it does not exist).
    pub fn delete(&self, name: &str) -> Result<(), AgentError> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
            _ => Ok(()),
        }
    }
}

fn io(path: &Path, e: std::io::Error) -> AgentError {
    AgentError::Tool(format!("{}: {e}", path.display()))
}
