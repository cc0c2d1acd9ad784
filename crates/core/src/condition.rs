//! Success conditions of metric analyses: `result < 0.01`,
//! `result <= 1.2 * median(baseline) + 0.001`.
//!
//! A small, total expression language, parsed once (at `validate` time, so
//! a mistake is reported at its file:line) and evaluated per measurement:
//!
//! - `result`: the query's value in the cluster being judged;
//! - `median(baseline)`, `mean(baseline)`, `min(baseline)`, `max(baseline)`,
//!   `count(baseline)`: the same query's values in the clusters still on the
//!   old revision (the cross-cluster judgement);
//! - numbers (`0.01`, `1e-3`), `+ - * /`, parentheses, comparisons
//!   (`< <= > >= == !=`) and `&&`, `||`, `!` (short-circuit).
//!
//! The whole condition must be a comparison or a combination of them. An
//! aggregate over an empty baseline cannot be evaluated
//! ([`EvalError::NoBaseline`]); guard it with `count(baseline) == 0 || ...`
//! to give such a measurement a verdict of its own.

use std::fmt;

/// A parsed condition. Evaluate it with [`Condition::eval`].
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    root: Expr,
    uses_baseline: bool,
}

/// Why a condition could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition {input:?}: {reason} (at character {at})")]
pub struct ConditionError {
    input: String,
    reason: String,
    at: usize,
}

/// Why a condition had no verdict for a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// An aggregate of the baseline was needed but no cluster is on the old
    /// revision (or none of them gave a value).
    #[error("no cluster on the old revision to compare with")]
    NoBaseline,
}

/// An aggregate over the baseline clusters' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Median,
    Mean,
    Min,
    Max,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Number(f64),
    Result,
    Baseline(Aggregate),
    Neg(Box<Expr>),
    Arith(Arith, Box<Expr>, Box<Expr>),
    Compare(Compare, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Number,
    Bool,
}

/// Longest condition read, in bytes (keeps parsing and evaluation bounded).
const MAX_LEN: usize = 1024;
/// Deepest nesting of parentheses and unary operators.
const MAX_DEPTH: usize = 32;

impl Condition {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let err = |reason: String, at: usize| ConditionError {
            input: text.chars().take(80).collect(),
            reason,
            at,
        };
        if text.len() > MAX_LEN {
            return Err(err(format!("longer than {MAX_LEN} bytes"), 0));
        }
        let tokens = lex(text).map_err(|(reason, at)| err(reason, at))?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
            end: text.len(),
        };
        let root = parser.or().map_err(|(reason, at)| err(reason, at))?;
        if let Some((_, at)) = parser.tokens.get(parser.pos) {
            return Err(err("unexpected text after the condition".into(), *at));
        }
        match type_of(&root).map_err(|reason| err(reason, 0))? {
            Type::Bool => {}
            Type::Number => {
                return Err(err(
                    "this is a number, not a condition: compare it, e.g. `result < 0.01`".into(),
                    0,
                ));
            }
        }
        let uses_baseline = uses_baseline(&root);
        Ok(Condition {
            root,
            uses_baseline,
        })
    }

    /// True when the condition compares with the baseline clusters.
    pub fn uses_baseline(&self) -> bool {
        self.uses_baseline
    }

    /// The verdict for one measurement: `result` is the judged cluster's
    /// value, `baseline` the values of the clusters on the old revision.
    pub fn eval(&self, result: f64, baseline: &[f64]) -> Result<bool, EvalError> {
        let mut sorted: Vec<f64> = baseline.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let scope = Scope {
            result,
            baseline: &sorted,
        };
        scope.truth(&self.root)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)
    }
}

struct Scope<'a> {
    result: f64,
    baseline: &'a [f64],
}

impl Scope<'_> {
    fn truth(&self, e: &Expr) -> Result<bool, EvalError> {
        Ok(match e {
            Expr::Compare(op, a, b) => {
                let (a, b) = (self.number(a)?, self.number(b)?);
                match op {
                    Compare::Lt => a < b,
                    Compare::Le => a <= b,
                    Compare::Gt => a > b,
                    Compare::Ge => a >= b,
                    Compare::Eq => a == b,
                    Compare::Ne => a != b,
                }
            }
            Expr::Not(a) => !self.truth(a)?,
            Expr::And(a, b) => self.truth(a)? && self.truth(b)?,
            Expr::Or(a, b) => self.truth(a)? || self.truth(b)?,
            // Type-checked at parse time: never a number here.
            _ => false,
        })
    }

    fn number(&self, e: &Expr) -> Result<f64, EvalError> {
        Ok(match e {
            Expr::Number(n) => *n,
            Expr::Result => self.result,
            Expr::Baseline(agg) => aggregate(*agg, self.baseline)?,
            Expr::Neg(a) => -self.number(a)?,
            Expr::Arith(op, a, b) => {
                let (a, b) = (self.number(a)?, self.number(b)?);
                match op {
                    Arith::Add => a + b,
                    Arith::Sub => a - b,
                    Arith::Mul => a * b,
                    Arith::Div => a / b,
                }
            }
            // Type-checked at parse time: never a condition here.
            _ => f64::NAN,
        })
    }
}

/// `values` sorted ascending, without NaN.
fn aggregate(agg: Aggregate, values: &[f64]) -> Result<f64, EvalError> {
    if agg == Aggregate::Count {
        return Ok(values.len() as f64);
    }
    let (Some(first), Some(last)) = (values.first(), values.last()) else {
        return Err(EvalError::NoBaseline);
    };
    Ok(match agg {
        Aggregate::Min => *first,
        Aggregate::Max => *last,
        Aggregate::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Median => median(values).unwrap_or(f64::NAN),
        Aggregate::Count => values.len() as f64,
    })
}

/// The median of sorted values (the mean of the middle two for an even count).
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    let mid = n / 2;
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(mid).copied(),
        _ => Some((sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0),
    }
}

fn uses_baseline(e: &Expr) -> bool {
    match e {
        Expr::Baseline(_) => true,
        Expr::Number(_) | Expr::Result => false,
        Expr::Neg(a) | Expr::Not(a) => uses_baseline(a),
        Expr::Arith(_, a, b) | Expr::Compare(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
            uses_baseline(a) || uses_baseline(b)
        }
    }
}

fn type_of(e: &Expr) -> Result<Type, String> {
    let want = |e: &Expr, t: Type, what: &str| -> Result<(), String> {
        if type_of(e)? == t {
            Ok(())
        } else {
            Err(format!("{what} `{e}`"))
        }
    };
    match e {
        Expr::Number(_) | Expr::Result | Expr::Baseline(_) => Ok(Type::Number),
        Expr::Neg(a) => want(a, Type::Number, "`-` needs a number, not").map(|()| Type::Number),
        Expr::Arith(_, a, b) => {
            want(a, Type::Number, "arithmetic needs numbers, not")?;
            want(b, Type::Number, "arithmetic needs numbers, not")?;
            Ok(Type::Number)
        }
        Expr::Compare(_, a, b) => {
            want(a, Type::Number, "a comparison needs numbers, not")?;
            want(b, Type::Number, "a comparison needs numbers, not")?;
            Ok(Type::Bool)
        }
        Expr::Not(a) => want(a, Type::Bool, "`!` needs a condition, not").map(|()| Type::Bool),
        Expr::And(a, b) | Expr::Or(a, b) => {
            want(a, Type::Bool, "`&&` and `||` need conditions, not")?;
            want(b, Type::Bool, "`&&` and `||` need conditions, not")?;
            Ok(Type::Bool)
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Result => write!(f, "result"),
            Expr::Baseline(agg) => write!(
                f,
                "{}(baseline)",
                match agg {
                    Aggregate::Median => "median",
                    Aggregate::Mean => "mean",
                    Aggregate::Min => "min",
                    Aggregate::Max => "max",
                    Aggregate::Count => "count",
                }
            ),
            Expr::Neg(a) => write!(f, "-{a}"),
            Expr::Arith(op, a, b) => {
                let op = match op {
                    Arith::Add => "+",
                    Arith::Sub => "-",
                    Arith::Mul => "*",
                    Arith::Div => "/",
                };
                write!(f, "({a} {op} {b})")
            }
            Expr::Compare(op, a, b) => {
                let op = match op {
                    Compare::Lt => "<",
                    Compare::Le => "<=",
                    Compare::Gt => ">",
                    Compare::Ge => ">=",
                    Compare::Eq => "==",
                    Compare::Ne => "!=",
                };
                write!(f, "{a} {op} {b}")
            }
            Expr::Not(a) => write!(f, "!({a})"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
        }
    }
}

// === lexing and parsing ===

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
    Op(&'static str),
    Open,
    Close,
}

fn lex(text: &str) -> Result<Vec<(Token, usize)>, (String, usize)> {
    const OPS: [&str; 13] = [
        "<=", ">=", "==", "!=", "&&", "||", "<", ">", "+", "-", "*", "/", "!",
    ];
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            i += c.len_utf8();
        } else if c.is_ascii_digit() || c == '.' {
            let len = number_len(rest);
            let number: f64 = rest[..len]
                .parse()
                .map_err(|_| (format!("{:?} is not a number", &rest[..len]), i))?;
            out.push((Token::Number(number), i));
            i += len;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push((Token::Word(rest[..len].to_string()), i));
            i += len;
        } else if c == '(' {
            out.push((Token::Open, i));
            i += 1;
        } else if c == ')' {
            out.push((Token::Close, i));
            i += 1;
        } else if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            out.push((Token::Op(op), i));
            i += op.len();
        } else {
            return Err((format!("unexpected {c:?}"), i));
        }
    }
    Ok(out)
}

/// Length of a decimal number with an optional exponent at the start of `s`.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    depth: usize,
    end: usize,
}

type Parsed = Result<Expr, (String, usize)>;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(_, at)| *at)
    }

    fn eat_op(&mut self, ops: &[&'static str]) -> Option<&'static str> {
        match self.peek() {
            Some(Token::Op(op)) if ops.contains(op) => {
                let op = *op;
                self.pos += 1;
                Some(op)
            }
            _ => None,
        }
    }

    fn deeper(&mut self) -> Result<(), (String, usize)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((format!("nested more than {MAX_DEPTH} deep"), self.at()));
        }
        Ok(())
    }

    fn or(&mut self) -> Parsed {
        let mut left = self.and()?;
        while self.eat_op(&["||"]).is_some() {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Parsed {
        let mut left = self.not()?;
        while self.eat_op(&["&&"]).is_some() {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Parsed {
        if self.eat_op(&["!"]).is_some() {
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Parsed {
        let left = self.sum()?;
        let Some(op) = self.eat_op(&["<=", ">=", "==", "!=", "<", ">"]) else {
            return Ok(left);
        };
        let op = match op {
            "<" => Compare::Lt,
            "<=" => Compare::Le,
            ">" => Compare::Gt,
            ">=" => Compare::Ge,
            "==" => Compare::Eq,
            _ => Compare::Ne,
        };
        let right = self.sum()?;
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> Parsed {
        let mut left = self.product()?;
        while let Some(op) = self.eat_op(&["+", "-"]) {
            let op = if op == "+" { Arith::Add } else { Arith::Sub };
            left = Expr::Arith(op, Box::new(left), Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Parsed {
        let mut left = self.unary()?;
        while let Some(op) = self.eat_op(&["*", "/"]) {
            let op = if op == "*" { Arith::Mul } else { Arith::Div };
            left = Expr::Arith(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Parsed {
        if self.eat_op(&["-"]).is_some() {
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(inner)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Parsed {
        let at = self.at();
        let Some((token, _)) = self.tokens.get(self.pos).cloned() else {
            return Err(("the condition ends too early".into(), at));
        };
        self.pos += 1;
        match token {
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Open => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Token::Close) {
                    return Err(("missing `)`".into(), self.at()));
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Word(w) if w == "result" => Ok(Expr::Result),
            Token::Word(w) => {
                let agg = match w.as_str() {
                    "median" => Aggregate::Median,
                    "mean" | "avg" => Aggregate::Mean,
                    "min" => Aggregate::Min,
                    "max" => Aggregate::Max,
                    "count" => Aggregate::Count,
                    "baseline" => {
                        return Err((
                            "`baseline` is a list of values: use median(baseline), mean(baseline), min(baseline), max(baseline) or count(baseline)".into(),
                            at,
                        ));
                    }
                    _ => {
                        return Err((
                            format!(
                                "unknown name {w:?} (known: result, median, mean, min, max, count, baseline)"
                            ),
                            at,
                        ));
                    }
                };
                let ok = self.peek() == Some(&Token::Open)
                    && matches!(self.tokens.get(self.pos + 1), Some((Token::Word(b), _)) if b == "baseline")
                    && matches!(self.tokens.get(self.pos + 2), Some((Token::Close, _)));
                if !ok {
                    return Err((format!("write {w}(baseline)"), at));
                }
                self.pos += 3;
                Ok(Expr::Baseline(agg))
            }
            Token::Op(op) => Err((format!("unexpected `{op}`"), at)),
            Token::Close => Err(("unexpected `)`".into(), at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, result: f64, baseline: &[f64]) -> Result<bool, EvalError> {
        Condition::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(result, baseline)
    }

    #[test]
    fn absolute_thresholds() {
        assert_eq!(eval("result < 0.01", 0.005, &[]), Ok(true));
        assert_eq!(eval("result < 0.01", 0.01, &[]), Ok(false));
        assert_eq!(eval("result <= 0.01", 0.01, &[]), Ok(true));
        assert_eq!(eval("result >= 1e-3", 0.001, &[]), Ok(true));
        assert_eq!(eval("result != 0", 0.0, &[]), Ok(false));
        assert_eq!(eval("-result > -1", 0.5, &[]), Ok(true));
    }

    #[test]
    fn precedence_and_parentheses() {
        // 1 + 2 * 3 = 7, not 9.
        assert_eq!(eval("result == 1 + 2 * 3", 7.0, &[]), Ok(true));
        assert_eq!(eval("result == (1 + 2) * 3", 9.0, &[]), Ok(true));
        assert_eq!(eval("result == 8 / 2 / 2", 2.0, &[]), Ok(true));
        assert_eq!(eval("result == 5 - 2 - 1", 2.0, &[]), Ok(true));
        assert_eq!(
            eval("result < 1 || result > 5 && result < 3", 4.0, &[]),
            Ok(false)
        );
        assert_eq!(eval("!(result < 1)", 4.0, &[]), Ok(true));
    }

    #[test]
    fn cross_cluster_comparison_with_the_median_of_the_baseline() {
        let c = "result <= 1.2 * median(baseline)";
        assert_eq!(eval(c, 0.012, &[0.01, 0.5, 0.009]), Ok(true));
        assert_eq!(eval(c, 0.013, &[0.01, 0.5, 0.009]), Ok(false));
        // Even count: the mean of the middle two (0.01 and 0.02).
        assert_eq!(eval(c, 0.018, &[0.02, 0.01, 0.0, 1.0]), Ok(true));
        assert_eq!(eval(c, 0.0181, &[0.02, 0.01, 0.0, 1.0]), Ok(false));
        // NaN values of the baseline are left out.
        assert_eq!(eval(c, 0.012, &[f64::NAN, 0.01]), Ok(true));
    }

    #[test]
    fn other_aggregates() {
        let b = [1.0, 2.0, 6.0];
        assert_eq!(eval("result == mean(baseline)", 3.0, &b), Ok(true));
        assert_eq!(eval("result == min(baseline)", 1.0, &b), Ok(true));
        assert_eq!(eval("result == max(baseline)", 6.0, &b), Ok(true));
        assert_eq!(eval("result == count(baseline)", 3.0, &b), Ok(true));
    }

    #[test]
    fn an_empty_baseline_has_no_verdict_unless_guarded() {
        let c = "result <= 1.2 * median(baseline)";
        assert_eq!(eval(c, 0.0, &[]), Err(EvalError::NoBaseline));
        assert_eq!(eval(c, 0.0, &[f64::NAN]), Err(EvalError::NoBaseline));
        let guarded = "result < 0.05 && (count(baseline) == 0 || result <= 1.2 * median(baseline))";
        assert_eq!(eval(guarded, 0.04, &[]), Ok(true));
        assert_eq!(eval(guarded, 0.06, &[]), Ok(false));
        assert_eq!(eval(guarded, 0.04, &[0.01]), Ok(false));
        assert!(Condition::parse(guarded).is_ok_and(|c| c.uses_baseline()));
        assert!(Condition::parse("result < 1").is_ok_and(|c| !c.uses_baseline()));
    }

    #[test]
    fn nan_results_fail_comparisons() {
        assert_eq!(eval("result < 0.01", f64::NAN, &[]), Ok(false));
    }

    #[test]
    fn mistakes_are_reported_with_where_and_why() {
        let cases = [
            ("", "ends too early"),
            ("result", "a number, not a condition"),
            ("result < ", "ends too early"),
            ("result < 0.01 0.02", "unexpected text"),
            ("reslt < 1", "unknown name \"reslt\""),
            ("result < baseline", "is a list of values"),
            ("result < median", "write median(baseline)"),
            ("result < median(result)", "write median(baseline)"),
            ("(result < 1", "missing `)`"),
            ("result < 1 + (result > 2)", "arithmetic needs numbers"),
            ("result && result < 1", "need conditions"),
            ("result # 1", "unexpected '#'"),
            ("result < 1..2", "not a number"),
        ];
        for (text, expected) in cases {
            match Condition::parse(text) {
                Ok(c) => panic!("{text:?} parsed as {c}"),
                Err(e) => assert!(e.to_string().contains(expected), "{text:?}: {e}"),
            }
        }
        let deep = format!("{}result < 1{}", "(".repeat(40), ")".repeat(40));
        assert!(Condition::parse(&deep).is_err_and(|e| e.to_string().contains("nested more than")));
        let long = format!("result < {}", "1".repeat(2000));
        assert!(Condition::parse(&long).is_err_and(|e| e.to_string().contains("longer than")));
    }

    #[test]
    fn median_of_sorted_values() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[1.0, 3.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
    }
}
