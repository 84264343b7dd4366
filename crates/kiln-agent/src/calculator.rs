//! A real arithmetic evaluator (no `eval`): numbers, `+ - * / % ^`,
//! parentheses, unary signs, constants `pi` and `e`, and functions
//! `sqrt abs ln log10 log2 exp sin cos tan asin acos atan floor ceil round
//! min max pow`. Errors say what is wrong and where.

use std::fmt;

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum CalcError {
    /// The text is not a well-formed expression; `at` is a byte offset.
    Syntax {
        /// What was expected or found.
        message: String,
        /// Byte offset in the input.
        at: usize,
    },
    /// A name that is neither a constant nor a function.
    UnknownName(String),
    /// A function called with the wrong number of arguments.
    Arity {
        /// The function.
        name: String,
        /// Arguments it takes.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
    /// Division (or remainder) by zero.
    DivisionByZero,
    /// The result is not a finite number (overflow, `sqrt(-1)`, `ln(0)`).
    NotFinite,
}

impl fmt::Display for CalcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { message, at } => {
                write!(f, "syntax error at character {}: {message}", at + 1)
            }
            Self::UnknownName(n) => write!(f, "unknown name {n:?}"),
            Self::Arity {
                name,
                expected,
                got,
            } => {
                write!(f, "{name} takes {expected} argument(s), got {got}")
            }
            Self::DivisionByZero => write!(f, "division by zero"),
            Self::NotFinite => write!(f, "the result is not a finite number"),
        }
    }
}

impl std::error::Error for CalcError {}

/// Evaluates `text`.
pub fn evaluate(text: &str) -> Result<f64, CalcError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.expr()?;
    p.skip_ws();
    if p.i < p.s.len() {
        return Err(p.error("unexpected text after the expression"));
    }
    finite(v)
}

/// Formats a result as people write it: integers without a fraction,
/// others with up to 12 significant digits.
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.12}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

fn finite(v: f64) -> Result<f64, CalcError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(CalcError::NotFinite)
    }
}

const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> CalcError {
        CalcError::Syntax {
            message: message.to_string(),
            at: self.i,
        }
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<f64, CalcError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v += self.term()?;
            } else if self.eat(b'-') {
                v -= self.term()?;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(v)
    }

    /// term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, CalcError> {
        let mut v = self.unary()?;
        loop {
            if self.eat(b'*') {
                v *= self.unary()?;
            } else if self.eat(b'/') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(CalcError::DivisionByZero);
                }
                v /= d;
            } else if self.eat(b'%') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(CalcError::DivisionByZero);
                }
                v %= d;
            } else {
                break;
            }
        }
        Ok(v)
    }

    /// unary := ('-' | '+') unary | power
    fn unary(&mut self) -> Result<f64, CalcError> {
        if self.eat(b'-') {
            return Ok(-self.unary()?);
        }
        if self.eat(b'+') {
            return self.unary();
        }
        self.power()
    }

    /// power := atom ('^' unary)?   (right-associative; `-2^2` is -4)
    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.atom()?;
        if self.eat(b'^') || self.eat_str("**") {
            let exp = self.unary()?;
            return finite(base.powf(exp));
        }
        Ok(base)
    }

    fn eat_str(&mut self, t: &str) -> bool {
        self.skip_ws();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn atom(&mut self) -> Result<f64, CalcError> {
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let v = self.expr()?;
                if !self.eat(b')') {
                    return Err(self.error("expected )"));
                }
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.name(),
            Some(_) => Err(self.error("expected a number, a name or (")),
            None => Err(self.error("unexpected end of the expression")),
        }
    }

    fn number(&mut self) -> Result<f64, CalcError> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'.' || *c == b'_' || *c == b',')
        {
            // Thousands separators "1,000" only when followed by 3 digits.
            if self.s[self.i] == b',' {
                let group = self.s.get(self.i + 1..self.i + 4);
                let after = self.s.get(self.i + 4);
                let thousands = group.is_some_and(|g| g.iter().all(u8::is_ascii_digit))
                    && !after.is_some_and(u8::is_ascii_digit);
                if !thousands {
                    break;
                }
            }
            self.i += 1;
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E'))
            && self
                .s
                .get(self.i + 1)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')
        {
            self.i += 2;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        let text: String = String::from_utf8_lossy(&self.s[start..self.i]).replace(['_', ','], "");
        text.parse::<f64>().map_err(|_| CalcError::Syntax {
            message: format!("bad number {text:?}"),
            at: start,
        })
    }

    fn name(&mut self) -> Result<f64, CalcError> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        let name = String::from_utf8_lossy(&self.s[start..self.i]).to_lowercase();
        if !self.eat(b'(') {
            return match name.as_str() {
                "pi" => Ok(std::f64::consts::PI),
                "e" => Ok(std::f64::consts::E),
                _ => Err(CalcError::UnknownName(name)),
            };
        }
        let mut args = Vec::new();
        if !self.eat(b')') {
            loop {
                args.push(self.expr()?);
                if self.eat(b')') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(self.error("expected , or )"));
                }
            }
        }
        call(&name, &args)
    }
}

fn call(name: &str, args: &[f64]) -> Result<f64, CalcError> {
    let one = |f: fn(f64) -> f64| -> Result<f64, CalcError> {
        match args {
            [x] => finite(f(*x)),
            _ => Err(CalcError::Arity {
                name: name.to_string(),
                expected: 1,
                got: args.len(),
            }),
        }
    };
    let two = |f: fn(f64, f64) -> f64| -> Result<f64, CalcError> {
        match args {
            [a, b] => finite(f(*a, *b)),
            _ => Err(CalcError::Arity {
                name: name.to_string(),
                expected: 2,
                got: args.len(),
            }),
        }
    };
    match name {
        "sqrt" => one(f64::sqrt),
        "abs" => one(f64::abs),
        "ln" => one(f64::ln),
        "log" | "log10" => one(f64::log10),
        "log2" => one(f64::log2),
        "exp" => one(f64::exp),
        "sin" => one(f64::sin),
        "cos" => one(f64::cos),
        "tan" => one(f64::tan),
        "asin" => one(f64::asin),
        "acos" => one(f64::acos),
        "atan" => one(f64::atan),
        "floor" => one(f64::floor),
        "ceil" => one(f64::ceil),
        "round" => one(f64::round),
        "min" => two(f64::min),
        "max" => two(f64::max),
        "pow" => two(f64::powf),
        _ => Err(CalcError::UnknownName(name.to_string())),
    }
}
