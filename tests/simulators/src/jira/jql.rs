//! The slice of JQL the simulator understands: `AND`/`OR` of clauses over `project`, `key`,
//! `labels`, `status`, `statusCategory`, `assignee`, `updated`, `created`, `summary ~`, with
//! `=`, `!=`, `>`, `>=`, `<`, `<=`, `~`, `in (…)`, `not in (…)`, `is empty`, `is not empty`, and
//! `ORDER BY` on `updated`, `created`, `key`. Dates are `"yyyy-MM-dd HH:mm"`, `"yyyy-MM-dd"` or
//! relative (`-15m`, `-2h`, `-1d`), read as UTC.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

use super::state::Issue;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Op(String),
    Open,
    Close,
    Comma,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '"' | '\'' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated string".to_owned());
                }
                i += 1;
                tokens.push(Token::Str(text));
            }
            '=' | '!' | '<' | '>' | '~' => {
                let mut op = c.to_string();
                if i + 1 < chars.len() && (chars[i + 1] == '=' || (c == '!' && chars[i + 1] == '~')) {
                    op.push(chars[i + 1]);
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Op(op));
            }
            _ => {
                let mut word = String::new();
                while i < chars.len() && !" \t\n\r(),=!<>~\"'".contains(chars[i]) {
                    word.push(chars[i]);
                    i += 1;
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

#[derive(Clone, Debug)]
enum Cond {
    Cmp { field: String, op: String, values: Vec<String> },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

/// A parsed query.
#[derive(Clone, Debug)]
pub struct Query {
    cond: Option<Cond>,
    order: Vec<(String, bool)>,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn is_kw(token: Option<&Token>, kw: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }
    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.atom()?;
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            left = Cond::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }
    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Str(w)) => Ok(w),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
    fn atom(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err("expected ')'".to_owned());
            }
            return Ok(inner);
        }
        let field = match self.next() {
            Some(Token::Word(w)) | Some(Token::Str(w)) => w.to_ascii_lowercase(),
            other => return Err(format!("expected a field, found {other:?}")),
        };
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => "in".to_owned(),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("not") && is_kw(self.peek(), "in") => {
                self.pos += 1;
                "not in".to_owned()
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("is") => {
                let negated = is_kw(self.peek(), "not");
                if negated {
                    self.pos += 1;
                }
                if !(is_kw(self.peek(), "empty") || is_kw(self.peek(), "null")) {
                    return Err("expected EMPTY".to_owned());
                }
                self.pos += 1;
                let op = if negated { "is not empty" } else { "is empty" };
                return Ok(Cond::Cmp { field, op: op.to_owned(), values: Vec::new() });
            }
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        let values = if op == "in" || op == "not in" {
            if self.next() != Some(Token::Open) {
                return Err("expected '('".to_owned());
            }
            let mut values = vec![self.value()?];
            while self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                values.push(self.value()?);
            }
            if self.next() != Some(Token::Close) {
                return Err("expected ')'".to_owned());
            }
            values
        } else {
            vec![self.value()?]
        };
        Ok(Cond::Cmp { field, op, values })
    }
}

/// Parses a JQL string. An error message says what was not understood.
pub fn parse(jql: &str) -> Result<Query, String> {
    let tokens = tokenize(jql)?;
    let order_at = tokens
        .windows(2)
        .position(|pair| is_kw(pair.first(), "order") && is_kw(pair.get(1), "by"))
        .unwrap_or(tokens.len());
    let (cond_tokens, order_tokens) = tokens.split_at(order_at);
    let cond = if cond_tokens.is_empty() {
        None
    } else {
        let mut parser = Parser { tokens: cond_tokens.to_vec(), pos: 0 };
        let cond = parser.or()?;
        if parser.pos != cond_tokens.len() {
            return Err(format!("unexpected {:?}", cond_tokens.get(parser.pos)));
        }
        Some(cond)
    };
    let mut order = Vec::new();
    let mut rest = order_tokens.iter().skip(2).peekable();
    while let Some(token) = rest.next() {
        let Token::Word(field) = token else { return Err("bad ORDER BY".to_owned()) };
        let mut ascending = true;
        if let Some(Token::Word(dir)) = rest.peek() {
            if dir.eq_ignore_ascii_case("desc") {
                ascending = false;
                rest.next();
            } else if dir.eq_ignore_ascii_case("asc") {
                rest.next();
            }
        }
        order.push((field.to_ascii_lowercase(), ascending));
        if rest.peek() == Some(&&Token::Comma) {
            rest.next();
        }
    }
    Ok(Query { cond, order })
}

impl Query {
    /// True when the query restricts the result (Jira rejects unbounded queries on this endpoint).
    pub fn is_bounded(&self) -> bool {
        self.cond.is_some()
    }

    /// Checks every clause against `issue`.
    pub fn matches(&self, issue: &Issue, now: DateTime<Utc>) -> Result<bool, String> {
        match &self.cond {
            None => Ok(true),
            Some(cond) => eval(cond, issue, now),
        }
    }

    /// Sorts `issues` by the ORDER BY clause (default: created descending, like Jira's key order).
    pub fn sort(&self, issues: &mut [&Issue]) {
        let order = if self.order.is_empty() { vec![("key".to_owned(), false)] } else { self.order.clone() };
        issues.sort_by(|a, b| {
            for (field, ascending) in &order {
                let ordering = match field.as_str() {
                    "updated" => a.updated.cmp(&b.updated),
                    "created" => a.created.cmp(&b.created),
                    _ => a.id.cmp(&b.id),
                };
                let ordering = if *ascending { ordering } else { ordering.reverse() };
                if ordering != std::cmp::Ordering::Equal {
                    return ordering;
                }
            }
            a.id.cmp(&b.id)
        });
    }
}

fn parse_when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    if let Some(relative) = trimmed.strip_prefix('-') {
        let (number, unit) = relative.split_at(relative.len().saturating_sub(1));
        let n: i64 = number.parse().map_err(|_| format!("bad relative date '{text}'"))?;
        let span = match unit {
            "m" => Duration::minutes(n),
            "h" => Duration::hours(n),
            "d" => Duration::days(n),
            "w" => Duration::weeks(n),
            _ => return Err(format!("bad relative date '{text}'")),
        };
        return Ok(now - span);
    }
    for format in ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"] {
        if let Ok(parsed) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(parsed.and_utc());
        }
    }
    for format in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(date) = NaiveDate::parse_from_str(trimmed, format) {
            return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
        }
    }
    Err(format!(
        "Date value '{text}' for field is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
    ))
}

fn eval(cond: &Cond, issue: &Issue, now: DateTime<Utc>) -> Result<bool, String> {
    let Cond::Cmp { field, op, values } = cond else {
        return match cond {
            Cond::And(a, b) => Ok(eval(a, issue, now)? && eval(b, issue, now)?),
            Cond::Or(a, b) => Ok(eval(a, issue, now)? || eval(b, issue, now)?),
            Cond::Cmp { .. } => Ok(false),
        };
    };
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match field.as_str() {
        "updated" | "updateddate" | "created" | "createddate" => {
            let at = if field.starts_with("updated") { issue.updated } else { issue.created };
            let when = parse_when(values.first().map(String::as_str).unwrap_or_default(), now)?;
            Ok(match op.as_str() {
                ">=" => at >= when,
                ">" => at > when,
                "<=" => at <= when,
                "<" => at < when,
                "=" => at == when,
                "!=" => at != when,
                _ => return Err(format!("operator '{op}' is not supported for '{field}'")),
            })
        }
        "summary" | "text" if op == "~" || op == "!~" => {
            let needle = values.first().map(|v| v.to_lowercase()).unwrap_or_default();
            let found = issue.summary.to_lowercase().contains(&needle);
            Ok(if op == "~" { found } else { !found })
        }
        _ => {
            let actual: Vec<String> = match field.as_str() {
                "project" => vec![issue.project_key.clone()],
                "key" | "issuekey" | "id" => vec![issue.key.clone(), issue.id.to_string()],
                "labels" => issue.labels.clone(),
                "component" => issue.components.clone(),
                "status" => vec![issue.status_name().to_owned(), issue.status_id().to_owned()],
                "statuscategory" => vec![issue.status_category().to_owned()],
                "assignee" => issue.assignee.iter().cloned().collect(),
                "priority" => vec![issue.priority.clone()],
                "issuetype" | "type" => vec![issue.issuetype.clone()],
                other => {
                    return Err(format!("Field '{other}' does not exist or you do not have permission to view it."));
                }
            };
            let any = |wanted: &[String]| wanted.iter().any(|w| actual.iter().any(|a| eq(a, w)));
            Ok(match op.as_str() {
                "=" | "in" => any(values),
                "!=" | "not in" => !any(values),
                "is empty" => actual.is_empty(),
                "is not empty" => !actual.is_empty(),
                _ => return Err(format!("operator '{op}' is not supported for '{field}'")),
            })
        }
    }
}
