//! The expressions SWML writes in `when`, `cond` and `${...}`: variable paths, literals,
//! comparison, `&&`, `||`, `!`, parentheses and `+` (JavaScript semantics where they matter:
//! loose equality between numbers and numeric strings, truthiness).

use serde_json::Value;

/// Resolves a dotted path (`vars.x`, `call.from`, `x`) to a value.
pub trait Scope {
    fn lookup(&self, path: &str) -> Value;
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Path(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    const OPS: &[&str] = &["===", "!==", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+"];
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = src[i + 1..].find(c).ok_or_else(|| format!("unterminated string in {src:?}"))?;
            out.push(Token::Str(src[i + 1..i + 1 + end].to_string()));
            i += end + 2;
        } else if c.is_ascii_digit() || (c == '-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let len =
                src[i + 1..].find(|ch: char| !(ch.is_ascii_digit() || ch == '.')).map_or(src.len() - i, |n| n + 1);
            out.push(Token::Num(src[i..i + len].parse().map_err(|_| format!("bad number in {src:?}"))?));
            i += len;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let len =
                src[i..].find(|ch: char| !(ch.is_ascii_alphanumeric() || "_.$".contains(ch))).unwrap_or(src.len() - i);
            out.push(Token::Path(src[i..i + len].to_string()));
            i += len;
        } else if let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) {
            out.push(Token::Op(op));
            i += op.len();
        } else {
            return Err(format!("unexpected {c:?} in {src:?}"));
        }
    }
    Ok(out)
}

struct Parser<'a, S: Scope> {
    tokens: Vec<Token>,
    pos: usize,
    scope: &'a S,
}

impl<S: Scope> Parser<'_, S> {
    fn peek_op(&self, ops: &[&str]) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(op)) if ops.contains(op) => Some(op),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.peek_op(&["||"]).is_some() {
            self.pos += 1;
            let right = self.and()?;
            left = if truthy(&left) { left } else { right };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.compare()?;
        while self.peek_op(&["&&"]).is_some() {
            self.pos += 1;
            let right = self.compare()?;
            left = if truthy(&left) { right } else { left };
        }
        Ok(left)
    }

    fn compare(&mut self) -> Result<Value, String> {
        let left = self.sum()?;
        let Some(op) = self.peek_op(&["===", "!==", "==", "!=", "<=", ">=", "<", ">"]) else { return Ok(left) };
        self.pos += 1;
        let right = self.sum()?;
        let result = match op {
            "==" | "===" => loose_eq(&left, &right),
            "!=" | "!==" => !loose_eq(&left, &right),
            _ => match (number(&left), number(&right)) {
                (Some(a), Some(b)) => match op {
                    "<" => a < b,
                    ">" => a > b,
                    "<=" => a <= b,
                    _ => a >= b,
                },
                _ => {
                    let (a, b) = (text(&left), text(&right));
                    match op {
                        "<" => a < b,
                        ">" => a > b,
                        "<=" => a <= b,
                        _ => a >= b,
                    }
                }
            },
        };
        Ok(Value::Bool(result))
    }

    fn sum(&mut self) -> Result<Value, String> {
        let mut left = self.unary()?;
        while self.peek_op(&["+"]).is_some() {
            self.pos += 1;
            let right = self.unary()?;
            left = match (&left, &right) {
                (Value::Number(_), Value::Number(_)) => {
                    num(number(&left).unwrap_or(0.0) + number(&right).unwrap_or(0.0))
                }
                _ => Value::String(text(&left) + &text(&right)),
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.peek_op(&["!"]).is_some() {
            self.pos += 1;
            return Ok(Value::Bool(!truthy(&self.unary()?)));
        }
        let token = self.tokens.get(self.pos).cloned().ok_or("expression ends too early")?;
        self.pos += 1;
        Ok(match token {
            Token::Open => {
                let v = self.or()?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("missing )".into());
                }
                self.pos += 1;
                v
            }
            Token::Str(s) => Value::String(s),
            Token::Num(n) => num(n),
            Token::Path(p) => match p.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" | "undefined" => Value::Null,
                _ => self.scope.lookup(&p),
            },
            Token::Op(op) => return Err(format!("unexpected {op}")),
            Token::Close => return Err("unexpected )".into()),
        })
    }
}

pub fn eval(src: &str, scope: &impl Scope) -> Result<Value, String> {
    let mut p = Parser { tokens: tokenize(src)?, pos: 0, scope };
    let v = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected text after the expression in {src:?}"));
    }
    Ok(v)
}

/// Checks that `src` is an expression, without a scope (used at load time).
pub fn check(src: &str) -> Result<(), String> {
    struct Empty;
    impl Scope for Empty {
        fn lookup(&self, _: &str) -> Value {
            Value::Null
        }
    }
    eval(src, &Empty).map(|_| ())
}

/// A number as JSON: whole numbers as integers (`2`, not `2.0`).
fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        serde_json::json!(f)
    }
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// How a value reads when written into a string.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(x), Value::String(y)) => x == y,
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => text(a) == text(b),
        },
    }
}

/// Replaces every `${expr}` and `%{expr}` in `s`; an expression that fails reads as empty.
pub fn substitute(s: &str, scope: &impl Scope) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(['$', '%']) {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        match after[1..]
            .strip_prefix('{')
            .and_then(|inner| inner.find('}').map(|end| (&inner[..end], &inner[end + 1..])))
        {
            Some((expr, tail)) => {
                out.push_str(&eval(expr, scope).map(|v| text(&v)).unwrap_or_default());
                rest = tail;
            }
            None => {
                out.push_str(&after[..1]);
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Substitutes inside every string of a JSON value. A string that is exactly one
/// `${expr}` takes the expression's value, so numbers stay numbers.
pub fn substitute_value(v: &Value, scope: &impl Scope) -> Value {
    match v {
        Value::String(s) => {
            let whole = s.strip_prefix("${").or_else(|| s.strip_prefix("%{")).and_then(|r| r.strip_suffix('}'));
            match whole.filter(|inner| !inner.contains('}')).map(|inner| eval(inner, scope)) {
                Some(Ok(value)) => value,
                _ => Value::String(substitute(s, scope)),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute_value(i, scope)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute_value(v, scope))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Vars(Value);
    impl Scope for Vars {
        fn lookup(&self, path: &str) -> Value {
            let path = path.strip_prefix("vars.").unwrap_or(path);
            path.split('.').try_fold(&self.0, |v, k| v.get(k)).cloned().unwrap_or(Value::Null)
        }
    }

    #[test]
    fn evaluates_what_swml_writes() {
        let s = Vars(json!({"sip_refer_result": "busy", "n": 3, "code": "486", "call": {"from": "+1555"}}));
        let t = |e: &str| truthy(&eval(e, &s).unwrap());
        assert!(t("vars.sip_refer_result == 'busy'"));
        assert!(t("sip_refer_result != \"success\" && n >= 3"));
        assert!(t("code == 486 || false"));
        assert!(t("!(n < 2)"));
        assert!(!t("missing"));
        assert_eq!(eval("n + 1", &s).unwrap(), json!(4));
        assert_eq!(substitute_value(&json!({"a": "${n + 1}", "b": "n=${n}"}), &s), json!({"a": 4, "b": "n=3"}));
        assert_eq!(
            substitute("result ${sip_refer_result} from %{call.from} costs $5", &s),
            "result busy from +1555 costs $5"
        );
        assert_eq!(substitute("${n + 1}", &s), "4");
        assert!(check("a ==").is_err() && check("'open").is_err() && check("a b").is_err());
    }
}
