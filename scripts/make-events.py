#!/usr/bin/env python3
"""Writes events/**.json: real Lambda envelopes carrying real fixture bodies (tests/fixtures/).

Function URL requests use the HTTP API v2 payload (what function URLs send). They are signed with the
documented TEST secrets below, which the handler tests use too; they are not secrets of any deployment.

    python3 scripts/make-events.py     # rewrite events/ from the fixtures
"""
import base64, hashlib, hmac, json, pathlib, re

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = ROOT / "events"

# Documented test secrets (events/README.md). Route "web" is shared::testkit::route(): project 2085958505, Jira WEB.
WEBHOOK_KEY = b"campbridge-test-webhook-key"
JIRA_SECRET = b"campbridge-test-jira-secret"
BITBUCKET_SECRET = b"campbridge-test-bitbucket-secret"
ROUTE_ID = "web"


def route_token(route):
    mac = hmac.new(WEBHOOK_KEY, b"basecamp-route:" + route.encode(), hashlib.sha256).hexdigest()
    return mac[:32]


def sign(secret, body):
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def url_request(path, body, headers):
    headers = {k.lower(): v for k, v in {"content-type": "application/json", **headers}.items()}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "campbridgetestfnurl",
            "domainName": "campbridgetestfnurl.lambda-url.us-east-1.on.aws",
            "domainPrefix": "campbridgetestfnurl",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent", "test")},
            "requestId": "c0ffee00-0000-4000-8000-000000000001",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Jul/2026:12:00:00 +0000",
            "timeEpoch": 1784635200000,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def write(name, event):
    path = OUT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(event, indent=2) + "\n")


def jira_web_body():
    # The fixture's project is renamed to the test route's Jira project WEB (as shared::ingest's tests do).
    text = jira_body().decode()
    key = json.loads(text)["issue"]["key"]
    project = key.split("-")[0]
    return text.replace(key, "WEB-7").replace(f'"{project}"', '"WEB"').encode()


def jira_body():
    return (FIX / "jira" / "cloud-webhook-issue-updated-status.json").read_bytes()


def main():
    bc = (FIX / "basecamp" / "webhook-event-todo-completed.json").read_bytes()
    ua = {"user-agent": "Basecamp3 Webhook"}
    write("basecamp-webhook/todo-completed.json", url_request(f"/basecamp/{route_token(ROUTE_ID)}", bc, ua))
    write("basecamp-webhook/wrong-token.json", url_request("/basecamp/" + "0" * 32, bc, ua))
    # Genuine and on the route's URL, but a message in another project: acknowledged and ignored.
    msg = (FIX / "basecamp" / "webhook-event-message-created.json").read_bytes()
    write("basecamp-webhook/message-created.json", url_request(f"/basecamp/{route_token(ROUTE_ID)}", msg, ua))

    jb = jira_web_body()
    jh = {"x-atlassian-webhook-identifier": "1a2b3c4d-0000-4000-8000-00000000000a"}
    write("jira-webhook/issue-updated.json", url_request("/", jb, {**jh, "x-hub-signature": sign(JIRA_SECRET, jb)}))
    write("jira-webhook/bad-signature.json", url_request("/", jb, {**jh, "x-hub-signature": sign(b"not-the-secret", jb)}))
    # The fixture as captured: its project is not routed, so it is acknowledged and ignored.
    ju = jira_body()
    juh = {"x-atlassian-webhook-identifier": "1a2b3c4d-0000-4000-8000-00000000000b"}
    write("jira-webhook/issue-updated-unrouted.json", url_request("/", ju, {**juh, "x-hub-signature": sign(JIRA_SECRET, ju)}))

    pr = (FIX / "bitbucket" / "cloud-webhook-pullrequest-created.json").read_bytes()
    bh = {"x-event-key": "pullrequest:created", "x-request-uuid": "2f4e1c9a-1111-4a2b-9c3d-000000000001"}
    write("bitbucket-webhook/pullrequest-created.json", url_request("/", pr, {**bh, "x-hub-signature": sign(BITBUCKET_SECRET, pr)}))
    write("bitbucket-webhook/bad-signature.json", url_request("/", pr + b" ", {**bh, "x-hub-signature": sign(BITBUCKET_SECRET, pr)}))
    # A push (byte-exact raw body of the signature test vector, re-signed with the test secret): ignored.
    push = (FIX / "bitbucket" / "cloud-webhook-repo-push.signed-raw-body.json").read_bytes()
    ph = {"x-event-key": "repo:push", "x-request-uuid": "2f4e1c9a-1111-4a2b-9c3d-000000000002"}
    write("bitbucket-webhook/repo-push.json", url_request("/", push, {**ph, "x-hub-signature": sign(BITBUCKET_SECRET, push)}))


if __name__ == "__main__":
    main()
