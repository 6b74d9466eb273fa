"""The HTTP endpoints through Starlette's TestClient (the app with its lifespan, in process): answers,
the split pair against /v1/predict, one clear 4xx line for each bad payload, auth, health and metrics."""

import base64
import json

import pytest
from lw_serve import Limits, Server, load_engine
from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def engines(run_dir):
    return {role: load_engine(run_dir, role, device="cpu") for role in ("pipeline", "sender", "receiver")}


@pytest.fixture(scope="module")
def clients(engines):
    limits = Limits(max_batch=8, max_wait_ms=2, max_queue=64, max_body_bytes=4096, max_text_chars=500)
    with TestClient(Server(engines["pipeline"], "pipeline", limits).app()) as pipeline, \
            TestClient(Server(engines["sender"], "sender", limits).app()) as sender, \
            TestClient(Server(engines["receiver"], "receiver", limits).app()) as receiver:
        yield {"pipeline": pipeline, "sender": sender, "receiver": receiver}


def test_predict_answers_with_scores_sizes_and_timings(clients, texts):
    r = clients["pipeline"].post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer_names"] == ["negative", "positive"]
    assert len(body["answers"]) == len(texts) and set(body["answers"]) <= {"negative", "positive"}
    assert body["wire"] == "int8" and body["message_bytes"] == 34
    assert body["text_bytes"] == [len(t.encode()) for t in texts]
    assert {"queue", "sender", "encoder", "adapter", "receiver"} <= set(body["timings_ms"])


def test_the_split_pair_answers_as_predict_does(clients, texts):
    encoded = clients["sender"].post("/v1/encode", json={"texts": texts})
    assert encoded.status_code == 200, encoded.text
    message = encoded.json()
    assert message["wire"] == "int8" and message["shape"] == [4, 8] and len(message["bridge"]) == 16
    assert all(len(base64.b64decode(m)) == message["message_bytes"] for m in message["messages"])
    decoded = clients["receiver"].post("/v1/decode", json=message)  # a sender's answer posts as it is
    assert decoded.status_code == 200, decoded.text
    whole = clients["pipeline"].post("/v1/predict", json={"texts": texts}).json()
    assert decoded.json()["answers"] == whole["answers"]
    for split_row, whole_row in zip(decoded.json()["scores"], whole["scores"], strict=True):
        assert split_row == pytest.approx(whole_row, abs=1e-5)


def test_each_role_serves_only_its_endpoints(clients):
    assert clients["sender"].post("/v1/decode", json={}).status_code == 404
    assert clients["receiver"].post("/v1/encode", json={"texts": ["a"]}).status_code == 404
    assert clients["receiver"].post("/v1/predict", json={"texts": ["a"]}).status_code == 404
    assert clients["sender"].get("/v1/info").json()["endpoints"] == ["encode"]
    assert clients["receiver"].get("/v1/info").json()["endpoints"] == ["decode", "read"]
    assert clients["pipeline"].get("/v1/info").json()["endpoints"] == ["decode", "encode", "predict", "read"]


def test_the_receiver_reads_the_text_itself(clients, engines, texts):
    r = clients["receiver"].post("/v1/read", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    c = engines["receiver"].bridge.config
    prefix = engines["receiver"].receiver.embed_texts([c.anchor_before + t + c.anchor_after for t in texts])
    raw = engines["receiver"].receiver.score_answers(prefix, engines["receiver"].scorer.answer_ids()).logprobs
    assert body["answers"] == [c.answers[i] for i in raw.argmax(-1).tolist()]
    assert {"queue", "embed", "receiver"} <= set(body["timings_ms"])


def _message(clients, **changes):
    message = clients["sender"].post("/v1/encode", json={"texts": ["a fine film"]}).json()
    return json.dumps(message | changes)


GOOD_B64 = base64.b64encode(bytes(34)).decode()

BAD_PREDICT = [
    ("not json", "{texts: [", "application/json", 400, "not valid JSON"),
    ("a list body", '["a"]', "application/json", 400, "must be a JSON object"),
    ("a string body", '"a"', "application/json", 400, "must be a JSON object"),
    ("NaN literal", '{"texts": NaN}', "application/json", 400, "NaN is not JSON"),
    ("no texts", "{}", "application/json", 422, "missing field 'texts'"),
    ("unknown field", '{"texts": ["a"], "text": "a"}', "application/json", 422, "unknown field 'text'"),
    ("texts a string", '{"texts": "a"}', "application/json", 422, "'texts' must be a list of strings"),
    ("empty list", '{"texts": []}', "application/json", 422, "'texts' is empty"),
    ("a number in texts", '{"texts": ["a", 3]}', "application/json", 422, "texts[1] must be a string"),
    ("null in texts", '{"texts": [null]}', "application/json", 422, "texts[0] must be a string"),
    ("blank text", '{"texts": ["   "]}', "application/json", 422, "texts[0] is blank"),
    ("huge text", json.dumps({"texts": ["x" * 600]}), "application/json", 422, "texts[0] has 600 characters; at most 500"),
    ("too many texts", json.dumps({"texts": ["a"] * 9}), "application/json", 422, "9 items; at most 8 per request"),
    ("body over the cap", json.dumps({"texts": ["a"], "padding": "x" * 5000}), "application/json", 413, "over the limit of 4096"),
    ("wrong content type", '{"texts": ["a"]}', "text/plain", 415, "'text/plain' is not accepted"),
    ("no content type", '{"texts": ["a"]}', None, 415, "content type 'none'"),
    ("bad utf-8", b'{"texts": ["\xff"]}', "application/json", 400, "not valid JSON"),
]

BAD_DECODE = [
    ("wrong fingerprint", {"bridge": "0" * 16}, 422, "bridge '0000000000000000' does not match this receiver's bridge"),
    ("wrong wire", {"wire": "int4"}, 422, "wire 'int4' does not match this receiver's wire format 'int8'"),
    ("wrong group size", {"group_size": 64}, 422, "group_size 64 does not match"),
    ("wrong shape", {"shape": [8, 4]}, 422, "shape [8, 4] does not match this receiver's message shape [4, 8]"),
    ("short message", {"messages": [base64.b64encode(bytes(33)).decode()]}, 422, "message 0 has 33 bytes"),
    ("long message", {"messages": [GOOD_B64, base64.b64encode(bytes(40)).decode()]}, 422, "message 1 has 40 bytes"),
    ("not base64", {"messages": ["***"]}, 422, "messages[0] is not valid base64"),
    ("NaN scale", {"messages": [base64.b64encode(b"\x00\x7e" + bytes(32)).decode()]}, 422, "NaN or infinite"),
    ("infinite scale", {"messages": [base64.b64encode(b"\x00\x7c" + bytes(32)).decode()]}, 422, "NaN or infinite"),
    ("no messages", {"messages": []}, 422, "'messages' is empty"),
    ("messages not a list", {"messages": GOOD_B64}, 422, "'messages' must be a list of strings"),
]


def _assert_one_line_error(response, status, fragment):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error and "\n" not in error and "Traceback" not in error


@pytest.mark.parametrize(("what", "body", "content_type", "status", "fragment"), BAD_PREDICT, ids=[b[0] for b in BAD_PREDICT])
def test_a_bad_predict_payload_gets_one_4xx_line_and_the_server_keeps_serving(clients, what, body, content_type, status,
                                                                            fragment):
    headers = {"content-type": content_type} if content_type else {}
    _assert_one_line_error(clients["pipeline"].post("/v1/predict", content=body, headers=headers), status, fragment)
    assert clients["pipeline"].post("/v1/predict", json={"texts": ["still serving"]}).status_code == 200


@pytest.mark.parametrize(("what", "changes", "status", "fragment"), BAD_DECODE, ids=[b[0] for b in BAD_DECODE])
def test_a_bad_message_gets_one_4xx_line_and_the_receiver_keeps_serving(clients, what, changes, status, fragment):
    body = _message(clients, **changes)
    _assert_one_line_error(clients["receiver"].post("/v1/decode", content=body,
                                                    headers={"content-type": "application/json"}), status, fragment)
    assert clients["receiver"].post("/v1/decode", content=_message(clients),
                                    headers={"content-type": "application/json"}).status_code == 200


def test_wrong_method_and_route_are_one_json_line(clients):
    _assert_one_line_error(clients["pipeline"].get("/v1/predict"), 405, "GET /v1/predict: Method Not Allowed")
    _assert_one_line_error(clients["pipeline"].get("/v2/nothing"), 404, "/v2/nothing: Not Found")


def test_a_bearer_token_guards_the_v1_endpoints(engines):
    with TestClient(Server(engines["pipeline"], "pipeline", Limits(), api_key="s3cret").app()) as client:
        _assert_one_line_error(client.post("/v1/predict", json={"texts": ["a"]}), 401, "missing or wrong bearer token")
        wrong = client.post("/v1/predict", json={"texts": ["a"]}, headers={"Authorization": "Bearer nope"})
        _assert_one_line_error(wrong, 401, "wrong bearer token")
        ok = client.post("/v1/predict", json={"texts": ["a"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_health_readiness_and_prometheus_metrics(clients):
    client = clients["pipeline"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post("/v1/predict", json={"texts": ["one", "two"]})
    client.post("/v1/predict", json={"texts": []})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = metrics.text.splitlines()
    assert "# TYPE lw_serve_requests_total counter" in lines
    assert any(line.startswith('lw_serve_requests_total{code="200",endpoint="predict"} ') for line in lines)
    assert any(line.startswith('lw_serve_requests_total{code="422",endpoint="predict"} ') for line in lines)
    assert "lw_serve_ready 1" in lines and "lw_serve_queue_items 0" in lines
    batches = next(float(line.split()[1]) for line in lines if line.startswith("lw_serve_batches_total "))
    assert batches >= 1


def test_the_playground_page_is_served_by_the_pipeline(clients):
    page = clients["pipeline"].get("/")
    assert page.status_code == 200 and "v1/predict" in page.text and page.headers["content-type"].startswith("text/html")
    assert clients["receiver"].get("/").status_code == 404
