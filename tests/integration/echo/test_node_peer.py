"""conduitd --mode echo driven by Node ws (tests/node_modules/ws) through node_peer.js."""

import unittest

import conduitd
from conduitd import Conduitd, run_node


class NodePeer(unittest.TestCase):
    def test_echo_text_binary_fragmented_ping_close(self):
        with Conduitd(mode="echo") as server:
            self.assertIn("ok echo", run_node("node_peer.js", server.url, "echo"))

    def test_oversize_is_1009(self):
        with Conduitd(mode="echo") as server:
            self.assertIn("ok oversize", run_node("node_peer.js", server.url, "oversize"))

    def test_1mib_with_raised_limit(self):
        with Conduitd(mode="echo", sets={"limits.max_message_bytes": 2 * 1024 * 1024,
                                         "limits.send_queue_bytes": 8 * 1024 * 1024}) as server:
            self.assertIn("ok large", run_node("node_peer.js", server.url, "large"))


if __name__ == "__main__":
    conduitd.main()
