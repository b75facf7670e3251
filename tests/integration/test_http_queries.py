"""Timeline, event and entity routes over HTTP, with a real worker projecting."""

from __future__ import annotations

import signal
import subprocess
from typing import Any

import httpx
import msgspec
import pytest
from litestar.serialization import encode_json

from projections.entry import Entry
from services.http.timelines import TimelineResponse
from services.queries import TimelineRef

pytestmark = pytest.mark.usefixtures("worker")

SOURCE = "urn:test"


def event(
    ident: str, kind: str, subject: str, occurred: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": SOURCE, "type": kind,
            "subject": subject, "occurred": occurred, "data": data}


def ref(ident: str, name: str) -> dict[str, str]:
    return {"id": ident, "name": name, "kind": "org"}


STORY = [
    event("mou", "mou.signed", "lgai", "2023-12?",
          {"parties": [ref("lgai", "LG AI Research"), ref("jax", "JAX")], "topics": ["ai", "bio"]}),
    event("contract", "contract.concluded", "lgai", "2024-02",
          {"parties": [ref("lgai", "LG AI Research"), ref("jax", "JAX")],
           "value": {"amount": 1000000, "currency": "USD"}, "follows": "mou"}),
    event("visit-pl", "site.visited", "lg", "2023-07?",
          {"visitor": ref("koo", "Koo"), "host": ref("lg", "LG"),
           "place": {"country": "PL", "city": "Wroclaw"}, "topics": ["cleantech"]}),
    event("visit-us", "site.visited", "lg", "2023-08-14/2023-08-18",
          {"visitor": ref("koo", "Koo"), "host": ref("lg", "LG"),
           "place": {"country": "US", "city": "New York"}}),
    event("award", "award.received", "lgai", "2023-11",
          {"recipient": ref("lgai", "LG AI Research"), "award": "top 5", "rank": 5, "of": 163,
           "place": {"country": "US", "city": "New York"}}),
]


def publish(http: httpx.Client, events: list[dict[str, Any]]) -> str:
    response = http.post("/v1/events", json=events)
    assert response.status_code == 200, response.text
    return str(response.json()["position"])


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["entries"]]


@pytest.fixture
def story(http: httpx.Client) -> str:
    return publish(http, STORY)


def test_min_position_waits_for_the_projection(http: httpx.Client, story: str) -> None:
    response = http.get("/v1/timelines/entity/lgai", params={"min_position": story})
    assert ids(response) == ["award", "mou", "contract"]
    body = response.json()
    assert body["timeline"] == {"kind": "entity", "key": "lgai"}
    assert body["next_cursor"] is None
    mou = body["entries"][1]
    assert mou["headline"] == "LG AI Research and JAX signed an MOU"
    assert (mou["occurred_start"], mou["occurred_end"]) == ("2023-12-01", "2023-12-31")
    assert (mou["precision"], mou["qualifier"], mou["status"], mou["version"]) == (
        "month", "?", "active", 1)
    assert {e["id"] for e in mou["entities"]} == {"lgai", "jax"}


def test_every_timeline_kind(http: httpx.Client, story: str) -> None:
    wait = {"min_position": story}
    assert ids(http.get("/v1/timelines/pair/jax/lgai", params=wait)) == ["mou", "contract"]
    assert ids(http.get("/v1/timelines/pair/lgai/jax", params=wait)) == ["mou", "contract"]
    assert ids(http.get("/v1/timelines/place/US", params=wait)) == ["visit-us", "award"]
    assert ids(http.get("/v1/timelines/place/US", params={**wait, "city": "new york"})) == [
        "visit-us", "award"]
    assert ids(http.get("/v1/timelines/place/PL", params={**wait, "city": "Paris"})) == []
    assert ids(http.get("/v1/timelines/topic/ai", params=wait)) == ["mou"]
    assert ids(http.get("/v1/timelines/all", params=wait)) == [
        "visit-pl", "visit-us", "award", "mou", "contract"]
    assert ids(http.get("/v1/timelines/entity/koo", params=wait)) == ["visit-pl", "visit-us"]


def test_filters_order_and_cursor(http: httpx.Client, story: str) -> None:
    wait = {"min_position": story}
    assert ids(http.get("/v1/timelines/all", params={**wait, "from": "2023-08-16",
                                                     "to": "2023-11"})) == ["visit-us", "award"]
    assert ids(http.get("/v1/timelines/all", params=[*wait.items(), ("type", "mou.signed"),
                                                    ("type", "site.visited")])) == [
        "visit-pl", "visit-us", "mou"]
    assert ids(http.get("/v1/timelines/entity/lgai", params={**wait, "with": "jax"})) == [
        "mou", "contract"]
    assert ids(http.get("/v1/timelines/all", params={**wait, "order": "desc"}))[0] == "contract"
    seen, cursor = [], None
    while True:
        params = {**wait, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = http.get("/v1/timelines/all", params=params).json()
        seen += [e["id"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["visit-pl", "visit-us", "award", "mou", "contract"]


def test_bad_parameters_are_400_naming_the_field(http: httpx.Client) -> None:
    for params, field in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                          ({"from": "2023-13"}, "from"), ({"order": "up"}, "order"),
                          ({"cursor": "!!"}, "cursor"), ({"min_position": "x"}, "min_position"),
                          ({"include_retracted": "maybe"}, "include_retracted"),
                          ({"type": "mou.signed|site.visited"}, "type"),
                          ({"type": "Mou signed"}, "type"),
                          ({"from": "2024", "to": "2023-12-31"}, "to")):  # was an empty 200
        response = http.get("/v1/timelines/all", params=params)
        assert response.status_code == 400, params
        assert field in {e["path"] for e in response.json()["errors"]}
    assert http.get("/v1/timelines/entity/NOT_AN_ID").status_code == 400
    # the entity summary too: a 404 said "no such entity" of what cannot be one
    summary = http.get("/v1/entities/NOT_AN_ID")
    assert summary.status_code == 400, summary.text
    assert summary.json()["errors"] == [
        {"path": "path.0", "message": "'NOT_AN_ID' is not an entity id"}]
    assert http.get("/v1/timelines/place/us").status_code == 400
    same = http.get("/v1/timelines/all", params={"from": "2023-07-15", "to": "2023-07"})
    assert same.status_code == 200, same.text  # the same month: the 15th to its end


def test_a_parameter_given_twice_is_400_naming_it(http: httpx.Client) -> None:
    """`with=a&with=b` took `a` alone and answered another question than the one asked."""
    response = http.get("/v1/timelines/all?with=org-1&with=org-2&limit=5&limit=6")
    assert response.status_code == 400, response.text
    assert {e["path"] for e in response.json()["errors"]} == {"limit", "with"}
    two_types = http.get("/v1/timelines/all?type=mou.signed&type=site.visited")
    assert two_types.status_code == 200, two_types.text
    # every other /v1 route too: /v1/events took the second source, /v1/entities
    # the second limit and the second prefix
    for path, field in (("/v1/events?source=a&source=b&id=x", "source"),
                        ("/v1/entities?prefix=l&prefix=j", "prefix"),
                        ("/v1/entities?limit=1&limit=2", "limit")):
        response = http.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["errors"] == [
            {"path": field, "message": "given more than once; only type may repeat"}]


def test_an_unknown_parameter_is_400_naming_it(http: httpx.Client) -> None:
    """A typo in a filter was ignored: `form=` for `from=` and `limt=` answered with
    the whole timeline, and `/v1/audit/log` took any extra parameter."""
    for path, field in (("/v1/timelines/entity/lg?form=2023-07&to=2023-09", "form"),
                        ("/v1/timelines/all?limt=2", "limt"),
                        ("/v1/timelines/topic/energy?city=seoul", "city"),
                        ("/v1/entities?prefix=l&q=x", "q"),
                        ("/v1/events?source=a&id=x&version=2", "version"),
                        ("/v1/audit/log?partition=0&x=1", "x"),
                        ("/v1/live?entity=lg&keepalive=1&topics=a", "topics")):
        response = http.get(path)
        assert response.status_code == 400, (path, response.text)
        [error] = response.json()["errors"]
        assert error["path"] == field
        assert error["message"].startswith("not a parameter of this route (it takes: ")
    both = http.get("/v1/timelines/all?limt=2&with=org-1&with=org-2")
    assert {e["path"] for e in both.json()["errors"]} == {"limt", "with"}
    # what the route documents still passes, city on a place timeline among them
    assert http.get("/v1/timelines/place/KR?city=seoul&limit=1").status_code == 200
    wait = http.post("/v1/events?wait=1", json=[])
    assert (wait.status_code, [e["path"] for e in wait.json()["errors"]]) == (400, ["wait"])


@pytest.mark.parametrize(("path", "params", "headers", "field"), [
    ("/v1/timelines/all", {"as_of": "0001-01-01T00:00:00+01:00"}, {}, "as_of"),
    ("/v1/timelines/all", {"as_of": "9999-12-31T23:59:59-01:00"}, {}, "as_of"),
    ("/v1/events", {"source": "urn:x", "id": "y", "as_of": "0001-01-01T00:00:00+01:00"}, {},
     "as_of"),
    ("/v1/timelines/all", {}, {"Accept": "text/csv;q=inf"}, "Accept"),
    ("/v1/entities", {"limit": "abc"}, {}, "limit"),
    ("/v1/audit/log", {"partition": "\u00b2"}, {}, "partition"),
], ids=["as_of-year-0", "as_of-year-10000", "event-as_of", "accept-q-inf", "entities-limit",
        "superscript-partition"])
def test_edge_inputs_are_400_naming_the_field_not_500(
    http: httpx.Client, path: str, params: dict[str, str], headers: dict[str, str], field: str,
) -> None:
    response = http.get(path, params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert field in {e.get("path") for e in response.json()["errors"]}


def test_an_entry_amended_between_two_pages_is_not_repeated(http: httpx.Client) -> None:
    pact = {"parties": [ref("pg", "PG"), ref("jax", "JAX")]}
    pos = publish(http, [event(f"m{n}", "mou.signed", "pg", f"2023-0{n}", pact)
                         for n in (1, 2, 3)])
    first = http.get("/v1/timelines/entity/pg", params={"limit": 2, "min_position": pos})
    assert ids(first) == ["m1", "m2"]
    # corrected (same date): its member's tail changes, a -> c, and sorts after the cursor
    pos = publish(http, [event("fix-m2", "event.corrected", "pg", "2024-01-01",
                               {"target": "m2", "reason": "other parties",
                                "data": {"parties": [ref("pg", "PG"), ref("acme", "ACME")]}})])
    second = http.get("/v1/timelines/entity/pg", params={
        "limit": 2, "cursor": first.json()["next_cursor"], "min_position": pos})
    assert ids(second) == ["m3"]


def test_min_position_not_reached_is_503_with_retry_after(
    http: httpx.Client, worker: subprocess.Popen[bytes]
) -> None:
    worker.send_signal(signal.SIGSTOP)  # appended, never projected while it is stopped
    try:
        position = publish(http, STORY[:1])
        response = http.get("/v1/timelines/all", params={"min_position": position})
    finally:
        worker.send_signal(signal.SIGCONT)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "not-yet-projected"
    assert ids(http.get("/v1/timelines/all", params={"min_position": position})) == ["mou"]


def test_a_min_position_that_can_never_be_reached_is_400(http: httpx.Client, story: str) -> None:
    partition, head = story.split(",")[0].split("-")  # the log was empty: the story's end
    for token, complaint in (("42-1", "partition 42 does not exist"), ("٣-5", "position token"),
                             (" 3-5", "position token"), ("3_0-5", "position token"),
                             ("0-999999", "position 0-999999 is not in this log"),
                             (f"{partition}-{int(head) + 1}",
                              f"ends at sequence {head} (")):
        response = http.get("/v1/timelines/all", params={"min_position": token})
        assert response.status_code == 400, token
        [error] = response.json()["errors"]
        assert error["path"] == "min_position" and complaint in error["message"], token


def test_correction_moves_the_date_and_retraction_hides(http: httpx.Client, story: str) -> None:
    fix = event("fix", "event.corrected", "lgai", "2024-03-01",
                {"target": "mou", "reason": "the MOU was signed in October",
                 "occurred": "2023-10-05"})
    pos = publish(http, [fix])
    assert ids(http.get("/v1/timelines/pair/jax/lgai", params={"min_position": pos})) == [
        "mou", "contract"]
    assert ids(http.get("/v1/timelines/entity/lgai", params={"min_position": pos})) == [
        "mou", "award", "contract"]
    view = http.get("/v1/events", params={"source": SOURCE, "id": "mou"}).json()
    assert (view["entry"]["occurred"], view["entry"]["version"], view["entry"]["status"]) == (
        "2023-10-05", 2, "corrected")
    assert [v["id"] for v in view["history"]] == ["mou", "fix"]
    assert view["history"][1]["reason"] == "the MOU was signed in October"
    pull = event("pull", "event.retracted", "lgai", "2024-03-02",
                 {"target": "award", "reason": "never happened"})
    pos = publish(http, [pull])
    assert ids(http.get("/v1/timelines/entity/lgai", params={"min_position": pos})) == [
        "mou", "contract"]
    shown = http.get("/v1/timelines/entity/lgai", params={"include_retracted": "true"}).json()
    assert [(e["id"], e["status"]) for e in shown["entries"]] == [
        ("mou", "corrected"), ("award", "retracted"), ("contract", "active")]


def test_event_lookup_needs_both_parameters_and_404s(http: httpx.Client, story: str) -> None:
    assert http.get("/v1/events", params={"source": SOURCE}).status_code == 400
    assert http.get("/v1/events", params={"id": "mou"}).status_code == 400
    assert http.get("/v1/events", params={"source": SOURCE, "id": "nope"}).status_code == 404
    http.get("/v1/timelines/all", params={"min_position": story})
    found = http.get("/v1/events", params={"source": SOURCE, "id": "contract"}).json()
    assert found["entry"]["data"]["follows"] == "mou"
    assert [v["type"] for v in found["history"]] == ["contract.concluded"]


def test_entity_summary(http: httpx.Client, story: str) -> None:
    http.get("/v1/timelines/all", params={"min_position": story})
    summary = http.get("/v1/entities/lgai").json()
    assert summary["name"] == "LG AI Research" and summary["kinds"] == ["org"]
    assert summary["events"] == 3
    assert summary["counts_by_type"] == {"award.received": 1, "mou.signed": 1,
                                         "contract.concluded": 1}
    assert (summary["first_occurred"], summary["last_occurred"]) == ("2023-11", "2024-02")
    assert summary["counterparts"][0] == {"id": "jax", "name": "JAX", "events": 2}
    assert summary["places"] == [{"country": "US", "events": 1}]
    assert http.get("/v1/entities/nobody").status_code == 404


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_openapi_document_lists_the_routes(http: httpx.Client) -> None:
    paths = http.get("/schema/openapi.json").json()["paths"]
    for path in ("/v1/events", "/v1/timelines/entity/{ident}", "/v1/timelines/all",
                 "/v1/entities/{ident}", "/healthz", "/readyz"):
        assert path in paths


def test_a_page_is_the_timeline_response_encoded(http: httpx.Client, story: str) -> None:
    """The route passes the stored documents through: byte for byte what encoding
    a `TimelineResponse` of the decoded entries answers, with every kind of entry
    (corrected, retracted, superseded as of an instant) and either cursor."""
    fix = event("fix", "event.corrected", "lgai", "2024-03-01",
                {"target": "mou", "reason": "October", "occurred": "2023-10-05"})
    fixed = publish(http, [fix])
    http.get("/v1/timelines/all", params={"min_position": fixed})
    view = http.get("/v1/events", params={"source": SOURCE, "id": "fix"}).json()
    before_fix = view["history"][0]["recordedtime"]
    pos = publish(http, [event("pull", "event.retracted", "lgai", "2024-03-02",
                               {"target": "award", "reason": "never happened"})])
    for path, params in (
        ("entity/lgai", {"min_position": pos, "include_retracted": "true"}),
        ("entity/lgai", {"as_of": before_fix, "order": "desc"}),
        ("all", {"limit": 2}), ("all", {"limit": 2, "order": "desc", "from": "2023-09"}),
        ("place/PL", {"city": "Paris"}),
    ):
        response = http.get(f"/v1/timelines/{path}", params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        entries = [msgspec.convert(e, Entry) for e in body["entries"]]
        expected = TimelineResponse(TimelineRef(**body["timeline"]), entries, body["next_cursor"])
        assert response.content == encode_json(expected), (path, params)
        if "as_of" in params:  # the superseded copy of the MOU, as first recorded
            assert ("mou", 1) in {(e.id, e.version) for e in entries}


def test_a_method_a_route_lacks_is_405_naming_the_ones_it_has(http: httpx.Client) -> None:
    response = http.post("/metrics")
    assert response.status_code == 405, response.text
    assert response.json()["error"] == "method-not-allowed"
    assert "GET" in {m.strip() for m in response.headers["allow"].split(",")}


@pytest.mark.parametrize("path", [
    "/healthz", "/readyz", "/v1/timelines/entity/lgai", "/v1/timelines/entity/lgai?format=ics",
    "/v1/timelines/entity/Not%20An%20Id", "/v1/entities?prefix=lg", "/", "/schema/openapi.json",
])
def test_head_answers_as_get_would_without_the_body(
    http: httpx.Client, story: str, path: str
) -> None:
    """Each was a 405: an uptime check's `curl -I` saw the service down."""
    http.get("/v1/timelines/entity/lgai", params={"min_position": story})  # all projected
    got, head = http.get(path), http.head(path)
    assert head.status_code == got.status_code
    assert head.content == b""
    for header in ("content-type", "content-length"):
        assert head.headers.get(header) == got.headers.get(header), header


def test_head_of_the_live_stream_ends_at_its_headers(http: httpx.Client) -> None:
    head = http.head("/v1/live", timeout=10)  # a stream: GET would run until the client left
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/event-stream")
