"""The official Basecamp SDK (PyPI `basecamp-sdk`, pinned in requirements.txt) as a real client of the
Basecamp simulator, for every operation campbridge uses; every response body the simulator sends is
validated against the response schema of its operation in the SDK's OpenAPI document (npm
`@37signals/basecamp`, `dist/generated/openapi-stripped.json`, pinned in scripts/basecamp-sdk.sh).

Run by `make test-basecamp-sdk` (scripts/basecamp-sdk.sh run), which installs both and starts this with
the simulator binary's path and the OpenAPI document's path in the environment. The simulator is started
here on 127.0.0.1 with its real rate limit, and stopped (by its PID) when the tests end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import unittest
from typing import Any, Callable

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from importlib.metadata import version

from basecamp import Client, Config
from basecamp.errors import NotFoundError, RateLimitError, ValidationError

TWO_53 = 2**53
USER_AGENT = "campbridge-sdk-check (tests@campbridge.invalid)"
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "basecamp")

# Where the SDK's OpenAPI document and Basecamp's own documentation disagree, the documentation wins
# (reference/basecamp-api.md §0: the SDK "does not outrank the docs"). Each exception names its source.
DOCUMENTED_STATUS = {
    # todos.md, "Reposition a to-do": "This endpoint will return `204 No Content`" (the OpenAPI says 200).
    ("PUT", "/todos/{todoId}/position.json", 204),
}
# The SDK's conformance suite (error-mapping.json, "400 bare field-map body"): the webhooks controller answers
# 400 with an unwrapped `{field: [messages]}` body; the OpenAPI's generic 400 schema wants `{"error": …}`.
BARE_FIELD_ERRORS = {("POST", "/buckets/{bucketId}/webhooks.json", 400), ("PUT", "/webhooks/{webhookId}", 400)}


def documented_nulls() -> set[str]:
    """Property names the documentation's example payloads (tests/fixtures/basecamp) show as `null`."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if inner is None:
                    names.add(key)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for name in os.listdir(FIXTURES):
        if name.endswith(".json"):
            with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
                walk(json.load(handle))
    return names


class OpenApi:
    """Looks up the response schema for (method, path, status) and validates bodies against it."""

    def __init__(self, path: str) -> None:
        with open(path, encoding="utf-8") as handle:
            self.document = json.load(handle)
        self.nullable = documented_nulls()
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:basecamp-openapi", resource)
        self.routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.document["paths"]:
            pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", r"[^/]+", re.escape(template.removesuffix(".json"))) + "$"
            self.routes.append((re.compile(pattern), template))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        bare = path.removesuffix(".json")
        # The most specific template wins (`/todos/{id}` over `/{a}/{b}`): fewest placeholders.
        matches = [t for pattern, t in self.routes if pattern.match(bare)]
        matches.sort(key=lambda t: t.count("{"))
        for template in matches:
            operation = self.document["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
        return None

    def errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no operation in the OpenAPI document"]
        template, operation = found
        if (method, template, status) in DOCUMENTED_STATUS:
            return [] if body is None else [f"{method} {template} {status}: a body where the docs have none"]
        if (method, template, status) in BARE_FIELD_ERRORS:
            ok = isinstance(body, dict) and body and all(
                isinstance(v, list) and all(isinstance(m, str) for m in v) for v in body.values())
            return [] if ok else [f"{method} {template} {status}: not a bare field-error map: {body}"]
        responses = operation.get("responses", {})
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        if response is None:
            return [f"{method} {template}: status {status} is not a documented response"]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return [] if body is None else [f"{method} {template} {status}: a body where the document has none"]
        wrapped = {"$ref": "urn:basecamp-openapi#/" + "/".join(["paths", escape(template), method.lower(),
                                                                   "responses", str(status), "content",
                                                                   "application~1json", "schema"])}
        members = self.union_members(schema)
        if members:
            # A union (GetTodolistOrGroup): the document wraps each member in a one-key envelope
            # (`{"todolist": …}`); on the wire — todolists.md, `todolist-get.json` — the member comes bare.
            wrapped = {"anyOf": [{"$ref": "urn:basecamp-openapi" + ref} for ref in members]}
        validator = Draft202012Validator(wrapped, registry=self.registry)
        return [
            f"{method} {template} {status}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in validator.iter_errors(body)
            if not self.documented_null(e)
        ]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def union_members(self, schema: dict[str, Any]) -> list[str]:
        """The member schemas' refs when `schema` is a oneOf of one-key envelopes, else []."""
        variants = self.resolve(schema).get("oneOf", [])
        refs = []
        for variant in variants:
            props = variant.get("properties", {})
            if variant.get("required") != list(props) or len(props) != 1:
                return []
            inner = next(iter(props.values()))
            if "$ref" not in inner:
                return []
            refs.append(inner["$ref"])
        return refs

    def documented_null(self, error: Any) -> bool:
        """A `null` the OpenAPI types as a string or integer where the docs' examples show `null`."""
        return (error.validator == "type" and error.instance is None and bool(error.absolute_path)
                and error.absolute_path[-1] in self.nullable)


def escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class Simulator:
    """The simulator binary on 127.0.0.1, started for these tests and stopped by its PID."""

    def __init__(self, binary: str) -> None:
        self.process = subprocess.Popen(
            [binary, "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the simulator exited before printing its URLs")
        self.info = json.loads(line)["basecamp"]
        self.control = httpx.Client(base_url=self.info["control_url"], timeout=10.0)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.control.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class SdkAgainstSimulator(unittest.TestCase):
    sim: Simulator
    api: OpenApi
    account: Any
    seen: list[tuple[str, str, int, Any]]

    @classmethod
    def setUpClass(cls) -> None:
        cls.api = OpenApi(os.environ["BASECAMP_OPENAPI"])
        cls.sim = Simulator(os.environ["BASECAMP_SIMULATOR_BIN"])
        info = cls.sim.info
        origin = info["launchpad_url"]
        account_id = info["base_url"].rsplit("/", 1)[1]
        cls.client = Client(
            config=Config(base_url=origin, max_retries=3, base_delay=0.2),
            access_token=info["access_token"],
            user_agent=USER_AGENT,
        )
        cls.seen = []

        def capture(response: httpx.Response) -> None:
            response.read()
            body = response.json() if response.content else None
            cls.seen.append((response.request.method, response.request.url.path, response.status_code, body))

        # The SDK's own httpx client: every response it reads passes through here.
        cls.client.http._client.event_hooks["response"].append(capture)
        cls.account = cls.client.for_account(account_id)
        cls.account_prefix = f"/{account_id}"
        control = cls.sim.call("GET", "/info")
        cls.project_id = control["project_id"]
        cls.todoset_id = control["todoset_id"]
        cls.lists = control["todolists"]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()
        cls.sim.stop()

    def setUp(self) -> None:
        self.seen.clear()

    def tearDown(self) -> None:
        """Every response this test read matches its operation's schema."""
        problems = []
        for method, path, status, body in self.seen:
            if status == 429:
                continue  # the rate limit's answer; retried by the SDK
            path = path.removeprefix(self.account_prefix)
            problems.extend(self.api.errors(method, path, status, body))
        self.maxDiff = None
        self.assertEqual(problems, [], "responses that do not match the OpenAPI document")
        self.assertTrue(self.seen, "the test made requests")

    # The real rate limit (50 requests per 10 s) is on: the SDK retries GET/PUT/DELETE after a 429 by
    # itself, and a POST that is not idempotent is retried here, as a real client has to.
    def write(self, call: Callable[[], Any]) -> Any:
        for _ in range(5):
            try:
                return call()
            except RateLimitError as error:
                time.sleep(float(error.retry_after or 1))
        return call()

    def new_todo(self, list_name: str, content: str, **fields: Any) -> dict[str, Any]:
        list_id = self.lists[list_name]
        return self.write(lambda: self.account.todos.create(todolist_id=list_id, content=content, **fields))

    def assert_big_id(self, value: Any, what: str) -> None:
        self.assertIsInstance(value, int, what)
        self.assertGreater(value, TWO_53, what)
        self.assertNotEqual(int(float(value)), value, f"{what}: the simulator hands out ids an f64 cannot hold")

    def test_projects_todosets_lists_and_people(self) -> None:
        projects = self.account.projects.list()
        self.assertIn(self.project_id, [p["id"] for p in projects])
        project = self.account.projects.get(project_id=self.project_id)
        self.assertEqual(project["id"], self.project_id)
        self.assert_big_id(self.todoset_id, "to-do set id")
        dock = [d for d in project["dock"] if d["name"] == "todoset" and d["enabled"]]
        self.assertEqual([d["id"] for d in dock], [self.todoset_id])
        todoset = self.account.todosets.get(todoset_id=self.todoset_id)
        self.assertEqual(todoset["id"], self.todoset_id)
        lists = self.account.todolists.list(todoset_id=self.todoset_id)
        self.assertLessEqual(set(self.lists), {l["name"] for l in lists}, "the seeded lists (tests may add more)")
        one = self.account.todolists.get(id=self.lists["Bugs"])
        self.assertEqual(one["title"], "Bugs")
        made = self.write(lambda: self.account.todolists.create(todoset_id=self.todoset_id, name="Renamed later"))
        renamed = self.account.todolists.replace(id=made["id"], name="Renamed", description="<div>d</div>")
        self.assertEqual((renamed["name"], renamed["description"]), ("Renamed", "<div>d</div>"))
        people = self.account.people.list()
        self.assertGreaterEqual(len(people), 8)
        for person in people:
            self.assert_big_id(person["id"], f"person {person['name']}")
        on_project = self.account.people.list_for_project(project_id=self.project_id)
        self.assertEqual(len(on_project), len(people))
        me = self.account.people.my_profile()
        self.assertEqual(me["name"], "Campbridge Sync")
        self.assertEqual(self.account.people.get(person_id=me["id"])["id"], me["id"])

    def test_todo_create_get_update_complete_uncomplete_and_reposition(self) -> None:
        people = {p["name"]: p["id"] for p in self.account.people.list()}
        created = self.new_todo(
            "Sprint 1",
            "Fix login",
            description="<div>Steps <strong>here</strong></div>",
            assignee_ids=[people["Annie Bryan"]],
            due_on="2026-12-01",
        )
        todo_id = created["id"]
        self.assert_big_id(todo_id, "to-do id")
        # The merge-safe update: GET, overlay, full PUT. Everything not named survives.
        updated = self.account.todos.update(todo_id=todo_id, content="Fix login redirect")
        self.assertEqual(updated["content"], "Fix login redirect")
        fresh = self.account.todos.get(todo_id=todo_id)
        self.assertEqual(fresh["description"], "<div>Steps <strong>here</strong></div>")
        self.assertEqual([a["id"] for a in fresh["assignees"]], [people["Annie Bryan"]])
        self.assertEqual(fresh["due_on"], "2026-12-01")
        self.account.todos.complete(todo_id=todo_id)
        self.assertTrue(self.account.todos.get(todo_id=todo_id)["completed"])
        done = self.account.todos.list(todolist_id=self.lists["Sprint 1"], completed=True)
        self.assertIn(todo_id, [t["id"] for t in done])
        self.account.todos.uncomplete(todo_id=todo_id)
        self.assertFalse(self.account.todos.get(todo_id=todo_id)["completed"])
        # Reposition, then move to another list (no webhook; the parent changes).
        self.account.todos.reposition(todo_id=todo_id, position=1)
        self.account.todos.reposition(todo_id=todo_id, position=1, parent_id=self.lists["Backlog"])
        moved = self.account.todos.get(todo_id=todo_id)
        self.assertEqual(moved["parent"]["id"], self.lists["Backlog"])
        backlog = self.account.todos.list(todolist_id=self.lists["Backlog"])
        self.assertEqual(backlog[0]["id"], todo_id)
        self.assertEqual(backlog[0]["position"], 1)
        with self.assertRaises(ValidationError):
            self.account.todos.reposition(todo_id=todo_id, position=0)

    def test_rich_text_comes_back_as_basecamp_stores_it(self) -> None:
        created = self.new_todo("Bugs", "Styled", description="<p>Para <b>bold</b></p><h1>Title</h1>")
        self.assertEqual(created["description"], "Para bold<h1>Title</h1>")

    def test_comments(self) -> None:
        todo_id = self.new_todo("Bugs", "Commented")["id"]
        comment = self.write(lambda: self.account.comments.create(recording_id=todo_id, content="<div>DEV: hi</div>"))
        self.assert_big_id(comment["id"], "comment id")
        listed = self.account.comments.list(recording_id=todo_id)
        self.assertEqual([c["id"] for c in listed], [comment["id"]])
        edited = self.account.comments.update(comment_id=comment["id"], content="<div>DEV: hello</div>")
        self.assertEqual(edited["content"], "<div>DEV: hello</div>")
        self.assertEqual(self.account.comments.get(comment_id=comment["id"])["parent"]["id"], todo_id)

    def test_recordings_trash_archive_and_restore(self) -> None:
        todo_id = self.new_todo("Sprint 1", "Short-lived")["id"]
        polled = self.account.recordings.list(type="Todo", bucket=str(self.project_id), sort="updated_at",
                                              direction="desc")
        self.assertEqual(polled[0]["id"], todo_id)
        self.account.recordings.trash(recording_id=todo_id)
        self.assertEqual(self.account.todos.get(todo_id=todo_id)["status"], "trashed")
        trashed = self.account.recordings.list(type="Todo", bucket=str(self.project_id), status="trashed")
        self.assertIn(todo_id, [r["id"] for r in trashed])
        self.account.recordings.unarchive(recording_id=todo_id)
        self.account.recordings.archive(recording_id=todo_id)
        archived = self.account.todos.list(todolist_id=self.lists["Sprint 1"], status="archived")
        self.assertIn(todo_id, [t["id"] for t in archived])
        self.account.recordings.unarchive(recording_id=todo_id)
        self.assertEqual(self.account.todos.get(todo_id=todo_id)["status"], "active")

    def test_webhooks(self) -> None:
        hook = self.write(lambda: self.account.webhooks.create(
            bucket_id=self.project_id, payload_url="https://hooks.campbridge.invalid/basecamp/t",
            types=["Todo", "Todolist", "Comment"]))
        self.assert_big_id(hook["id"], "webhook id")
        listed = self.account.webhooks.list(bucket_id=self.project_id)
        self.assertIn(hook["id"], [h["id"] for h in listed])
        got = self.account.webhooks.get(webhook_id=hook["id"])
        self.assertEqual(got["types"], ["Todo", "Todolist", "Comment"])
        self.assertIn("recent_deliveries", got)
        again = self.account.webhooks.update(webhook_id=hook["id"], payload_url=hook["payload_url"],
                                             types=["Todo", "Todolist", "Comment"], active=True)
        self.assertTrue(again["active"])
        with self.assertRaises(ValidationError) as refused:
            self.account.webhooks.create(bucket_id=self.project_id, payload_url="http://plain.invalid/x",
                                         types=["Todo"])
        self.assertIn("payload_url", str(refused.exception))
        self.account.webhooks.delete(webhook_id=hook["id"])
        with self.assertRaises(NotFoundError):
            self.account.webhooks.get(webhook_id=hook["id"])

    def test_pagination_follows_link_headers(self) -> None:
        list_id = self.write(lambda: self.account.todolists.create(todoset_id=self.todoset_id, name="Paged"))["id"]
        made = [self.write(lambda n=n: self.account.todos.create(todolist_id=list_id, content=f"item {n}"))["id"]
                for n in range(20)]
        listed = self.account.todos.list(todolist_id=list_id)
        self.assertEqual([t["id"] for t in listed], made, "two pages (15 + 5) in order")
        self.assertEqual(listed.meta.total_count, 20)

    def test_a_deleted_todo_reads_as_not_found(self) -> None:
        todo_id = self.new_todo("Backlog", "Purged")["id"]
        self.account.recordings.trash(recording_id=todo_id)
        self.sim.call("POST", f"/recordings/{todo_id}/delete")
        with self.assertRaises(NotFoundError):
            self.account.todos.get(todo_id=todo_id)

    def test_a_429_is_retried_after_retry_after(self) -> None:
        self.sim.call("PUT", "/faults", {"force_429": {"retry_after": 1, "remaining": 1}})
        started = time.monotonic()
        project = self.account.projects.get(project_id=self.project_id)
        self.assertEqual(project["id"], self.project_id)
        self.assertGreaterEqual(time.monotonic() - started, 1.0, "waited Retry-After")
        self.assertEqual([s for _, _, s, _ in self.seen], [429, 200])


if __name__ == "__main__":
    print(f"basecamp-sdk {version('basecamp-sdk')}, OpenAPI {os.environ.get('BASECAMP_OPENAPI')}")
    unittest.main(verbosity=2)
