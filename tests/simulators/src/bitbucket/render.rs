//! Bitbucket Cloud JSON built from the fixtures in `tests/fixtures/bitbucket/`: API objects and
//! webhook bodies keep the fixtures' key sets, with values from the simulator's state.

use serde_json::{Map, Value, json};

use super::Ctx;
use super::state::{BuildStatus, Hook, PullRequest, User};
use crate::common::json::{fixture, obj};

pub const USER: &str = include_str!("../../../fixtures/bitbucket/cloud-api-user-get.legacy.json");
pub const REPOSITORY: &str = include_str!("../../../fixtures/bitbucket/cloud-api-repository-get.json");
pub const PULLREQUEST: &str = include_str!("../../../fixtures/bitbucket/cloud-api-pullrequest-get.json");
pub const PR_LIST: &str = include_str!("../../../fixtures/bitbucket/cloud-api-pullrequests-list-paginated.json");
pub const BUILD_STATUS: &str = include_str!("../../../fixtures/bitbucket/cloud-api-commit-build-status-get.json");
pub const HOOK: &str = include_str!("../../../fixtures/bitbucket/cloud-api-webhook-subscription.json");
pub const ERROR_401: &str = include_str!("../../../fixtures/bitbucket/cloud-api-error-401-token-invalid.json");
pub const ERROR_410: &str = include_str!("../../../fixtures/bitbucket/cloud-api-error-410-resource-removed.json");
pub const WH_CREATED: &str = include_str!("../../../fixtures/bitbucket/cloud-webhook-pullrequest-created.json");
pub const WH_UPDATED: &str = include_str!("../../../fixtures/bitbucket/cloud-webhook-pullrequest-updated.json");
pub const WH_FULFILLED: &str = include_str!("../../../fixtures/bitbucket/cloud-webhook-pullrequest-fulfilled.json");
pub const WH_REJECTED: &str = include_str!("../../../fixtures/bitbucket/cloud-webhook-pullrequest-rejected.json");
pub const WH_STATUS_CREATED: &str =
    include_str!("../../../fixtures/bitbucket/cloud-webhook-repo-commit-status-created.docs-template.json");
pub const WH_STATUS_UPDATED: &str =
    include_str!("../../../fixtures/bitbucket/cloud-webhook-repo-commit-status-updated.docs-template.json");
pub const WH_PUSH: &str = include_str!("../../../fixtures/bitbucket/cloud-webhook-repo-push.signed-raw-body.json");

fn href(url: String) -> Value {
    json!({"href": url})
}

/// Replaces the values of `template`'s keys with `ours` where both have them (keeps the template's
/// key set, recursing one level into objects both sides have).
pub fn overlay(template: &Value, ours: &Value) -> Value {
    let (Value::Object(t), Value::Object(o)) = (template, ours) else { return ours.clone() };
    let mut out = Map::new();
    for (key, value) in t {
        let merged = match o.get(key) {
            Some(mine @ Value::Object(_)) if value.is_object() && key != "links" => overlay(value, mine),
            Some(mine) => mine.clone(),
            None => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

/// An account reference (author, actor, closed_by).
pub fn account(ctx: &Ctx, user: &User) -> Value {
    json!({
        "username": user.nickname, "display_name": user.display_name, "account_id": user.account_id,
        "links": {"self": href(ctx.api(&format!("/users/{}", user.uuid))),
                  "html": href(format!("{}/{}/", ctx.web, user.nickname)),
                  "avatar": href(format!("{}/account/{}/avatar/", ctx.web, user.nickname))},
        "nickname": user.nickname, "type": "user", "uuid": user.uuid,
    })
}

/// `GET /2.0/user`.
pub fn user(ctx: &Ctx, user: &User) -> Value {
    let mut map = obj(fixture(USER));
    let reference = account(ctx, user);
    for key in ["username", "display_name", "account_id", "links", "uuid"] {
        map.insert(key.into(), reference[key].clone());
    }
    map.insert("created_on".into(), "2026-01-05T09:00:00.000000+00:00".into());
    Value::Object(map)
}

/// A repository reference inside other objects.
pub fn repo_ref(ctx: &Ctx) -> Value {
    json!({
        "links": {"self": href(ctx.api(&format!("/repositories/{}", ctx.full_name()))),
                  "html": href(format!("{}/{}", ctx.web, ctx.full_name())),
                  "avatar": href(format!("{}/{}/avatar", ctx.web, ctx.full_name()))},
        "type": "repository", "name": ctx.repo, "full_name": ctx.full_name(), "uuid": ctx.repo_uuid,
    })
}

fn workspace(ctx: &Ctx) -> Value {
    json!({"type": "workspace", "uuid": ctx.workspace_uuid, "name": ctx.workspace_name, "slug": ctx.workspace,
           "links": {"avatar": href(format!("{}/workspaces/{}/avatar/", ctx.web, ctx.workspace)),
                     "html": href(format!("{}/{}/", ctx.web, ctx.workspace)),
                     "self": href(ctx.api(&format!("/workspaces/{}", ctx.workspace)))}})
}

/// `GET /2.0/repositories/{ws}/{repo}`.
pub fn repository(ctx: &Ctx, owner: &User) -> Value {
    let mut map = obj(fixture(REPOSITORY));
    let base = ctx.api(&format!("/repositories/{}", ctx.full_name()));
    let mut links = Map::new();
    for key in ["watchers", "commits", "hooks", "forks", "downloads", "pullrequests", "source"] {
        links.insert(key.into(), href(format!("{base}/{key}")));
    }
    links.insert("branches".into(), href(format!("{base}/refs/branches")));
    links.insert("tags".into(), href(format!("{base}/refs/tags")));
    links.insert("self".into(), href(base));
    links.insert("html".into(), href(format!("{}/{}", ctx.web, ctx.full_name())));
    links.insert("avatar".into(), href(format!("{}/{}/avatar", ctx.web, ctx.full_name())));
    links.insert("clone".into(), json!([{"href": format!("{}/{}.git", ctx.web, ctx.full_name()), "name": "https"}]));
    map.insert("links".into(), Value::Object(links));
    map.insert("name".into(), ctx.repo.clone().into());
    map.insert("slug".into(), ctx.repo.clone().into());
    map.insert("full_name".into(), ctx.full_name().into());
    map.insert("uuid".into(), ctx.repo_uuid.clone().into());
    map.insert("has_issues".into(), ctx.has_issues.into());
    map.insert("is_private".into(), true.into());
    map.insert("mainbranch".into(), json!({"type": "branch", "name": "main"}));
    map.insert("owner".into(), account(ctx, owner));
    map.insert("workspace".into(), workspace(ctx));
    Value::Object(map)
}

fn commit_ref(ctx: &Ctx, hash: &str) -> Value {
    json!({"hash": hash, "type": "commit",
           "links": {"self": href(ctx.api(&format!("/repositories/{}/commit/{hash}", ctx.full_name()))),
                     "html": href(format!("{}/{}/commits/{hash}", ctx.web, ctx.full_name()))}})
}

/// `GET …/pullrequests/{id}`.
pub fn pullrequest(ctx: &Ctx, pr: &PullRequest, author: &User, closed_by: Option<&User>) -> Value {
    let mut map = obj(fixture(PULLREQUEST));
    let base = ctx.api(&format!("/repositories/{}/pullrequests/{}", ctx.full_name(), pr.id));
    let mut links = Map::new();
    for key in ["decline", "commits", "comments", "merge", "activity", "diff", "approve", "statuses"] {
        links.insert(key.into(), href(format!("{base}/{key}")));
    }
    links.insert("self".into(), href(base));
    links.insert("html".into(), href(format!("{}/{}/pull-requests/{}", ctx.web, ctx.full_name(), pr.id)));
    map.insert("links".into(), Value::Object(links));
    map.insert("id".into(), pr.id.into());
    map.insert("title".into(), pr.title.clone().into());
    map.insert("description".into(), pr.description.clone().into());
    map.insert("summary".into(), json!({"raw": pr.description, "markup": "markdown", "html": format!("<p>{}</p>", pr.description), "type": "rendered"}));
    map.insert("state".into(), pr.state.clone().into());
    map.insert("reason".into(), pr.reason.clone().into());
    map.insert("created_on".into(), pr.created_on.clone().into());
    map.insert("updated_on".into(), pr.updated_on.clone().into());
    map.insert("author".into(), account(ctx, author));
    map.insert("closed_by".into(), closed_by.map(|u| account(ctx, u)).unwrap_or(Value::Null));
    map.insert(
        "merge_commit".into(),
        pr.merge_commit.as_ref().map(|h| json!({"hash": &h[..12.min(h.len())]})).unwrap_or(Value::Null),
    );
    let side = |branch: &str, hash: &str| json!({"commit": commit_ref(ctx, &hash[..12.min(hash.len())]), "repository": repo_ref(ctx), "branch": {"name": branch}});
    map.insert("source".into(), side(&pr.source_branch, &pr.source_hash));
    map.insert("destination".into(), side(&pr.destination_branch, &pr.destination_hash));
    Value::Object(map)
}

/// The paginated envelope (`{values, pagelen, size, page, next?}`).
pub fn page(values: Vec<Value>, pagelen: usize, page: usize, size: usize, next: Option<String>) -> Value {
    let mut map = obj(fixture(PR_LIST));
    map.insert("values".into(), Value::Array(values));
    map.insert("pagelen".into(), pagelen.into());
    map.insert("size".into(), size.into());
    map.insert("page".into(), page.into());
    if let Some(next) = next {
        map.insert("next".into(), next.into());
    }
    Value::Object(map)
}

/// A `commitstatus` object.
pub fn build_status(ctx: &Ctx, status: &BuildStatus) -> Value {
    let mut map = obj(fixture(BUILD_STATUS));
    let commit_url = ctx.api(&format!("/repositories/{}/commit/{}", ctx.full_name(), status.commit));
    map.insert("key".into(), status.key.clone().into());
    map.insert("state".into(), status.state.clone().into());
    map.insert("name".into(), status.name.clone().into());
    map.insert("description".into(), status.description.clone().into());
    map.insert("url".into(), status.url.clone().into());
    map.insert("refname".into(), status.refname.clone().map(Value::from).unwrap_or(Value::Null));
    map.insert("commit".into(), commit_ref(ctx, &status.commit));
    map.insert("repository".into(), repo_ref(ctx));
    map.insert("created_on".into(), status.created_on.clone().into());
    map.insert("updated_on".into(), status.updated_on.clone().into());
    map.insert(
        "links".into(),
        json!({"self": href(format!("{commit_url}/statuses/build/{}", status.key)), "commit": href(commit_url)}),
    );
    Value::Object(map)
}

/// A `webhook_subscription` (the secret is never returned, only `secret_set`).
pub fn hook(ctx: &Ctx, hook: &Hook) -> Value {
    let mut map = obj(fixture(HOOK));
    map.insert("uuid".into(), hook.uuid.clone().into());
    map.insert("url".into(), hook.url.clone().into());
    map.insert("description".into(), hook.description.clone().into());
    map.insert("active".into(), hook.active.into());
    map.insert("events".into(), hook.events.clone().into());
    map.insert("created_at".into(), hook.created_at.clone().into());
    map.insert("subject".into(), repo_ref(ctx));
    let encoded = hook.uuid.replace('{', "%7B").replace('}', "%7D");
    map.insert(
        "links".into(),
        json!({"self": href(ctx.api(&format!("/repositories/{}/hooks/{encoded}", ctx.full_name())))}),
    );
    map.insert("secret_set".into(), hook.secret.is_some().into());
    Value::Object(map)
}

/// The `repository` object webhooks carry, in the template's shape.
pub fn webhook_repository(ctx: &Ctx, template: &Value, owner: &User) -> Value {
    let mut ours = obj(repo_ref(ctx));
    ours.insert("is_private".into(), true.into());
    ours.insert("scm".into(), "git".into());
    ours.insert("owner".into(), account(ctx, owner));
    ours.insert("workspace".into(), workspace(ctx));
    ours.insert("parent".into(), Value::Null);
    ours.insert("website".into(), Value::Null);
    overlay(template, &Value::Object(ours))
}
