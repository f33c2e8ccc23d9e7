//! GitHub Actions expressions (`${{ ... }}`), as much of the language as the shipped workflows
//! and the action use: contexts and property access (`a.b`, `a['b']`, `a.*.b`), string, number
//! and boolean literals, `!`, `==`, `!=`, `&&`, `||`, parentheses, and the functions `always`,
//! `success`, `failure`, `cancelled`, `contains`, `startsWith` and `format`. Semantics follow
//! GitHub's: `&&` and `||` return an operand, strings compare case-insensitively, other mixed
//! comparisons go through numbers. Anything else is a panic, so an unsupported expression in a
//! shipped file fails the test instead of being read wrongly.

use serde_json::Value;

/// What the status functions see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Cancelled,
}

/// Evaluates `expr` (without `${{ }}`) against `ctx`, a JSON object of contexts.
pub fn eval(expr: &str, ctx: &Value, status: Status) -> Value {
    let tokens = tokenize(expr);
    let mut p = Parser {
        tokens,
        pos: 0,
        ctx,
        status,
        src: expr,
    };
    let v = p.or();
    assert!(
        p.pos == p.tokens.len(),
        "trailing input in expression: {expr}"
    );
    v
}

/// Replaces every `${{ expr }}` in `text` with its value as a string.
pub fn interpolate(text: &str, ctx: &Value, status: Status) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unterminated expression in {text}"));
        out.push_str(&to_string(&eval(&after[..end], ctx, status)));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// An `if:` condition: with or without `${{ }}`; without a status function it means
/// `success() && (...)`.
pub fn condition(cond: Option<&Value>, ctx: &Value, status: Status) -> bool {
    let Some(cond) = cond else {
        return status == Status::Success;
    };
    let text = match cond {
        Value::Bool(b) => return *b && status == Status::Success,
        Value::String(s) => s.trim(),
        other => panic!("if: {other}"),
    };
    let text = text
        .strip_prefix("${{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(text);
    let has_status = ["always(", "success(", "failure(", "cancelled("]
        .iter()
        .any(|f| text.contains(f));
    let v = eval(text, ctx, status);
    if has_status {
        truthy(&v)
    } else {
        status == Status::Success && truthy(&v)
    }
}

pub fn to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => a == b,
        (Value::Null, Value::Null) => true,
        _ => number(a) == number(b),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                assert!(i < b.len(), "unterminated string in {s}");
                if b[i] == '\'' {
                    if b.get(i + 1) == Some(&'\'') {
                        v.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                v.push(b[i]);
                i += 1;
            }
            out.push(Tok::Str(v));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.') {
                i += 1;
            }
            let n: String = b[start..i].iter().collect();
            out.push(Tok::Num(n.parse().expect("a number")));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '-') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else {
            let two: String = b[i..(i + 2).min(b.len())].iter().collect();
            let op = match two.as_str() {
                "==" => Some("=="),
                "!=" => Some("!="),
                "&&" => Some("&&"),
                "||" => Some("||"),
                _ => None,
            };
            if let Some(op) = op {
                out.push(Tok::Op(op));
                i += 2;
                continue;
            }
            let op = match c {
                '!' => "!",
                '(' => "(",
                ')' => ")",
                '[' => "[",
                ']' => "]",
                '.' => ".",
                ',' => ",",
                '*' => "*",
                _ => panic!("unsupported character {c:?} in expression {s}"),
            };
            out.push(Tok::Op(op));
            i += 1;
        }
    }
    out
}

struct Parser<'a> {
    tokens: Vec<Tok>,
    pos: usize,
    ctx: &'a Value,
    status: Status,
    src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) {
        assert!(self.eat(op), "expected {op} in {}", self.src);
    }

    fn or(&mut self) -> Value {
        let mut v = self.and();
        while self.eat("||") {
            let r = self.and();
            if !truthy(&v) {
                v = r;
            }
        }
        v
    }

    fn and(&mut self) -> Value {
        let mut v = self.cmp();
        while self.eat("&&") {
            let r = self.cmp();
            if truthy(&v) {
                v = r;
            }
        }
        v
    }

    fn cmp(&mut self) -> Value {
        let v = self.unary();
        if self.eat("==") {
            let r = self.unary();
            return Value::Bool(equal(&v, &r));
        }
        if self.eat("!=") {
            let r = self.unary();
            return Value::Bool(!equal(&v, &r));
        }
        v
    }

    fn unary(&mut self) -> Value {
        if self.eat("!") {
            return Value::Bool(!truthy(&self.unary()));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Value {
        let mut v = self.primary();
        loop {
            if self.eat(".") {
                if self.eat("*") {
                    v = match v {
                        Value::Array(a) => Value::Array(a),
                        Value::Object(o) => Value::Array(o.into_iter().map(|(_, x)| x).collect()),
                        _ => Value::Array(Vec::new()),
                    };
                    continue;
                }
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    panic!("expected a property name in {}", self.src)
                };
                self.pos += 1;
                v = property(&v, &name);
            } else if self.eat("[") {
                let key = to_string(&self.or());
                self.expect("]");
                v = property(&v, &key);
            } else {
                return v;
            }
        }
    }

    fn primary(&mut self) -> Value {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Value::String(s)
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                serde_json::json!(n)
            }
            Some(Tok::Op("(")) => {
                self.pos += 1;
                let v = self.or();
                self.expect(")");
                v
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                match name.as_str() {
                    "true" => return Value::Bool(true),
                    "false" => return Value::Bool(false),
                    "null" => return Value::Null,
                    _ => {}
                }
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or());
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",");
                        }
                    }
                    return self.call(&name, &args);
                }
                self.ctx
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| panic!("unknown context {name} in {}", self.src))
            }
            other => panic!("unexpected {other:?} in {}", self.src),
        }
    }

    fn call(&self, name: &str, args: &[Value]) -> Value {
        let b = |x: bool| Value::Bool(x);
        match (name, args) {
            ("always", []) => b(true),
            ("success", []) => b(self.status == Status::Success),
            ("failure", []) => b(self.status == Status::Failure),
            ("cancelled", []) => b(self.status == Status::Cancelled),
            ("contains", [hay, needle]) => match hay {
                Value::Array(a) => b(a.iter().any(|x| equal(x, needle))),
                other => b(to_string(other)
                    .to_lowercase()
                    .contains(&to_string(needle).to_lowercase())),
            },
            ("startsWith", [s, p]) => b(to_string(s)
                .to_lowercase()
                .starts_with(&to_string(p).to_lowercase())),
            ("format", [f, rest @ ..]) => {
                let mut s = to_string(f);
                for (i, a) in rest.iter().enumerate() {
                    s = s.replace(&format!("{{{i}}}"), &to_string(a));
                }
                Value::String(s)
            }
            _ => panic!("unsupported function {name}/{} in {}", args.len(), self.src),
        }
    }
}

fn property(v: &Value, name: &str) -> Value {
    match v {
        Value::Object(o) => o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, x)| x.clone())
            .unwrap_or(Value::Null),
        // `labels.*.name`: the property of every element.
        Value::Array(a) => Value::Array(a.iter().map(|x| property(x, name)).collect()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators_and_contexts_behave_as_on_github() {
        let ctx = json!({
            "vars": {},
            "github": {"event": {"action": "Closed", "pull_request": {"number": 7, "draft": false,
              "labels": [{"name": "preview"}, {"name": "bug"}]}}},
            "steps": {"up": {"outcome": "skipped"}},
        });
        let e = |s: &str| eval(s, &ctx, Status::Success);
        assert_eq!(e("vars.PREVIEW_LABEL || 'preview'"), json!("preview"));
        assert_eq!(e("github.event.action == 'closed'"), json!(true));
        assert_eq!(
            e("contains(github.event.pull_request.labels.*.name, 'preview')"),
            json!(true)
        );
        assert_eq!(e("!github.event.pull_request.draft && 'yes'"), json!("yes"));
        assert_eq!(
            e("steps.up.outcome != 'success' && steps.up.outcome != 'failure'"),
            json!(true)
        );
        assert_eq!(
            interpolate(
                "pr-${{ github.event.pull_request.number }}",
                &ctx,
                Status::Success
            ),
            "pr-7"
        );
        assert!(condition(
            Some(&json!("always() && steps.up.outcome == 'skipped'")),
            &ctx,
            Status::Cancelled
        ));
        assert!(!condition(
            Some(&json!("steps.up.outcome == 'skipped'")),
            &ctx,
            Status::Failure
        ));
    }
}
