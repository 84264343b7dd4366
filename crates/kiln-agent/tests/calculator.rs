//! The calculator on a table of expressions, errors included.
#![allow(clippy::unwrap_used, clippy::panic)]

use kiln_agent::calculator::{evaluate, format_number, CalcError};

#[test]
fn expressions_evaluate_like_a_person_expects() {
    let table: &[(&str, f64)] = &[
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("2 ** 10", 1024.0),
        ("-2 ^ 2", -4.0),
        ("(-2) ^ 2", 4.0),
        ("10 / 4", 2.5),
        ("10 % 4", 2.0),
        ("-3 - -3", 0.0),
        ("+5", 5.0),
        ("1,234 + 1", 1235.0),
        ("1_000_000 / 1e3", 1000.0),
        ("2.5e-1 * 4", 1.0),
        (".5 + .25", 0.75),
        ("sqrt(16) + abs(-3)", 7.0),
        ("max(3, 7) - min(3, 7)", 4.0),
        ("pow(2, 0.5) ^ 2", 2.0000000000000004),
        ("round(2.5) + floor(-1.5) + ceil(1.2)", 3.0),
        ("ln(e) + log10(1000) + log2(8)", 7.0),
        ("sin(pi / 2) + cos(0)", 2.0),
        ("  3*(4+5)/ ( 2 - 5 ) ", -9.0),
        ("PI", std::f64::consts::PI),
    ];
    for &(expr, want) in table {
        let got = evaluate(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!((got - want).abs() < 1e-12, "{expr} = {got}, want {want}");
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let table: &[(&str, &str)] = &[
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "not a finite number"),
        ("ln(0)", "not a finite number"),
        ("10 ^ 400", "not a finite number"),
        ("2 +", "unexpected end"),
        ("(1 + 2", "expected )"),
        ("1 + 2)", "unexpected text"),
        ("3 $ 4", "unexpected text"),
        ("foo + 1", "unknown name \"foo\""),
        ("bar(2)", "unknown name \"bar\""),
        ("max(1)", "max takes 2 argument(s), got 1"),
        ("", "unexpected end"),
        ("1..2", "bad number"),
        ("import os", "unknown name"),
    ];
    for &(expr, needle) in table {
        let err = evaluate(expr).unwrap_err().to_string();
        assert!(err.contains(needle), "{expr}: {err}");
    }
    assert_eq!(evaluate("((((((((((1))))))))))").unwrap(), 1.0);
    let deep = "(".repeat(500) + "1" + &")".repeat(500);
    assert!(matches!(evaluate(&deep), Err(CalcError::Syntax { .. })));
}

#[test]
fn results_are_formatted_plainly() {
    assert_eq!(format_number(42.0), "42");
    assert_eq!(format_number(-3.0), "-3");
    assert_eq!(format_number(2.5), "2.5");
    assert_eq!(format_number(1.0 / 3.0), "0.333333333333");
}
