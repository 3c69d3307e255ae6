//! The segment filter language: tokenizer and parser. Produces a syntax tree with the column of
//! every field and value, so later type errors can point at the exact place. Nothing here knows
//! which fields exist; [`super::fields`] checks the tree against the catalog.
//!
//! Grammar (keywords case-insensitive):
//!
//! ```text
//! rule      := or EOF
//! or        := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" or ")" | condition
//! condition := field op value
//!            | field ["not"] "in" "(" value ("," value)* [","] ")"
//!            | field "is" ["not"] "null"
//!            | field ["not"] "contains" value
//! field     := name ["." (name | string)]
//! op        := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "≠" | "≤" | "≥"
//! value     := string | number | "true" | "false"
//! ```

use std::fmt;

/// Longest rule accepted, in characters (keeps parsing and the SQL it becomes small).
pub const MAX_RULE_CHARS: usize = 4000;
/// Deepest nesting of parentheses and `not` (bounds the parser's recursion).
pub const MAX_DEPTH: usize = 32;
/// Most values in one `in (…)` list.
pub const MAX_LIST: usize = 1000;

/// A rule that cannot be parsed or checked: where (1-based character column) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// 1-based character position in the rule (one past the end for "end of rule").
    pub column: usize,
    /// What is wrong and what was expected, in words for the user.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for RuleError {}

impl RuleError {
    pub(crate) fn at(column: usize, message: impl Into<String>) -> RuleError {
        RuleError { column, message: message.into() }
    }

    /// Two lines for a monospaced display: the rule (on one line) and a caret under the error.
    /// Wide (CJK) characters count as two cells so the caret lines up in a terminal.
    pub fn snippet(&self, rule: &str) -> String {
        let line: String = rule.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let pad: usize = line.chars().take(self.column.saturating_sub(1)).map(display_width).sum();
        format!("{line}\n{}^", " ".repeat(pad))
    }
}

fn display_width(c: char) -> usize {
    let u = c as u32;
    let wide = matches!(u,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
    if wide {
        2
    } else {
        1
    }
}

/// A boolean expression over conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every part holds (two or more parts).
    And(Vec<Expr>),
    /// At least one part holds (two or more parts).
    Or(Vec<Expr>),
    /// The inner expression does not hold (the exact complement).
    Not(Box<Expr>),
    /// One test of one field.
    Cond(Cond),
}

/// One test of one field, such as `p_alive < 0.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// The field name, lower-cased (`city`, `attr`, `consent`).
    pub field: String,
    /// The part after the dot, as written (`attr.会员等级` → `会员等级`).
    pub key: Option<String>,
    /// Column of the field name.
    pub column: usize,
    /// Column of the operator.
    pub op_column: usize,
    /// What is tested.
    pub test: Test,
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `field op value`.
    Compare(CmpOp, Literal),
    /// `field in (…)`, or `field not in (…)` when negated.
    In {
        /// `not in`.
        negated: bool,
        /// The values (at least one).
        values: Vec<Literal>,
    },
    /// `field is null`, or `field is not null` when negated.
    Null {
        /// `is not null`.
        negated: bool,
    },
    /// `field contains "text"`, or `not contains` when negated.
    Contains {
        /// `not contains`.
        negated: bool,
        /// The text looked for.
        value: Literal,
    },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written in rules.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    /// The SQL operator.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    /// The operator with its sides swapped (`a < b` ⇔ `b > a`).
    pub(crate) fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            o => o,
        }
    }
}

/// A value written in a rule, with its column.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    /// The value.
    pub value: Value,
    /// Column where it starts.
    pub column: usize,
}

/// The kinds of values a rule can contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Quoted text (escapes resolved).
    Text(String),
    /// A number as written (`-12.50`), kept as text so money converts to cents exactly.
    Number(String),
    /// `true` or `false`.
    Bool(bool),
}

impl Value {
    /// How the value reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Text(s) => format!("text {s:?}"),
            Value::Number(n) => format!("number {n}"),
            Value::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Dot,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("\"{w}\""),
        Tok::Str(s) => format!("text {s:?}"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Op(o) => format!("\"{}\"", o.symbol()),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Dot => "\".\"".into(),
        Tok::End => "end of rule".into(),
    }
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Splits a rule into tokens. Accepts the full-width punctuation a Chinese input method types:
/// （ ） ， and “…” ‘…’ quotes.
fn tokenize(rule: &str) -> Result<Vec<Token>, RuleError> {
    let chars: Vec<char> = rule.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            '(' | '（' => Some(Tok::LParen),
            ')' | '）' => Some(Tok::RParen),
            ',' | '，' => Some(Tok::Comma),
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => Some(Tok::Dot),
            '≠' => Some(Tok::Op(CmpOp::Ne)),
            '≤' => Some(Tok::Op(CmpOp::Le)),
            '≥' => Some(Tok::Op(CmpOp::Ge)),
            _ => None,
        };
        if let Some(tok) = single {
            out.push(Token { tok, column });
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let two = |op: CmpOp| (Tok::Op(op), 2);
        let op = match (c, next) {
            ('=', Some('=')) => Some(two(CmpOp::Eq)),
            ('=', _) => Some((Tok::Op(CmpOp::Eq), 1)),
            ('!', Some('=')) => Some(two(CmpOp::Ne)),
            ('<', Some('>')) => Some(two(CmpOp::Ne)),
            ('<', Some('=')) => Some(two(CmpOp::Le)),
            ('<', _) => Some((Tok::Op(CmpOp::Lt), 1)),
            ('>', Some('=')) => Some(two(CmpOp::Ge)),
            ('>', _) => Some((Tok::Op(CmpOp::Gt), 1)),
            _ => None,
        };
        if let Some((tok, len)) = op {
            out.push(Token { tok, column });
            i += len;
            continue;
        }
        if c == '!' {
            return Err(RuleError::at(column, "\"!\" must be followed by \"=\"; write \"not\" to negate a condition"));
        }
        if let Some(close) = match c {
            '"' => Some('"'),
            '\'' => Some('\''),
            '“' => Some('”'),
            '‘' => Some('’'),
            _ => None,
        } {
            let (s, end) = read_string(&chars, i, close)?;
            out.push(Token { tok: Tok::Str(s), column });
            i = end;
            continue;
        }
        if c.is_ascii_digit() || ((c == '-' || c == '.') && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) {
            let start = i;
            if c == '-' {
                i += 1;
            }
            let mut int_digits = 0;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
                int_digits += 1;
            }
            let mut frac_digits = 0;
            if i < chars.len() && chars[i] == '.' {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                    frac_digits += 1;
                }
                if frac_digits == 0 {
                    return Err(RuleError::at(i + 1, "expected digits after the decimal point"));
                }
            }
            if int_digits + frac_digits == 0 {
                return Err(RuleError::at(column, "expected a number"));
            }
            if i < chars.len() && is_word_char(chars[i]) {
                return Err(RuleError::at(i + 1, format!("unexpected {:?} after a number (text values go in quotes)", chars[i])));
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Token { tok: Tok::Num(text), column });
            continue;
        }
        if is_word_start(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            out.push(Token { tok: Tok::Word(chars[start..i].iter().collect()), column });
            continue;
        }
        return Err(RuleError::at(column, format!("unexpected character {c:?}")));
    }
    out.push(Token { tok: Tok::End, column: chars.len() + 1 });
    Ok(out)
}

/// Reads a quoted string starting at `chars[open]`; returns it and the index after the closing quote.
fn read_string(chars: &[char], open: usize, close: char) -> Result<(String, usize), RuleError> {
    let mut s = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == close {
            return Ok((s, i + 1));
        }
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else { break };
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '\\' | '"' | '\'' | '”' | '’' => s.push(e),
                _ => return Err(RuleError::at(i + 1, format!("unknown escape \"\\{e}\" (use \\\\, \\\", \\', \\n or \\t)"))),
            }
            i += 2;
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(RuleError::at(open + 1, format!("text starting here has no closing {close}")))
}

/// Parses a rule into its syntax tree (no field checks; see [`super::parse_rule`]).
pub fn parse(rule: &str) -> Result<Expr, RuleError> {
    let len = rule.chars().count();
    if len > MAX_RULE_CHARS {
        return Err(RuleError::at(MAX_RULE_CHARS + 1, format!("the rule is longer than {MAX_RULE_CHARS} characters")));
    }
    let tokens = tokenize(rule)?;
    let mut p = Parser { tokens, pos: 0, depth: 0 };
    if matches!(p.peek().tok, Tok::End) {
        return Err(RuleError::at(1, "the rule is empty; expected a condition such as city = \"上海\""));
    }
    let e = p.or()?;
    let t = p.peek();
    if !matches!(t.tok, Tok::End) {
        let hint = if matches!(t.tok, Tok::RParen) { " (this \")\" has no matching \"(\")" } else { " (join conditions with and / or)" };
        return Err(RuleError::at(t.column, format!("expected and, or or the end of the rule, found {}{hint}", describe(&t.tok))));
    }
    Ok(e)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        // The token list always ends with End, and pos never moves past it.
        self.tokens.get(self.pos).or(self.tokens.last()).cloned().unwrap_or(Token { tok: Tok::End, column: 1 })
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if !matches!(t.tok, Tok::End) {
            self.pos += 1;
        }
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn enter(&mut self, column: usize) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(RuleError::at(column, format!("nested too deeply (at most {MAX_DEPTH} levels of parentheses and not)")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            self.bump();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.unary()?];
        while self.keyword("and") {
            self.bump();
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        let t = self.peek();
        if self.keyword("not") {
            self.bump();
            self.enter(t.column)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if matches!(t.tok, Tok::LParen) {
            self.bump();
            self.enter(t.column)?;
            let inner = self.or()?;
            self.depth -= 1;
            let close = self.bump();
            if !matches!(close.tok, Tok::RParen) {
                return Err(RuleError::at(
                    close.column,
                    format!("expected \")\" to close the \"(\" at column {}, found {}", t.column, describe(&close.tok)),
                ));
            }
            return Ok(inner);
        }
        self.condition().map(Expr::Cond)
    }

    fn condition(&mut self) -> Result<Cond, RuleError> {
        let t = self.bump();
        let name = match t.tok {
            Tok::Word(w) if !is_keyword(&w) => w,
            other => {
                return Err(RuleError::at(t.column, format!("expected a field name (such as city or p_alive), found {}", describe(&other))))
            }
        };
        let mut key = None;
        if matches!(self.peek().tok, Tok::Dot) {
            self.bump();
            let k = self.bump();
            key = Some(match k.tok {
                Tok::Word(w) => w,
                Tok::Str(s) if !s.is_empty() => s,
                other => {
                    return Err(RuleError::at(
                        k.column,
                        format!("expected a name after \"{name}.\" (such as attr.level or attr.\"会员 等级\"), found {}", describe(&other)),
                    ))
                }
            });
        }
        let field = name.to_lowercase();
        let shown = match &key {
            Some(k) => format!("{name}.{k}"),
            None => name.clone(),
        };
        let op = self.bump();
        let op_column = op.column;
        let test = match op.tok {
            Tok::Op(o) => Test::Compare(o, self.value(&format!("\"{}\"", o.symbol()))?),
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => Test::In { negated: false, values: self.list()? },
            Tok::Word(w) if w.eq_ignore_ascii_case("contains") => Test::Contains { negated: false, value: self.value("contains")? },
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                let n = self.bump();
                match n.tok {
                    Tok::Word(w) if w.eq_ignore_ascii_case("in") => Test::In { negated: true, values: self.list()? },
                    Tok::Word(w) if w.eq_ignore_ascii_case("contains") => {
                        Test::Contains { negated: true, value: self.value("not contains")? }
                    }
                    other => {
                        return Err(RuleError::at(n.column, format!("expected in or contains after \"not\", found {}", describe(&other))))
                    }
                }
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("is") => {
                let mut negated = false;
                if self.keyword("not") {
                    self.bump();
                    negated = true;
                }
                let n = self.bump();
                match n.tok {
                    Tok::Word(w) if w.eq_ignore_ascii_case("null") => Test::Null { negated },
                    other => {
                        return Err(RuleError::at(
                            n.column,
                            format!("expected null after \"is{}\", found {}", if negated { " not" } else { "" }, describe(&other)),
                        ))
                    }
                }
            }
            other => {
                return Err(RuleError::at(
                    op.column,
                    format!(
                        "expected an operator after {shown} (=, !=, <, <=, >, >=, in, not in, contains, is null), found {}",
                        describe(&other)
                    ),
                ))
            }
        };
        Ok(Cond { field, key, column: t.column, op_column, test })
    }

    fn value(&mut self, after: &str) -> Result<Literal, RuleError> {
        let t = self.bump();
        let value = match t.tok {
            Tok::Str(s) => Value::Text(s),
            Tok::Num(n) => Value::Number(n),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => {
                return Err(RuleError::at(t.column, "null is not a value; write \"is null\" or \"is not null\""))
            }
            Tok::Word(w) => {
                return Err(RuleError::at(
                    t.column,
                    format!("expected a value after {after}, found the word {w}; put text in quotes: \"{w}\""),
                ))
            }
            other => {
                return Err(RuleError::at(
                    t.column,
                    format!("expected a value (\"text\", a number, true or false) after {after}, found {}", describe(&other)),
                ))
            }
        };
        Ok(Literal { value, column: t.column })
    }

    fn list(&mut self) -> Result<Vec<Literal>, RuleError> {
        let open = self.bump();
        if !matches!(open.tok, Tok::LParen) {
            return Err(RuleError::at(open.column, format!("expected \"(\" to start the list after in, found {}", describe(&open.tok))));
        }
        let mut values = Vec::new();
        loop {
            if matches!(self.peek().tok, Tok::RParen) && !values.is_empty() {
                self.bump();
                break;
            }
            values.push(self.value(if values.is_empty() { "\"(\"" } else { "\",\"" })?);
            if values.len() > MAX_LIST {
                return Err(RuleError::at(open.column, format!("a list may hold at most {MAX_LIST} values")));
            }
            let t = self.bump();
            match t.tok {
                Tok::Comma => {}
                Tok::RParen => break,
                other => {
                    return Err(RuleError::at(
                        t.column,
                        format!("expected \",\" or \")\" in the list started at column {}, found {}", open.column, describe(&other)),
                    ))
                }
            }
        }
        Ok(values)
    }
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "in", "is", "null", "contains", "true", "false"].iter().any(|k| w.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(rule: &str) -> RuleError {
        match parse(rule) {
            Err(e) => e,
            Ok(x) => panic!("{rule:?} parsed as {x:?}"),
        }
    }

    fn cond(e: &Expr) -> &Cond {
        match e {
            Expr::Cond(c) => c,
            other => panic!("not a condition: {other:?}"),
        }
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let e = parse("a = 1 or b = 2 and c = 3").unwrap();
        let Expr::Or(parts) = &e else { panic!("{e:?}") };
        assert_eq!(parts.len(), 2);
        assert!(matches!(&parts[1], Expr::And(v) if v.len() == 2));
        let e = parse("not a = 1 and b = 2").unwrap();
        let Expr::And(parts) = &e else { panic!("{e:?}") };
        assert!(matches!(&parts[0], Expr::Not(_)));
        let e = parse("(a = 1 or b = 2) and c = 3").unwrap();
        assert!(matches!(&e, Expr::And(v) if matches!(&v[0], Expr::Or(_))));
    }

    #[test]
    fn tokens_values_and_positions() {
        let e = parse(r#"rfm_class = "重要挽留" and p_alive < 0.5 and city in ("上海", '杭州',)"#).unwrap();
        let Expr::And(parts) = &e else { panic!() };
        let c0 = cond(&parts[0]);
        assert_eq!((c0.field.as_str(), c0.column, c0.op_column), ("rfm_class", 1, 11));
        assert_eq!(c0.test, Test::Compare(CmpOp::Eq, Literal { value: Value::Text("重要挽留".into()), column: 13 }));
        let c1 = cond(&parts[1]);
        assert_eq!(c1.test, Test::Compare(CmpOp::Lt, Literal { value: Value::Number("0.5".into()), column: 34 }));
        let Test::In { negated: false, values } = &cond(&parts[2]).test else { panic!() };
        assert_eq!(values.len(), 2);
        assert_eq!(values[1].value, Value::Text("杭州".into()));
    }

    #[test]
    fn keywords_are_case_insensitive_and_operators_have_spellings() {
        let e = parse("CITY Is NoT NuLL AnD x <> -1 OR y == .5 or z ≥ 3 or w NOT IN (1) or n Not Contains 'a'").unwrap();
        let Expr::Or(parts) = &e else { panic!("{e:?}") };
        assert_eq!(parts.len(), 5);
        let Expr::And(a) = &parts[0] else { panic!() };
        assert_eq!(cond(&a[0]).test, Test::Null { negated: true });
        assert_eq!(cond(&a[0]).field, "city");
        assert!(matches!(&cond(&a[1]).test, Test::Compare(CmpOp::Ne, Literal { value: Value::Number(n), .. }) if n == "-1"));
        assert!(matches!(&cond(&parts[1]).test, Test::Compare(CmpOp::Eq, Literal { value: Value::Number(n), .. }) if n == ".5"));
        assert!(matches!(&cond(&parts[2]).test, Test::Compare(CmpOp::Ge, _)));
        assert!(matches!(&cond(&parts[3]).test, Test::In { negated: true, .. }));
        assert!(matches!(&cond(&parts[4]).test, Test::Contains { negated: true, .. }));
    }

    #[test]
    fn strings_escapes_and_full_width_punctuation() {
        let e = parse(r#"name = "a\"b\\c" or name = 'it\'s' or city in （“上海”，‘北京’）"#).unwrap();
        let Expr::Or(p) = &e else { panic!() };
        assert!(matches!(&cond(&p[0]).test, Test::Compare(_, Literal { value: Value::Text(s), .. }) if s == "a\"b\\c"));
        assert!(matches!(&cond(&p[1]).test, Test::Compare(_, Literal { value: Value::Text(s), .. }) if s == "it's"));
        assert!(matches!(&cond(&p[2]).test, Test::In { values, .. } if values.len() == 2));
        let e = parse(r#"attr."会员 等级" = "金" and attr.level = 'x'"#).unwrap();
        let Expr::And(p) = &e else { panic!() };
        assert_eq!(cond(&p[0]).key.as_deref(), Some("会员 等级"));
        assert_eq!(cond(&p[1]).key.as_deref(), Some("level"));
    }

    #[test]
    fn errors_say_where_and_what() {
        let rule = r#"rfm_class = "重要挽留" and p_alive <"#;
        let e = err(rule);
        assert_eq!(e.to_string(), "column 33: expected a value (\"text\", a number, true or false) after \"<\", found end of rule");
        assert!(e.snippet(rule).ends_with(&format!("{}^", " ".repeat(36))), "{}", e.snippet(rule));
        assert_eq!(err("").column, 1);
        assert_eq!(err("city = 上海").message, "expected a value after \"=\", found the word 上海; put text in quotes: \"上海\"");
        assert_eq!(err("city = \"上海").message, "text starting here has no closing \"");
        assert_eq!(err("city = \"上海").column, 8);
        assert!(err("(city = 'a'").message.contains("to close the \"(\" at column 1"));
        assert!(err("city = 'a')").message.contains("no matching"));
        assert!(err("city = 'a' city = 'b'").message.starts_with("expected and, or"));
        assert!(err("city").message.starts_with("expected an operator after city"));
        assert!(err("city in ()").message.starts_with("expected a value"));
        assert!(err("city in 'a'").message.starts_with("expected \"(\""));
        assert!(err("city in ('a' 'b')").message.starts_with("expected \",\" or \")\""));
        assert!(err("city is nul").message.starts_with("expected null"));
        assert!(err("city = null").message.contains("is null"));
        assert!(err("and = 1").message.starts_with("expected a field name"));
        assert!(err("x = 1.").message.contains("digits after the decimal point"));
        assert!(err("x = 5d").message.contains("after a number"));
        assert!(err("x ! 5").message.contains("not"));
        assert!(err("x = 'a\\q'").message.contains("unknown escape"));
        assert!(err("x = 1 # y").message.contains("unexpected character"));
        assert!(err("attr. = 1").message.starts_with("expected a name after \"attr.\""));
    }

    #[test]
    fn limits_length_depth_and_lists() {
        let long = format!("name = \"{}\"", "a".repeat(MAX_RULE_CHARS));
        assert_eq!(err(&long).column, MAX_RULE_CHARS + 1);
        let deep = format!("{}x = 1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(err(&deep).message.contains("nested too deeply"));
        let ok = format!("{}x = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let nots = format!("{}x = 1", "not ".repeat(MAX_DEPTH + 1));
        assert!(err(&nots).message.contains("nested too deeply"));
        let list = format!("x in ({})", vec!["1"; MAX_LIST + 1].join(","));
        assert!(err(&list).message.contains("at most"));
    }
}
