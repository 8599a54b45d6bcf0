"""conduitd --mode pubsub with Node ws as the client (tests/integration/channels/node_peer.js):
subscribe, live pushes, re-subscribe with `since` after a drop (recovered, in order, then live),
wrong epoch and an offset ahead (recovered false)."""

import unittest

import chlib
from chlib import pubsub
from opslib import run_node


class NodePeer(unittest.TestCase):
    def test_subscribe_publish_recover(self):
        with pubsub() as srv:
            out = run_node("../channels/node_peer.js", f"ws://127.0.0.1:{srv.port}/", timeout=90)
            self.assertEqual(out.strip().splitlines()[-1], "ok", out)


if __name__ == "__main__":
    chlib.main()
