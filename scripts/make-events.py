#!/usr/bin/env python3
"""Writes events/**.json: real Lambda envelopes carrying real fixture bodies (tests/fixtures/).

Function URL requests use the HTTP API v2 payload (what function URLs send). They are signed with the
documented TEST secrets below, which the handler tests use too; they are not secrets of any deployment.
SQS batches are what Lambda's SQS FIFO event source hands the sync-mapper: job bodies in the queue's wire
form (`shared::domain::JobEnvelope`), message group = record, deduplication id = delivery id. The
reconciler's event is an EventBridge scheduled event (a `rate(...)` rule).

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


# The sync-mapper batches. The to-do ids are the first two a freshly seeded Basecamp simulator hands out
# (after its three seeded lists); the handler tests create those to-dos and assert the ids match.
PROJECT_ID = 2085958505
# The first two to-dos a fresh Basecamp simulator hands out (its ids are past 2^53).
TODO_A = 9007199254750007
TODO_B = 9007199254750009
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:campbridge-JobQueue-9XQ2KZ1R7T3M.fifo"
SENT_AT_MS = 1784635200000  # 2026-07-21T12:00:00Z


def todo_job(delivery, todo, event, route=ROUTE_ID):
    # Field order and shapes as serde writes shared::domain::Job::TodoChanged.
    return {"v": "1", "job": {"kind": "todo_changed", "delivery": delivery, "route": route, "project": PROJECT_ID,
                              "todo": todo, "event": event, "received_at": "2026-07-21T12:00:00Z"}}


def sqs_record(n, group, dedup, body, receive_count=1):
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    receipt = "AQEB" + base64.b64encode(hashlib.sha256(f"campbridge-receipt-{n}".encode()).digest() * 3).decode()
    return {
        "messageId": f"5fea7756-0ea4-451a-a703-a558b933e27{n}",
        "receiptHandle": receipt,
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(SENT_AT_MS + n),
            "SequenceNumber": str(18849496460467696128 + n * 65536),
            "MessageGroupId": group,
            "SenderId": "AROAIWPX5BD2BHG722MW4:campbridge-BasecampWebhookFunction-Xy12Ab34Cd56",
            "MessageDeduplicationId": dedup,
            "ApproximateFirstReceiveTimestamp": str(SENT_AT_MS + 1000 + n),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def todo_record(n, delivery, todo, event, route=ROUTE_ID):
    return sqs_record(n, f"bc-todo-{todo}", delivery, todo_job(delivery, todo, event, route))


def sqs_events():
    burst = [
        todo_record(1, "basecamp:1052473001", TODO_A, "todo_created"),
        todo_record(2, "basecamp:1052473002", TODO_A, "todo_assignment_changed"),
        todo_record(3, "basecamp:1052473003", TODO_B, "todo_created"),
    ]
    write("sync-mapper/todo-burst.json", {"Records": burst})

    # A job from a newer release's wire version (say, written before a rollback): no version of this
    # build reads it, so it is poison. It is in its own group and has been received twice before.
    poison = {"v": "2", "job": {"kind": "todo_moved", "delivery": "basecamp:1052473099", "todo": 1069490099}}
    write("sync-mapper/batch-with-poison.json", {"Records": [
        todo_record(1, "basecamp:1052473001", TODO_A, "todo_created"),
        sqs_record(2, "bc-todo-1069490099", "basecamp:1052473099", poison, receive_count=3),
        todo_record(3, "basecamp:1052473003", TODO_B, "todo_created"),
    ]})

    # The first job names a route this deployment no longer has (its jobs were queued before the config
    # changed): it fails, and so must the later job of the same to-do; the other to-do goes ahead.
    write("sync-mapper/failing-group.json", {"Records": [
        todo_record(1, "basecamp:1052473011", TODO_A, "todo_created", route="retired"),
        todo_record(2, "basecamp:1052473012", TODO_A, "todo_changed"),
        todo_record(3, "basecamp:1052473013", TODO_B, "todo_created"),
    ]})


def scheduled_event():
    # What an EventBridge rule with a schedule expression sends (source aws.events, detail {}).
    write("reconciler/scheduled.json", {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-07-21T12:05:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/campbridge-ReconcilerFunctionSchedule-1A2B3C4D5E6F"],
        "detail": {},
    })


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

    sqs_events()
    scheduled_event()


if __name__ == "__main__":
    main()
