"""The chat judge against a scripted OpenAI-compatible server on 127.0.0.1 (http.server in a thread)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlhfkit.rewards.judge import ChatJudge, JudgeFailed, parse_choice, parse_score


class Scripted:
    """Replies in order: a str is returned as the message content, an int is an HTTP status,
    b"..." is a raw (non-JSON) body. Requests are recorded."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []


@pytest.fixture
def server():
    state = Scripted([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((self.path, body, self.headers.get("Authorization")))
            reply = state.replies.pop(0) if state.replies else 500
            if isinstance(reply, int):
                payload, status = b'{"error": "busy"}', reply
            elif isinstance(reply, bytes):
                payload, status = reply, 200
            else:
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(5)
    httpd.server_close()


def test_score_retries_garbage_then_parses(server):
    state, url = server
    state.replies = ["I think it is quite good", "**7**"]
    judge = ChatJudge(url + "/", "tiny-judge", max_attempts=3, api_key="k")
    assert judge("What is 2+2?", "4") == 7.0
    assert judge.stats.as_dict() == {"calls": 1, "requests": 2, "unparsable": 1, "transport_errors": 0, "failures": 0}
    path, body, auth = state.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["model"] == "tiny-judge" and body["temperature"] == 0.0
    assert "What is 2+2?" in body["messages"][1]["content"] and "1 to 10" in body["messages"][1]["content"]
    assert judge.stats.bad_replies == ["I think it is quite good"]


def test_compare_gives_up_after_max_attempts_and_counts(server):
    state, url = server
    state.replies = ["Both are fine.", "A or B", "C", "B.", "maybe A"]
    judge = ChatJudge(url, "j", max_attempts=3)
    with pytest.raises(JudgeFailed) as err:
        judge.compare("q", "one", "two")
    assert err.value.replies == ["Both are fine.", "A or B", "C"]
    assert judge.compare("q", "one", "two") == "B"  # the 4th scripted reply
    with pytest.raises(JudgeFailed):
        judge.compare("q", "one", "two")  # "maybe A" then the script is empty: 500s from the handler
    s = judge.stats
    assert (s.calls, s.unparsable, s.failures) == (3, 4, 2)  # 3 + "maybe A"
    assert s.requests == 7 and s.transport_errors == 2
    content = state.requests[0][1]["messages"][1]["content"]
    assert "[Answer A]\none" in content and "[Answer B]\ntwo" in content


def test_transport_errors_are_retried(server):
    state, url = server
    state.replies = [503, b"not json", json.dumps({"choices": []}), "Score: 10/10"]
    judge = ChatJudge(url, "j", max_attempts=4)
    # the third reply is a valid body whose *content* is a JSON string: unparsable, not a transport error
    assert judge.score("q", "r") == 10.0
    assert (judge.stats.transport_errors, judge.stats.unparsable, judge.stats.requests) == (2, 1, 4)


@pytest.mark.parametrize("reply,expected", [
    ("A", "A"), (" b ", "B"), ("Answer: A", "A"), ("**B**.", "B"), ("Response B", "B"), ("'A'", "A"),
    ("AB", None), ("A because it is longer", None), ("", None), ("The answer is A", None),
])
def test_parse_choice(reply, expected):
    assert parse_choice(reply) == expected


@pytest.mark.parametrize("reply,expected", [
    ("7", 7), ("10", 10), ("1", 1), ("Score: 8", 8), ("8/10", 8), ("9.", 9),
    ("0", None), ("11", None), ("7.5", None), ("seven", None), ("7 out of 10, decent", None),
])
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected
