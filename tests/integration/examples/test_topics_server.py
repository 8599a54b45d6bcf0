"""examples/topics_server, driven by Python websockets and plain HTTP.

Starts the example on a kernel-chosen port (argument 0), reads its readiness
line, and stops it by PID. Checks what the example's header promises: a
path names a topic, a client's messages reach every subscriber of its topic
and no other, POST /publish/NAME publishes over HTTP, "clock" ticks from a
thread of the example's own, an unknown topic is refused with 404.

    /usr/bin/python3 test_topics_server.py --example PATH [unittest args...]
"""

import asyncio
import http.client
import re
import subprocess
import sys
import unittest

import websockets

EXAMPLE = None
TIMEOUT = 10.0


class TopicsServer(unittest.TestCase):
    def setUp(self):
        self.proc = subprocess.Popen([EXAMPLE, "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        self.assertIsNotNone(m, f"no readiness line, got {line!r}")
        self.port = int(m.group(1))

    def tearDown(self):
        self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.proc.stdout.close()

    def post(self, path, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        conn.request("POST", path, body=body)
        resp = conn.getresponse()
        out = (resp.status, resp.read().decode())
        conn.close()
        return out

    def test_topics(self):
        async def run():
            url = f"ws://127.0.0.1:{self.port}"
            async with websockets.connect(url + "/news") as a, websockets.connect(url + "/news") as b, \
                    websockets.connect(url + "/chat") as c:
                await a.send("hello news")
                for ws in (a, b):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), "hello news")
                status, body = await asyncio.get_running_loop().run_in_executor(
                    None, self.post, "/publish/news", "from http")
                self.assertEqual((status, body), (200, "2 subscribers\n"))
                for ws in (a, b):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), "from http")
                status, _ = await asyncio.get_running_loop().run_in_executor(None, self.post, "/publish/chat", "c1")
                self.assertEqual(status, 200)
                # The chat subscriber got nothing of news: its first message is its own topic's.
                self.assertEqual(await asyncio.wait_for(c.recv(), TIMEOUT), "c1")
            async with websockets.connect(url + "/clock") as clock:
                tick = await asyncio.wait_for(clock.recv(), TIMEOUT)
                self.assertRegex(tick, r"^\d+$")
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
                async with websockets.connect(url + "/nope"):
                    pass
            self.assertEqual(refused.exception.status_code, 404)
            status, _ = await asyncio.get_running_loop().run_in_executor(None, self.post, "/publish/nope", "x")
            self.assertEqual(status, 404)

        asyncio.run(run())


if __name__ == "__main__":
    if "--example" in sys.argv:
        i = sys.argv.index("--example")
        EXAMPLE = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    if not EXAMPLE:
        sys.exit("usage: test_topics_server.py --example PATH")
    unittest.main()
