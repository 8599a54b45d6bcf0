"""JWT auth of conduitd --mode pubsub (docs/protocol.md, "Tokens"; docs/configuration.md, [auth]).

Tokens are minted here with hmac/hashlib/base64 only. Every refusal is an HTTP 401 at the handshake
with a one-line reason, counted in conduit_handshake_failures_total{reason=...}; the token travels
in `?token=` or `Authorization: Bearer`; permission patterns; a token that expires while connected
(close 3000 "token expired") and a refresh that prevents it."""

import hashlib
import json
import time
import unittest
import urllib.parse


import chlib
from chlib import M_HANDSHAKE_FAILURES, Peer, b64url, jwt, now, pubsub, run, scrape, upgrade_response

SECRET = "s3cret-for-tests-only"
ALL = {"subscribe": ["*"], "publish": ["*"]}


def q(token):
    return "/?token=" + urllib.parse.quote(token, safe="")


class JwtRefusals(unittest.TestCase):
    """One server (leeway 0); each refusal checked for status, body and its metric label."""

    def setUp(self):
        self.srv = pubsub(sets={"auth.jwt_secret": SECRET}).start()

    def tearDown(self):
        self.srv.stop()

    def refused(self, path="/", headers=None):
        status, body = upgrade_response(self.srv.port, path, headers)
        return status, body

    def test_every_failure_mode_is_401_with_one_line_and_counted(self):
        t = now()
        good_claims = {"sub": "u1", "exp": t + 600, "channels": ALL}
        raw_sig = lambda h, p: b64url(__import__("hmac").new(SECRET.encode(), f"{h}.{p}".encode(),  # noqa: E731
                                                              hashlib.sha256).digest())
        hdr = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}))
        payload = b64url(json.dumps(good_claims))
        cases = [
            # (what, path, headers, reason label)
            ("no token at all", "/", None, "missing"),
            ("one part", q("abc"), None, "malformed"),
            ("two parts", q(f"{hdr}.{payload}"), None, "malformed"),
            ("four parts", q(jwt(good_claims, SECRET) + ".x"), None, "malformed"),
            ("header not base64url", q(f"!!!.{payload}.{raw_sig('!!!', payload)}"), None, "malformed"),
            ("header not JSON", q(f"{b64url('nope')}.{payload}.{raw_sig(b64url('nope'), payload)}"), None, "malformed"),
            ("header without alg", q(jwt(good_claims, SECRET, header={"typ": "JWT"})), None, "malformed"),
            ("alg not a string", q(jwt(good_claims, SECRET, header={"alg": 256})), None, "malformed"),
            ("payload not an object", q(jwt([1, 2], SECRET)), None, "malformed"),
            ("payload not JSON", q(f"{hdr}.{b64url('x')}.{raw_sig(hdr, b64url('x'))}"), None, "malformed"),
            ("alg none, no signature", q(f"{b64url(json.dumps({'alg': 'none'}))}.{payload}."), None, "bad_algorithm"),
            ("alg none, signed", q(jwt(good_claims, SECRET, alg="none")), None, "bad_algorithm"),
            ("alg HS512", q(jwt(good_claims, SECRET, alg="HS512", sign_alg=hashlib.sha512)), None, "bad_algorithm"),
            ("alg RS256", q(jwt(good_claims, SECRET, alg="RS256")), None, "bad_algorithm"),
            ("alg hs256 (case)", q(jwt(good_claims, SECRET, alg="hs256")), None, "bad_algorithm"),
            ("wrong secret", q(jwt(good_claims, SECRET + "x")), None, "bad_signature"),
            ("signature of other payload", q(f"{hdr}.{payload}.{raw_sig(hdr, b64url('{}'))}"), None, "bad_signature"),
            ("exp a string", q(jwt({"exp": str(t + 600)}, SECRET)), None, "bad_claims"),
            ("nbf a string", q(jwt({"nbf": "0"}, SECRET)), None, "bad_claims"),
            ("sub a number", q(jwt({"sub": 7, "exp": t + 600}, SECRET)), None, "bad_claims"),
            ("channels a list", q(jwt({"channels": ["a"]}, SECRET)), None, "bad_claims"),
            ("channels.subscribe a string", q(jwt({"channels": {"subscribe": "a"}}, SECRET)), None, "bad_claims"),
            ("pattern not a string", q(jwt({"channels": {"publish": [1]}}, SECRET)), None, "bad_claims"),
            ("unknown field in channels", q(jwt({"channels": {"read": ["a"]}}, SECRET)), None, "bad_claims"),
            ("expired", q(jwt({"sub": "u", "exp": t - 5}, SECRET)), None, "expired"),
            ("expired exactly now-1", q(jwt({"exp": t - 1}, SECRET)), None, "expired"),
            ("nbf in the future", q(jwt({"sub": "u", "nbf": t + 60, "exp": t + 600}, SECRET)), None, "not_yet_valid"),
            ("Bearer, wrong secret", "/", {"Authorization": "Bearer " + jwt(good_claims, "other")}, "bad_signature"),
            ("Bearer, expired", "/", {"Authorization": "Bearer " + jwt({"exp": t - 5}, SECRET)}, "expired"),
        ]
        before = scrape(self.srv.port)
        counts = {}
        failures = []
        for what, path, headers, reason in cases:
            status, body = self.refused(path, headers)
            counts[reason] = counts.get(reason, 0) + 1
            lines = body.strip("\r\n").split("\n")
            if status != 401 or len(lines) != 1 or not lines[0].startswith(f"token {reason}: "):
                failures.append(f"{what}: want 401 with one line 'token {reason}: DETAIL', got {status} {body!r}")
        after = scrape(self.srv.port)
        for reason, n in sorted(counts.items()):
            label = "auth_" + reason   # docs/protocol.md, "Connecting": reason="auth_REASON"
            if not after.has(M_HANDSHAKE_FAILURES, reason=label):
                failures.append(f"{M_HANDSHAKE_FAILURES}{{reason=\"{label}\"}} is not exported")
                continue
            got = after.get(M_HANDSHAKE_FAILURES, reason=label) - (
                before.get(M_HANDSHAKE_FAILURES, reason=label) if before.has(M_HANDSHAKE_FAILURES, reason=label) else 0)
            if got != n:
                failures.append(f"{M_HANDSHAKE_FAILURES}{{reason=\"{label}\"}} rose by {got}, want {n}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_query_and_bearer_accepted(self):
        token = jwt({"sub": "alice", "exp": now() + 600, "channels": ALL}, SECRET)

        async def go():
            a = await Peer.open(self.srv.port, path=q(token))
            self.assertIn("result", await a.subscribe("x"))
            b = await Peer.open(self.srv.port, extra_headers={"Authorization": "Bearer " + token})
            self.assertIn("result", await b.publish("x", 1))
            await a.wait_pushes(1)
            await a.close()
            await b.close()
        run(go())

    def test_permissions(self):
        token = jwt({"sub": "bob", "exp": now() + 600,
                     "channels": {"subscribe": ["news", "chat:*"], "publish": ["chat:*"]}}, SECRET)
        denied = {"code": 403, "message": "permission denied"}

        async def go():
            p = await Peer.open(self.srv.port, path=q(token))
            r = await p.subscribe("news")
            self.assertIn("result", r)
            r = await p.subscribe("chat:a:b")          # * matches any run of characters, ':' included
            self.assertIn("result", r)
            self.assertEqual(await p.subscribe("chat"), {"id": 3, "error": denied})
            self.assertEqual(await p.subscribe("newsroom"), {"id": 4, "error": denied})
            self.assertEqual(await p.subscribe("xchat:a"), {"id": 5, "error": denied})
            self.assertEqual(await p.publish("news", 1), {"id": 6, "error": denied})
            r = await p.publish("chat:a:b", "hi")
            self.assertEqual(r["id"], 7)
            self.assertIn("result", r)
            await p.wait_pushes(1)
            self.assertEqual(p.pushes[0]["data"], "hi")
            self.assertIsNone(p.closed)                # denied requests do not disconnect
            self.assertEqual(await p.unsubscribe("news"), {"id": 8, "result": {}})
            await p.close()

            # A refresh's channels permissions apply to later requests; subscriptions held are kept.
            narrow = jwt({"sub": "bob", "exp": now() + 600, "channels": {"subscribe": ["other"]}}, SECRET)
            p = await Peer.open(self.srv.port, path=q(token))
            self.assertIn("result", await p.subscribe("chat:kept"))
            self.assertEqual(await p.request("refresh", {"token": narrow}), {"id": 2, "result": {}})
            self.assertEqual(await p.subscribe("news"), {"id": 3, "error": denied})
            self.assertIn("result", await p.subscribe("other"))
            self.assertEqual(await p.publish("chat:kept", 1), {"id": 5, "error": denied})
            await p.close()

            # A token without a channels claim connects but may neither subscribe nor publish.
            bare = jwt({"sub": "carol", "exp": now() + 600}, SECRET)
            p = await Peer.open(self.srv.port, path=q(bare))
            self.assertEqual(await p.subscribe("news"), {"id": 1, "error": denied})
            self.assertEqual(await p.publish("news", 1), {"id": 2, "error": denied})
            self.assertIsNone(p.closed)
            await p.close()

        run(go())

    def test_expiry_while_connected_closes_3000(self):
        exp = now() + 3

        async def go():
            p = await Peer.open(self.srv.port, path=q(jwt({"sub": "u", "exp": exp, "channels": ALL}, SECRET)))
            self.assertIn("result", await p.subscribe("x"))
            code, reason = await p.wait_closed(timeout=20)
            self.assertEqual((code, reason), (3000, "token expired"))
            self.assertGreaterEqual(time.time(), exp, "closed before the token expired")
        run(go(), timeout=60)

    def test_refresh_before_expiry_keeps_the_connection(self):
        exp = now() + 4   # margin for a loaded machine: the refresh must arrive before it

        async def go():
            p = await Peer.open(self.srv.port, path=q(jwt({"sub": "u", "exp": exp, "channels": ALL}, SECRET)))
            self.assertIn("result", await p.subscribe("x"))
            fresh = jwt({"sub": "u", "exp": now() + 600, "channels": ALL}, SECRET)
            self.assertEqual(await p.request("refresh", {"token": fresh}), {"id": 2, "result": {}})
            # Watch the connection until well past the old expiry: no close may arrive.
            try:
                await p.wait_for(lambda: p.closed is not None, timeout=max(0.5, exp + 2 - time.time()))
            except AssertionError:
                pass
            self.assertIsNone(p.closed, f"closed after a refresh: {p.closed}")
            self.assertGreater(time.time(), exp + 1)
            self.assertIn("result", await p.publish("x", "still here"))
            # A refresh token that fails verification is a 403 reply; the old token stays in force.
            r = await p.request("refresh", {"token": jwt({"sub": "u", "exp": now() + 600}, "wrong")})
            self.assertEqual(r, {"id": 4, "error": {"code": 403, "message": "invalid token: bad_signature"}})
            r = await p.request("refresh", {"token": jwt({"sub": "u", "exp": now() - 60}, SECRET)})
            self.assertEqual(r, {"id": 5, "error": {"code": 403, "message": "invalid token: expired"}})
            # ... and one for another user is refused too.
            r = await p.request("refresh", {"token": jwt({"sub": "mallory", "exp": now() + 600, "channels": ALL}, SECRET)})
            self.assertEqual(r, {"id": 6, "error": {"code": 403, "message": "token is for another user"}})
            self.assertIsNone(p.closed)
            self.assertIn("result", await p.publish("x", "after refusals"))
            await p.close()
        run(go(), timeout=60)


class JwtLeeway(unittest.TestCase):
    def test_leeway_honoured_for_exp_and_nbf(self):
        with pubsub(sets={"auth.jwt_secret": SECRET, "auth.leeway": "10s"}) as srv:
            t = now()

            async def accepted(claims):
                p = await Peer.open(srv.port, path=q(jwt(claims, SECRET)))
                r = await p.subscribe("x")
                await p.close()
                return r

            run(accepted({"exp": t - 3, "channels": ALL}))           # expired 3 s ago, within 10 s
            run(accepted({"nbf": t + 3, "exp": t + 600, "channels": ALL}))  # valid in 3 s, within 10 s
            status, _ = upgrade_response(srv.port, q(jwt({"exp": t - 30}, SECRET)))
            self.assertEqual(status, 401)
            status, _ = upgrade_response(srv.port, q(jwt({"nbf": t + 60}, SECRET)))
            self.assertEqual(status, 401)
            m = scrape(srv.port)
            self.assertEqual(m.get(M_HANDSHAKE_FAILURES, reason="auth_expired"), 1)
            self.assertEqual(m.get(M_HANDSHAKE_FAILURES, reason="auth_not_yet_valid"), 1)

    def test_no_secret_everything_allowed_and_warned_once(self):
        for sets, want in (({"log.format": "json"}, 1), ({"log.format": "json", "auth.jwt_secret": SECRET}, 0)):
            with pubsub(sets=sets) as srv:
                if want:
                    async def go():
                        p = await Peer.open(srv.port)
                        self.assertIn("result", await p.subscribe("anything"))
                        self.assertIn("result", await p.publish("anything", 1))
                        await p.close()
                    run(go())
                # The warning is logged at start-up, before the readiness line.
                text = b"".join(srv.stdout_lines).decode("utf-8", "replace") + srv.stderr_text()
                warns = []
                for line in text.splitlines():
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if obj.get("level") == "warn" and ("auth" in line.lower() or "jwt" in line.lower()):
                        warns.append(line)
                self.assertEqual(len(warns), want, f"{sets}: auth warnings {warns}\n{text[-3000:]}")


if __name__ == "__main__":
    chlib.main()
