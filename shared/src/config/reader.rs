//! A span-aware walk over a parsed TOML document. Getters read one key, check its type and record every
//! problem with the line it sits on, so one run reports all of a file's mistakes.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::{ConfigError, SecretRef};

/// A byte range in the config text (None only for values that did not come from the text).
pub(super) type Span = Option<Range<usize>>;

/// A value with the place it was written.
#[derive(Debug, Clone)]
pub(super) struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// Collects problems while the document is walked.
pub(super) struct Ctx {
    file: String,
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
    /// Things that are allowed but probably not meant (`config check` prints them; nothing is refused).
    warnings: Vec<ConfigError>,
    /// `[server] allow_insecure_loopback_upstreams`: lets upstream URLs be `http://` on loopback.
    pub allow_insecure_loopback: bool,
}

impl Ctx {
    pub fn new(file: &str, text: &str) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Self {
            file: file.to_owned(),
            line_starts,
            errors: Vec::new(),
            warnings: Vec::new(),
            allow_insecure_loopback: false,
        }
    }

    /// The 1-based line holding the start of `span`.
    pub fn line_of(&self, span: &Span) -> Option<usize> {
        span.as_ref().map(|r| self.line_starts.partition_point(|&start| start <= r.start))
    }

    pub fn error(&mut self, span: &Span, message: impl Into<String>) {
        let line = self.line_of(span);
        self.errors.push(ConfigError { file: self.file.clone(), line, message: message.into() });
    }

    /// Records something the config allows but that is probably a mistake.
    pub fn warn(&mut self, span: &Span, message: impl Into<String>) {
        let line = self.line_of(span);
        self.warnings.push(ConfigError { file: self.file.clone(), line, message: message.into() });
    }

    /// The warnings, in file order.
    pub fn take_warnings(&mut self) -> Vec<ConfigError> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|e| e.line.unwrap_or(0));
        warnings
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// All problems, in file order (problems on one line keep the order they were found in).
    pub fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| e.line.unwrap_or(0));
        self.errors
    }
}

/// Where a problem is, as people read it: `[basecamp]`, `route "web"`, `user "ana"`.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    place: String,
}

impl Scope {
    pub fn root() -> Self {
        Self { place: String::new() }
    }
    pub fn section(name: &str) -> Self {
        Self { place: format!("[{name}]") }
    }
    pub fn named(kind: &str, name: &str) -> Self {
        Self { place: format!("{kind} {name:?}") }
    }
    pub fn numbered(kind: &str, index: usize) -> Self {
        Self { place: format!("{kind} #{index}") }
    }
    pub fn child(&self, what: &str) -> Self {
        if self.place.is_empty() {
            Self { place: what.to_owned() }
        } else {
            Self { place: format!("{} {what}", self.place) }
        }
    }

    /// `route "web"` or `[basecamp]`, for "unknown key … in {place}".
    pub fn place(&self) -> &str {
        if self.place.is_empty() { "the top level" } else { &self.place }
    }

    /// Prefixes a message: `route "web": …`, `[basecamp] …`, or nothing at the top level.
    pub fn say(&self, message: impl std::fmt::Display) -> String {
        if self.place.is_empty() {
            message.to_string()
        } else if self.place.starts_with('[') {
            format!("{} {message}", self.place)
        } else {
            format!("{}: {message}", self.place)
        }
    }
}

/// One table (a `[section]`, a `[[routes]]` entry or an inline table) being read.
pub(super) struct Section<'d> {
    pub table: &'d dyn TableLike,
    /// The table's header or inline span: where "missing key" problems point.
    pub span: Span,
    pub scope: Scope,
}

impl<'d> Section<'d> {
    pub fn new(table: &'d dyn TableLike, span: Span, scope: Scope) -> Self {
        Self { table, span, scope }
    }

    /// Reports every key not in `known`, suggesting the nearest known one.
    pub fn check_keys(&self, ctx: &mut Ctx, known: &[&str]) {
        for (key, _) in self.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = self.table.key(key).and_then(|k| k.span());
            let hint = suggest(key, known).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
            ctx.error(&span, format!("unknown key {key:?} in {}{hint}", self.scope.place()));
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some_and(|item| !item.is_none())
    }

    /// The line of `key` itself (or of the table when it is absent).
    pub fn key_span(&self, key: &str) -> Span {
        self.table.key(key).and_then(|k| k.span()).or_else(|| self.span.clone())
    }

    fn value(&self, key: &str) -> Option<(&'d Item, Span)> {
        let item = self.table.get(key).filter(|item| !item.is_none())?;
        let span = item.span().or_else(|| self.key_span(key));
        Some((item, span))
    }

    pub fn missing(&self, ctx: &mut Ctx, key: &str) {
        ctx.error(&self.span, self.scope.say(format!("{key} is required")));
    }

    fn wrong_type(&self, ctx: &mut Ctx, key: &str, expected: &str, item: &Item, span: &Span) {
        ctx.error(span, self.scope.say(format!("{key} must be {expected}, not {}", describe(item))));
    }

    pub fn str(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<String>> {
        let (item, span) = self.value(key)?;
        match item.as_str() {
            Some(s) => Some(Spanned::new(s.to_owned(), span)),
            None => {
                self.wrong_type(ctx, key, "a string", item, &span);
                None
            }
        }
    }

    pub fn required_str(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<String>> {
        if !self.has(key) {
            self.missing(ctx, key);
        }
        self.str(ctx, key)
    }

    /// A string that must not be blank.
    pub fn non_empty_str(&self, ctx: &mut Ctx, key: &str, required: bool) -> Option<Spanned<String>> {
        let value = if required { self.required_str(ctx, key) } else { self.str(ctx, key) }?;
        if value.value.trim().is_empty() {
            ctx.error(&value.span, self.scope.say(format!("{key} must not be empty")));
            return None;
        }
        Some(value)
    }

    pub fn int(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<i64>> {
        let (item, span) = self.value(key)?;
        match item.as_integer() {
            Some(n) => Some(Spanned::new(n, span)),
            None => {
                self.wrong_type(ctx, key, "an integer", item, &span);
                None
            }
        }
    }

    pub fn required_int(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<i64>> {
        if !self.has(key) {
            self.missing(ctx, key);
        }
        self.int(ctx, key)
    }

    pub fn bool(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<bool>> {
        let (item, span) = self.value(key)?;
        match item.as_bool() {
            Some(b) => Some(Spanned::new(b, span)),
            None => {
                self.wrong_type(ctx, key, "true or false", item, &span);
                None
            }
        }
    }

    /// An array of strings; each element keeps its own line.
    pub fn str_list(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<Vec<Spanned<String>>>> {
        let (item, span) = self.value(key)?;
        let Some(array) = item.as_array() else {
            self.wrong_type(ctx, key, "an array of strings", item, &span);
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for value in array.iter() {
            match value.as_str() {
                Some(s) => out.push(Spanned::new(s.to_owned(), value.span())),
                None => {
                    ctx.error(
                        &value.span(),
                        self.scope.say(format!("{key} must hold only strings, not {}", describe_value(value))),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| Spanned::new(out, span))
    }

    /// A sub-table, written as `[a.b]` or inline as `b = { … }`.
    pub fn table(&self, ctx: &mut Ctx, key: &str, scope: Scope) -> Option<Section<'d>> {
        let (item, span) = self.value(key)?;
        match item.as_table_like() {
            Some(table) => Some(Section::new(table, span, scope)),
            None => {
                self.wrong_type(ctx, key, "a table", item, &span);
                None
            }
        }
    }

    /// An array of tables, written as `[[a.b]]` entries or inline as `b = [{ … }, { … }]`.
    pub fn tables(&self, ctx: &mut Ctx, key: &str) -> Vec<(&'d dyn TableLike, Span)> {
        let Some((item, span)) = self.value(key) else { return Vec::new() };
        if let Some(array) = item.as_array_of_tables() {
            return array.iter().map(|t| (t as &dyn TableLike, t.span())).collect();
        }
        let Some(array) = item.as_array() else {
            self.wrong_type(ctx, key, "an array of tables", item, &span);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(array.len());
        for value in array.iter() {
            match value.as_inline_table() {
                Some(t) => out.push((t as &dyn TableLike, value.span())),
                None => ctx.error(
                    &value.span(),
                    self.scope.say(format!("{key} must hold only tables, not {}", describe_value(value))),
                ),
            }
        }
        out
    }

    /// A secret reference, `key = { secret = "name" }`. A literal is refused: secrets never live in the file.
    pub fn secret(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<SecretRef>> {
        let (item, span) = self.value(key)?;
        let Some(table) = item.as_table_like() else {
            ctx.error(
                &span,
                self.scope.say(format!(
                    "{key} must be a secret reference like {{ secret = \"name\" }}, not a literal — \
                     secrets never live in this file"
                )),
            );
            return None;
        };
        let inner = Section::new(table, span.clone(), self.scope.child(key));
        inner.check_keys(ctx, &["secret"]);
        let name = inner.non_empty_str(ctx, "secret", true)?;
        match SecretRef::parse(&name.value) {
            Ok(secret) => Some(Spanned::new(secret, span)),
            Err(message) => {
                ctx.error(&name.span, self.scope.say(format!("{key}: {message}")));
                None
            }
        }
    }

    pub fn required_secret(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<SecretRef>> {
        if !self.has(key) {
            self.missing(ctx, key);
        }
        self.secret(ctx, key)
    }

    /// A word from a closed set, via its `FromStr` (whose error reads `unknown … (expected …)`).
    pub fn word<T>(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<T>>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let text = self.str(ctx, key)?;
        match text.value.parse::<T>() {
            Ok(v) => Some(Spanned::new(v, text.span)),
            Err(e) => {
                ctx.error(&text.span, self.scope.say(e));
                None
            }
        }
    }
}

fn describe(item: &Item) -> String {
    match item {
        Item::Value(v) => describe_value(v),
        Item::Table(_) => "a table".to_owned(),
        Item::ArrayOfTables(_) => "an array of tables".to_owned(),
        Item::None => "nothing".to_owned(),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {:?}", s.value()),
        Value::Integer(i) => format!("the integer {}", i.value()),
        Value::Float(f) => format!("the number {}", f.value()),
        Value::Boolean(b) => format!("{}", b.value()),
        Value::Datetime(_) => "a date".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::InlineTable(_) => "a table".to_owned(),
    }
}

/// The known word closest to `word`, if it is close enough to be a likely typo.
pub(super) fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 3 && *d * 3 <= k.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars, counting an adjacent swap as one edit (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best =
                    (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}
