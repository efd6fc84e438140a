//! IAM for the deploy rehearsal: which action and resource an AWS request is, and whether a role's
//! policies allow it. moto checks the action of every call but the resource only for SQS (see
//! scripts/rehearsal/rehearsal.py), so the rehearsal's proxy checks every call of a function against
//! its role's true policies with this evaluator as well.
//!
//! The evaluation is IAM's for identity policies without conditions: an explicit Deny wins, else an
//! Allow whose `Action` and `Resource` match (`*` and `?` wildcards; actions case-insensitive). A
//! policy with a `Condition`, `NotAction`, `NotResource` or a `Principal` is refused outright rather
//! than half-evaluated.

use std::collections::BTreeMap;

use serde_json::Value;

/// Names and ARNs of the stack the calls are made in.
#[derive(Debug, Clone, Default)]
pub struct Arns {
    pub region: String,
    pub account: String,
    /// Secret name → ARN (with its random suffix).
    pub secrets: BTreeMap<String, String>,
}

impl Arns {
    pub fn table(&self, name: &str) -> String {
        format!("arn:aws:dynamodb:{}:{}:table/{name}", self.region, self.account)
    }

    pub fn queue(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account)
    }

    pub fn secret(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            return id.to_owned();
        }
        self.secrets
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("arn:aws:secretsmanager:{}:{}:secret:{id}", self.region, self.account))
    }

    pub fn log_stream(&self, group: &str, stream: &str) -> String {
        format!("arn:aws:logs:{}:{}:log-group:{group}:log-stream:{stream}", self.region, self.account)
    }
}

/// One authorization an API request needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// `service:Action`, as IAM names it.
    pub action: String,
    pub resource: String,
}

/// The authorizations a request needs: from its `X-Amz-Target` (JSON protocols) and body. A DynamoDB
/// transaction needs each item's own action (IAM has no `TransactWriteItems` action).
pub fn calls(target: &str, body: &[u8], arns: &Arns) -> Result<Vec<Call>, String> {
    let (prefix, operation) = target.split_once('.').ok_or_else(|| format!("unexpected X-Amz-Target {target:?}"))?;
    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| format!("{target}: body is no JSON: {e}"))?
    };
    let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let call = |action: String, resource: String| Call { action, resource };
    match prefix {
        "secretsmanager" => {
            let id = text("SecretId").or_else(|| text("Name")).ok_or(format!("{target}: no SecretId"))?;
            Ok(vec![call(format!("secretsmanager:{operation}"), arns.secret(&id))])
        }
        "AmazonSQS" => {
            let url = text("QueueUrl").ok_or(format!("{target}: no QueueUrl"))?;
            let name = url.rsplit('/').next().unwrap_or_default().to_owned();
            Ok(vec![call(format!("sqs:{operation}"), arns.queue(&name))])
        }
        "Logs_20140328" => {
            let group = text("logGroupName").ok_or(format!("{target}: no logGroupName"))?;
            let stream = text("logStreamName").unwrap_or_default();
            Ok(vec![call(format!("logs:{operation}"), arns.log_stream(&group, &stream))])
        }
        p if p.starts_with("DynamoDB_") => dynamodb(operation, &json, arns),
        _ => Err(format!("the rehearsal does not map calls to {target}")),
    }
}

fn dynamodb(operation: &str, json: &Value, arns: &Arns) -> Result<Vec<Call>, String> {
    let table = |v: &Value| v.get("TableName").and_then(Value::as_str).map(|t| arns.table(t));
    match operation {
        "TransactWriteItems" => {
            let items = json.get("TransactItems").and_then(Value::as_array).ok_or("TransactWriteItems: no items")?;
            items
                .iter()
                .map(|item| {
                    let (kind, spec) = item
                        .as_object()
                        .and_then(|o| o.iter().next())
                        .ok_or_else(|| format!("TransactWriteItems: odd item {item}"))?;
                    let action = match kind.as_str() {
                        "Put" => "dynamodb:PutItem",
                        "Update" => "dynamodb:UpdateItem",
                        "Delete" => "dynamodb:DeleteItem",
                        "ConditionCheck" => "dynamodb:ConditionCheckItem",
                        other => return Err(format!("TransactWriteItems: unknown item kind {other}")),
                    };
                    let resource = table(spec).ok_or("TransactWriteItems: item without TableName")?;
                    Ok(Call { action: action.to_owned(), resource })
                })
                .collect()
        }
        "BatchWriteItem" | "BatchGetItem" => {
            let tables = json.get("RequestItems").and_then(Value::as_object).ok_or("batch without RequestItems")?;
            Ok(tables
                .keys()
                .map(|t| Call { action: format!("dynamodb:{operation}"), resource: arns.table(t) })
                .collect())
        }
        _ => {
            let mut resource = table(json).ok_or_else(|| format!("DynamoDB {operation}: no TableName"))?;
            if let Some(index) = json.get("IndexName").and_then(Value::as_str) {
                resource = format!("{resource}/index/{index}");
            }
            Ok(vec![Call { action: format!("dynamodb:{operation}"), resource }])
        }
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` exactly one.
pub fn matches(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &value.chars().collect::<Vec<_>>())
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// One statement, read strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// The statements of policy documents (identity policies). Panics on anything this evaluator does not
/// evaluate, so an unevaluated condition never passes as allowed.
pub fn statements(documents: &[Value]) -> Vec<Statement> {
    let mut out = Vec::new();
    for doc in documents {
        let list = match &doc["Statement"] {
            Value::Array(a) => a.clone(),
            one @ Value::Object(_) => vec![one.clone()],
            other => panic!("a policy without statements: {other}"),
        };
        for s in list {
            for unsupported in ["Condition", "NotAction", "NotResource", "Principal", "NotPrincipal"] {
                assert!(s.get(unsupported).is_none(), "the rehearsal does not evaluate {unsupported}: {s}");
            }
            let allow = match s["Effect"].as_str() {
                Some("Allow") => true,
                Some("Deny") => false,
                other => panic!("statement effect {other:?}: {s}"),
            };
            out.push(Statement { allow, actions: strings(&s["Action"]), resources: strings(&s["Resource"]) });
        }
    }
    out
}

/// Whether `statements` allow `call`.
pub fn allowed(statements: &[Statement], call: &Call) -> bool {
    let applies = |s: &Statement| {
        s.actions.iter().any(|a| matches(&a.to_ascii_lowercase(), &call.action.to_ascii_lowercase()))
            && s.resources.iter().any(|r| matches(r, &call.resource))
    };
    !statements.iter().any(|s| !s.allow && applies(s)) && statements.iter().any(|s| s.allow && applies(s))
}

/// Every (action, resource) pair the statements allow, as written.
pub fn grants(statements: &[Statement]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = statements
        .iter()
        .filter(|s| s.allow)
        .flat_map(|s| s.actions.iter().flat_map(move |a| s.resources.iter().map(move |r| (a.clone(), r.clone()))))
        .collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(matches(
            "arn:aws:secretsmanager:r:1:secret:s/campbridge.toml-??????",
            "arn:aws:secretsmanager:r:1:secret:s/campbridge.toml-AbC123"
        ));
        assert!(!matches(
            "arn:aws:secretsmanager:r:1:secret:s/campbridge.toml-??????",
            "arn:aws:secretsmanager:r:1:secret:s/campbridge.toml-AbC12"
        ));
        assert!(matches(
            "arn:aws:logs:r:1:log-group:/aws/lambda/f:*",
            "arn:aws:logs:r:1:log-group:/aws/lambda/f:log-stream:x"
        ));
        assert!(!matches("arn:aws:dynamodb:r:1:table/t", "arn:aws:dynamodb:r:1:table/t/index/gsi1"));
    }

    #[test]
    fn a_deny_wins_and_nothing_is_allowed_without_an_allow() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "arn:aws:sqs:r:1:*"},
            {"Effect": "Deny", "Action": "sqs:*", "Resource": "arn:aws:sqs:r:1:dead"},
        ]});
        let s = statements(&[policy]);
        let call = |a: &str, r: &str| Call { action: a.into(), resource: r.into() };
        assert!(allowed(&s, &call("sqs:SendMessage", "arn:aws:sqs:r:1:jobs")));
        assert!(!allowed(&s, &call("sqs:SendMessage", "arn:aws:sqs:r:1:dead")));
        assert!(!allowed(&s, &call("sqs:ReceiveMessage", "arn:aws:sqs:r:1:jobs")));
    }

    #[test]
    fn a_transaction_needs_each_items_action() {
        let arns = Arns { region: "r".into(), account: "1".into(), ..Arns::default() };
        let body = json!({"TransactItems": [{"Put": {"TableName": "t"}}, {"Delete": {"TableName": "t"}}]});
        let got = calls("DynamoDB_20120810.TransactWriteItems", body.to_string().as_bytes(), &arns).unwrap();
        let actions: Vec<&str> = got.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(actions, ["dynamodb:PutItem", "dynamodb:DeleteItem"]);
    }
}
