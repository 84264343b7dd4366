//! Prompt templates: named minijinja templates with declared variables
//! and defaults, a built-in library of the classic ones (Alpaca, few-shot,
//! chain of thought, PAL, classification, summary) and more from TOML files.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::Value;

use crate::AgentError;

/// One template as written in TOML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    /// What it is for.
    pub description: String,
    /// Variables that must be given.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Values of optional variables.
    #[serde(default)]
    pub defaults: BTreeMap<String, toml::Value>,
    /// An optional system message (also a template).
    #[serde(default)]
    pub system: Option<String>,
    /// The prompt (the user message, or the whole text when `raw`).
    pub prompt: String,
    /// Send the prompt as is, without the model's chat template (for
    /// instruction formats such as Alpaca's that are the whole prompt).
    #[serde(default)]
    pub raw: bool,
}

/// A set of named templates.
#[derive(Debug, Clone, Default)]
pub struct PromptLibrary {
    templates: BTreeMap<String, PromptTemplate>,
}

const BUILTIN: &str = include_str!("../templates/builtin.toml");

/// A rendered template.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedPrompt {
    /// The system message, if any.
    pub system: Option<String>,
    /// The prompt text.
    pub prompt: String,
    /// Whether the prompt bypasses the chat template.
    pub raw: bool,
}

impl PromptLibrary {
    /// The built-in templates.
    pub fn builtin() -> Result<Self, AgentError> {
        let mut lib = Self::default();
        lib.add_toml(BUILTIN, "built-in templates")?;
        Ok(lib)
    }

    /// Adds (or replaces) the templates of a TOML text; `origin` names it in errors.
    pub fn add_toml(&mut self, text: &str, origin: &str) -> Result<(), AgentError> {
        let parsed: BTreeMap<String, PromptTemplate> =
            toml::from_str(text).map_err(|e| AgentError::Template(format!("{origin}: {e}")))?;
        for (name, t) in parsed {
            // Compile now, so a broken template fails at load, not at use.
            compile(&t.prompt)
                .map_err(|e| AgentError::Template(format!("{origin}: [{name}]: {e}")))?;
            self.templates.insert(name, t);
        }
        Ok(())
    }

    /// Adds the templates of a TOML file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), AgentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AgentError::Template(format!("{}: {e}", path.display())))?;
        self.add_toml(&text, &path.display().to_string())
    }

    /// The templates by name.
    pub fn templates(&self) -> &BTreeMap<String, PromptTemplate> {
        &self.templates
    }

    /// Renders template `name` with `vars` (strings; values that parse as
    /// JSON, such as a list of examples, are passed as JSON).
    pub fn render(
        &self,
        name: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<RenderedPrompt, AgentError> {
        let t = self.templates.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.templates.keys().map(String::as_str).collect();
            AgentError::Template(format!(
                "no template {name:?}; there are: {}",
                names.join(", ")
            ))
        })?;
        let missing: Vec<&str> = t
            .variables
            .iter()
            .filter(|v| !vars.contains_key(*v))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(AgentError::Template(format!(
                "[{name}] needs --var for: {}",
                missing.join(", ")
            )));
        }
        let mut context: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in &t.defaults {
            context.insert(k.clone(), serde_json::to_value(v).unwrap_or(Value::Null));
        }
        for (k, v) in vars {
            let value = match serde_json::from_str::<Value>(v) {
                Ok(j @ (Value::Array(_) | Value::Object(_))) => j,
                _ => Value::String(v.clone()),
            };
            context.insert(k.clone(), value);
        }
        let render = |source: &str| -> Result<String, AgentError> {
            let env =
                compile(source).map_err(|e| AgentError::Template(format!("[{name}]: {e}")))?;
            let tmpl = env
                .get_template("t")
                .map_err(|e| AgentError::Template(e.to_string()))?;
            tmpl.render(minijinja::Value::from(minijinja::value::Serde(&context)))
                .map_err(|e| AgentError::Template(format!("[{name}]: {e}")))
        };
        Ok(RenderedPrompt {
            system: t.system.as_deref().map(render).transpose()?,
            prompt: render(&t.prompt)?.trim_start_matches('\n').to_string(),
            raw: t.raw,
        })
    }
}

/// An environment holding `source` as template `t`, strict about
/// undefined variables.
fn compile(source: &str) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .keep_trailing_newline(true)
        .build()?;
    env.set_syntax(syntax);
    env.add_template_owned("t".to_string(), source.to_string())?;
    Ok(env)
}
