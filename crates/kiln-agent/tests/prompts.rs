//! Prompt templates: the built-in library renders the classic prompts
//! exactly; variables are checked; TOML files add and override templates.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use kiln_agent::PromptLibrary;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn alpaca_matches_the_stanford_prompt_with_and_without_input() {
    let lib = PromptLibrary::builtin().unwrap();
    let p = lib
        .render("alpaca", &vars(&[("instruction", "Name a colour.")]))
        .unwrap();
    assert!(p.raw);
    assert_eq!(
        p.prompt,
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a colour.\n\n### Response:\n"
    );
    let p = lib
        .render(
            "alpaca",
            &vars(&[("instruction", "Translate."), ("input", "Bonjour")]),
        )
        .unwrap();
    assert_eq!(
        p.prompt,
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate.\n\n### Input:\nBonjour\n\n### Response:\n"
    );
}

#[test]
fn few_shot_classify_and_chain_of_thought() {
    let lib = PromptLibrary::builtin().unwrap();
    let examples = r#"[{"input": "2+2", "output": "4"}, {"input": "3+3", "output": "6"}]"#;
    let p = lib
        .render(
            "few-shot",
            &vars(&[("examples", examples), ("input", "5+5")]),
        )
        .unwrap();
    assert_eq!(
        p.prompt,
        "Input: 2+2\nOutput: 4\n\nInput: 3+3\nOutput: 6\n\nInput: 5+5\nOutput:"
    );
    let p = lib
        .render(
            "classify",
            &vars(&[
                ("text", "I love it"),
                ("labels", r#"["positive", "negative"]"#),
            ]),
        )
        .unwrap();
    assert_eq!(p.prompt, "Classify the text. Answer with exactly one of: positive, negative.\n\nText: I love it\nAnswer:");
    let p = lib
        .render(
            "chain-of-thought",
            &vars(&[("question", "Why is the sky blue?")]),
        )
        .unwrap();
    assert!(p
        .prompt
        .ends_with("Why is the sky blue?\n\nLet's think step by step."));
    assert!(!p.raw);
    for name in [
        "alpaca",
        "few-shot",
        "chain-of-thought",
        "pal",
        "classify",
        "summarize",
    ] {
        assert!(lib.templates().contains_key(name), "{name}");
    }
}

#[test]
fn missing_variables_unknown_names_and_bad_files_are_clear_errors() {
    let lib = PromptLibrary::builtin().unwrap();
    let err = lib
        .render("classify", &vars(&[("text", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs --var for: labels"), "{err}");
    let err = lib.render("nope", &vars(&[])).unwrap_err().to_string();
    assert!(
        err.contains("no template \"nope\"") && err.contains("alpaca"),
        "{err}"
    );
    let mut lib = PromptLibrary::builtin().unwrap();
    let err = lib
        .add_toml(
            "[x]\nprompt = \"{{ unclosed\"\ndescription = \"d\"",
            "mine.toml",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("mine.toml: [x]"), "{err}");
    let err = lib
        .add_toml("[x]\nprompt = \"hi\"", "mine.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("description"), "{err}");
    // An undeclared variable used by a template is an error, not "".
    lib.add_toml("[greet]\ndescription = \"d\"\nprompt = \"Hello {{ name }} from {{ place }}\"\nvariables = [\"name\"]", "mine.toml").unwrap();
    let err = lib
        .render("greet", &vars(&[("name", "Ada")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("undefined"), "{err}");
    // Files override built-ins by name.
    lib.add_toml("[chain-of-thought]\ndescription = \"mine\"\nprompt = \"Q: {{ question }} A: step by step\"\nvariables = [\"question\"]\nsystem = \"You are careful.\"", "mine.toml").unwrap();
    let p = lib
        .render("chain-of-thought", &vars(&[("question", "2?")]))
        .unwrap();
    assert_eq!(p.prompt, "Q: 2? A: step by step");
    assert_eq!(p.system.as_deref(), Some("You are careful."));
}
