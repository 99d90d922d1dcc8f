"""The HTTP and WebSocket interfaces of several scales (DESIGN.md, "Several scales"):
`/api/scales`, the per-scale paths and their 404, the 0.1 paths' 400 with several scales,
`/api/health`'s 0.2 shape, `scale=` filters, and `/ws?scale=` on `/ws` and `--ws` listeners."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

import balanca.http.live
from tests.base import ServiceTestCase, fetch
from tests.test_api import ApiCase, closed_port
from tests.test_scales import wait_until
from tests.wsclient import connect, handshake

THREE = ("--scale", "a=simulator", "--scale", "b=simulator:protocol=ad", "--scale", "c=simulator")


class Opening(Protocol):
    """Sends a WebSocket opening handshake and keeps the answer's head."""

    def __init__(self, path: str) -> None:
        self.path, self.received = path, b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(handshake(self.path.encode(), b"127.0.0.1"))  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and not self.done.called:
            self.done.callback(self.received)
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Any) -> None:
        if not self.done.called:
            self.done.callback(self.received)


@defer.inlineCallbacks
def opening_answer(port: int, path: str) -> Any:
    """The head of the answer to a WebSocket opening handshake for `path`."""
    opening = Opening(path)
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), opening)
    answer = yield opening.done
    return answer


class ScalesApi(ApiCase):
    @defer.inlineCallbacks
    def get(self, path: str) -> Any:
        response = yield fetch(self.url(path))
        return response

    @defer.inlineCallbacks
    def post(self, path: str, body: Any = None) -> Any:
        response = yield fetch(self.url(path), b"POST", json.dumps(body or {}).encode())
        return response

    @defer.inlineCallbacks
    def until_live(self, *ids: str) -> Any:
        def live() -> Any:
            return all(self.service.parts.scales[i].hub.is_live() for i in ids)

        yield wait_until(live)

    @defer.inlineCallbacks
    def test_api_scales_lists_every_scale_in_order_with_its_commands_and_reading(
        self,
    ) -> defer.Generator:
        yield self.start(*THREE, "--scale", "d=serial:/dev/balanca-missing:protocol=prix")
        yield self.until_live("a", "b", "c")
        body = (yield self.get("/api/scales")).json()
        self.assertEqual([s["id"] for s in body["scales"]], ["a", "b", "c", "d"])
        a, b, _, d = body["scales"]
        self.assertEqual(
            set(a), {"id", "protocol", "source", "state", "link", "reason", "code", "age",
                     "commands", "reading", "stale_after"},
        )  # fmt: skip
        self.assertEqual((a["protocol"], a["source"], a["state"]), ("toledo", "simulator", "live"))
        self.assertEqual(a["commands"], ["tare", "zero", "clear-tare"])
        self.assertEqual((b["protocol"], b["reading"]["scale"]), ("ad", "b"))
        self.assertEqual(b["reading"]["source"], "simulator")
        self.assertEqual(
            (d["state"], d["code"], d["reading"]), ("disconnected", "device_not_found", None)
        )
        self.assertEqual(d["commands"], [])  # Prix has no command on its wire
        same = (yield self.get("/api/scales/")).json()
        self.assertEqual([s["id"] for s in same["scales"]], ["a", "b", "c", "d"])

    @defer.inlineCallbacks
    def test_per_scale_paths_act_on_their_scale_and_unknown_ids_are_404(
        self,
    ) -> defer.Generator:
        yield self.start(*THREE, "--record", "all")
        yield self.until_live("a", "b", "c")
        yield wait_until(lambda: self.service.parts.store.state == "ok")
        weight = yield self.get("/api/scales/b/weight")
        self.assertEqual(
            (weight.code, weight.json()["scale"], weight.json()["unit"]), (200, "b", "kg")
        )
        health = yield self.get("/api/scales/c/health")
        self.assertEqual((health.code, health.json()["scale"]["scale"]), (200, "c"))
        cleared = yield self.post("/api/scales/b/clear-tare")
        self.assertEqual((cleared.code, cleared.json()["code"]), (200, "tare_cleared"))
        yield self.until_stable_load("/api/scales/a/weight")
        weighed = yield self.post("/api/scales/a/weighings", {"reference": "T-1"})
        self.assertEqual((weighed.code, weighed.json()["scale"]), (201, "a"), weighed.body)
        for path, method in (
            ("/api/scales/zz/weight", b"GET"),
            ("/api/scales/zz/tare", b"POST"),
            ("/api/scales/a/nothing", b"GET"),
            ("/api/scales/A/weight", b"GET"),
        ):
            response = yield fetch(self.url(path), method, b"{}" if method == b"POST" else None)
            self.assertEqual((response.code, response.json()["code"]), (404, "not_found"), path)
        listed = (yield self.get("/api/weighings?scale=a")).json()["weighings"]
        self.assertEqual([w["reference"] for w in listed], ["T-1"])
        self.assertEqual((yield self.get("/api/weighings?scale=b")).json()["weighings"], [])
        self.assertEqual(len((yield self.get("/api/scales/a/weighings")).json()["weighings"]), 1)
        yield wait_until(lambda: self.service.parts.store.rows_written >= 6)
        rows = (yield self.get("/api/readings?scale=b&limit=50")).json()["readings"]
        self.assertTrue(rows)
        self.assertEqual({r["scale"] for r in rows}, {"b"})
        every = (yield self.get("/api/readings?limit=200")).json()["readings"]
        self.assertEqual({r["scale"] for r in every}, {"a", "b", "c"})
        for path in ("/api/readings?scale=zz", "/api/weighings?scale=zz"):
            response = yield self.get(path)
            self.assertEqual(response.code, 400, path)
            self.assertIn("a, b, c", response.json()["detail"])

    @defer.inlineCallbacks
    def test_0_1_paths_with_several_scales_answer_400_naming_the_ids_and_the_path(
        self,
    ) -> defer.Generator:
        yield self.start(*THREE)
        for path, method in (
            ("/api/weight", b"GET"),
            ("/api/tare", b"POST"),
            ("/api/zero", b"POST"),
            ("/api/clear-tare", b"POST"),
            ("/api/weighings", b"POST"),
        ):
            response = yield fetch(self.url(path), method, b"{}" if method == b"POST" else None)
            body = response.json()
            self.assertEqual((response.code, body["code"]), (400, "scale_required"), path)
            self.assertIn("(a, b, c)", body["detail"])
            self.assertIn(f"/api/scales/ID/{path.removeprefix('/api/')}", body["detail"])
        yield wait_until(lambda: self.service.parts.store.state == "ok")
        self.assertEqual((yield self.get("/api/weighings")).code, 200)  # the list is of all

    @defer.inlineCallbacks
    def test_a_lone_scale_keeps_the_0_1_paths_and_health_fields(self) -> defer.Generator:
        yield self.start("--scale", "simulator")
        yield self.until_live("default")
        yield wait_until(lambda: self.service.parts.store.state == "ok")
        self.assertEqual((yield self.get("/api/weight")).json()["scale"], "default")
        self.assertEqual((yield self.get("/api/scales/default/weight")).code, 200)
        health = (yield self.get("/api/health")).json()
        self.assertEqual((health["status"], health["scale"]["scale"]), ("ok", "default"))
        self.assertEqual(health["database"]["backlog"], health["db"]["backlog"])
        self.assertEqual([s["id"] for s in health["scales"]], ["default"])

    @defer.inlineCallbacks
    def test_health_covers_every_scale_and_is_503_while_one_is_disconnected(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "a=simulator", "--scale", f"b=tcp:127.0.0.1:{closed_port()}")
        yield self.until_live("a")
        yield wait_until(lambda: self.service.parts.scales["b"].hub.state == "disconnected")
        yield wait_until(lambda: self.service.parts.store.state == "ok")
        response = yield self.get("/api/health")
        body = response.json()
        self.assertEqual(response.code, 503)
        self.assertEqual(
            [(s["id"], s["state"], s["link"], s["code"]) for s in body["scales"]],
            [("a", "live", "connected", "live"), ("b", "disconnected", "disconnected", "connection_refused")],
        )  # fmt: skip
        self.assertEqual(set(body["scales"][0]), {"id", "state", "link", "reason", "code", "age"})
        self.assertEqual((body["db"]["state"], body["db"]["code"]), ("ok", "ok"))
        self.assertIsInstance(body["db"]["backlog"], int)
        self.assertEqual(body["records"], "ok")
        self.assertEqual(body["mqtt"], {"state": "off", "outbox": 0, "oldest": None})
        self.assertEqual((body["status"], body["clients"]), ("degraded", 0))
        self.assertNotIn("scale", body)  # 0.1's field is a lone scale's
        one = yield self.get("/api/scales/a/health")
        self.assertEqual(one.code, 200)
        scrape = (yield self.get("/metrics")).body.decode()
        self.assertIn('balanca_scale_connected{scale="a"} 1.0', scrape)
        self.assertIn('balanca_scale_connected{scale="b"} 0.0', scrape)
        self.assertIn('balanca_scale_state{scale="b",state="disconnected"} 1.0', scrape)
        route = 'balanca_http_requests_total{code="200",path="/api/scales/ID/health"} 1.0'
        self.assertIn(route, scrape)  # counted by route, not by id


class ScalesWebSocket(ServiceTestCase):
    def ws(self, path: str, index: int = 0) -> str:
        return self.url(path, index=index).replace("http", "ws", 1)

    @defer.inlineCallbacks
    def check_following(self, index: int, path: str) -> defer.Generator:
        everything = yield connect(self.ws(path, index))
        some = yield connect(self.ws(f"{path}?scale=c&scale=a", index))
        for client in (everything, some):
            self.addCleanup(client.transport.loseConnection)
        yield wait_until(lambda: len(some.messages) >= 4)
        first = [(m["type"], m["scale"]) for m in some.messages[:4]]
        self.assertEqual(
            first, [("status", "c"), ("reading", "c"), ("status", "a"), ("reading", "a")]
        )
        yield wait_until(lambda: len(some.readings()) >= 30 and len(everything.readings()) >= 45)
        self.assertEqual({m["scale"] for m in some.messages}, {"a", "c"})
        self.assertEqual({m["scale"] for m in everything.messages}, {"a", "b", "c"})
        for scale_id in ("a", "c"):
            seqs = [m["seq"] for m in some.readings() if m["scale"] == scale_id]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), scale_id)

    @defer.inlineCallbacks
    def test_ws_carries_every_scale_and_scale_queries_only_those(self) -> defer.Generator:
        yield self.start(*THREE)
        yield wait_until(lambda: all(p.hub.is_live() for p in self.service.parts.scales.values()))
        yield self.check_following(0, "/ws")

    @defer.inlineCallbacks
    def test_a_ws_listener_follows_scales_the_same_way(self) -> defer.Generator:
        yield self.start(*THREE, "--ws", "tcp:0:interface=127.0.0.1")
        yield wait_until(lambda: all(p.hub.is_live() for p in self.service.parts.scales.values()))
        yield self.check_following(1, "/")

    @defer.inlineCallbacks
    def test_an_unknown_scale_refuses_the_handshake_with_404(self) -> defer.Generator:
        yield self.start(*THREE, "--ws", "tcp:0:interface=127.0.0.1")
        for index, path in ((0, "/ws?scale=a&scale=zz"), (1, "/?scale=zz"), (0, "/ws?scale=A")):
            answer = yield opening_answer(self.port(index), path)
            self.assertTrue(answer.startswith(b"HTTP/1.1 404 "), (index, path, answer))
        self.assertEqual(len(self.service.parts.live.clients), 0)

    @defer.inlineCallbacks
    def test_each_message_is_framed_once_for_all_the_followers_of_its_scale(
        self,
    ) -> defer.Generator:
        yield self.start(*THREE)
        parts, live = self.service.parts, self.service.parts.live
        clients = []
        for _ in range(3):
            clients.append((yield connect(self.ws("/ws?scale=b"))))
            self.addCleanup(clients[-1].transport.loseConnection)
        framed = [0]
        original = balanca.http.live.frame

        def counting(payload: bytes) -> bytes:
            framed[0] += 1
            return original(payload)

        self.patch(balanca.http.live, "frame", counting)
        published = sum(p.hub.readings for p in parts.scales.values())
        yield wait_until(lambda: all(len(c.readings()) >= 20 for c in clients))
        published = sum(p.hub.readings for p in parts.scales.values()) - published
        self.assertLessEqual(framed[0], published + 3)  # + changes of state, if any
        self.assertEqual([len(live.followers[s]) for s in ("a", "b", "c")], [0, 3, 0])
