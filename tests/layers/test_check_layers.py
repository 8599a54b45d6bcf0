#!/usr/bin/env python3
"""scripts/check-layers: passes on the real tree, and a wrong include (or a
signal call in the library) injected into a copy of the tree fails it, and
fails the CMake build of a library before anything compiles, with a message
naming the file, the include and the rule.

    test_check_layers.py SOURCE_DIR CMAKE_COMMAND
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CMAKE = sys.argv[2] if len(sys.argv) > 2 else "cmake"
CHECKER = os.path.join("scripts", "check-layers")


def run_checker(root):
    return subprocess.run([sys.executable, os.path.join(root, CHECKER), root], capture_output=True, text=True,
                          timeout=60)


class TreeCopy:
    """A copy of the parts of the tree the checker and the CMake configure read."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="conduit-layers-")
        for d in ("src", "include", "apps", "bench", "scripts", "cmake", "examples"):
            shutil.copytree(os.path.join(SOURCE, d), os.path.join(self.dir, d),
                            ignore=shutil.ignore_patterns("node_modules", "results"))
        for f in ("CMakeLists.txt",):
            shutil.copy(os.path.join(SOURCE, f), self.dir)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def inject(self, rel, line):
        """Adds LINE at the top of REL (creating it); returns its line number (1)."""
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        old = ""
        if os.path.exists(path):
            with open(path) as f:
                old = f.read()
        with open(path, "w") as f:
            f.write(line + "\n" + old)


def a_file(folder):
    """The first .cpp of a folder of the real tree (so the test follows renames)."""
    names = sorted(n for n in os.listdir(os.path.join(SOURCE, folder)) if n.endswith(".cpp"))
    assert names, f"no .cpp in {folder}"
    return f"{folder}/{names[0]}"


class CheckLayers(unittest.TestCase):
    def test_real_tree_passes(self):
        r = run_checker(SOURCE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")

    def assert_rejected(self, rel, line, rule_words):
        with TreeCopy() as t:
            t.inject(rel, line)
            r = run_checker(t.dir)
        self.assertEqual(r.returncode, 1, f"{rel}: {line!r} was accepted\n{r.stderr}")
        self.assertIn(f"layer violation: {rel}:1:", r.stderr)
        self.assertIn(rule_words, r.stderr)
        self.assertEqual(r.stderr.count("layer violation:"), 1, r.stderr)

    def test_wire_must_not_include_asio_beast_or_sockets(self):
        wire = a_file("src/wire")
        for inc in ("#include <boost/asio.hpp>", "#include <boost/asio/ip/tcp.hpp>",
                    "#include <boost/beast/http.hpp>", "#include <sys/socket.h>", "#include <netinet/in.h>",
                    "#include <arpa/inet.h>", "#include <sys/epoll.h>", "#include <netdb.h>"):
            with self.subTest(inc=inc):
                self.assert_rejected(wire, inc, "src/wire is RFC 6455 without I/O")

    def test_wire_must_not_include_other_layers(self):
        self.assert_rejected(a_file("src/wire"), '#include "net/event_loop.hpp"', "src/wire is RFC 6455 without I/O")

    def test_net_must_not_know_server_client_pubsub_or_load(self):
        net = a_file("src/net")
        for inc in ('#include "server/connection.hpp"', '#include "client/url.hpp"',
                    '#include "pubsub/channel.hpp"', '#include "load/report.hpp"'):
            with self.subTest(inc=inc):
                self.assert_rejected(net, inc, "src/net is the event loop")

    def test_server_must_not_include_pubsub(self):
        self.assert_rejected(a_file("src/server"), '#include "pubsub/channel.hpp"', "must not include pub/sub")

    def test_apps_use_the_public_api_only(self):
        self.assert_rejected("apps/conduitd/main.cpp", '#include "ops/config.hpp"', "public API only")
        self.assert_rejected("apps/conduitd/main.cpp", '#include <wire/frame.hpp>', "public API only")
        self.assert_rejected("bench/loadgen_main.cpp", '#include "server/connection.hpp"', "public API only")

    def test_redis_must_not_know_server_client_pubsub_or_load(self):
        redis = a_file("src/redis")
        for inc in ('#include "server/connection.hpp"', '#include "client/url.hpp"',
                    '#include "pubsub/channel.hpp"', '#include "load/report.hpp"'):
            with self.subTest(inc=inc):
                self.assert_rejected(redis, inc, "src/redis is the Redis client")

    def test_only_pubsub_includes_redis(self):
        for rel in (a_file("src/net"), a_file("src/server"), a_file("src/client"), a_file("src/ops"),
                    a_file("src/load")):
            with self.subTest(rel=rel):
                self.assert_rejected(rel, '#include "redis/client.hpp"', "only src/pubsub may include src/redis")
        self.assert_rejected("apps/conduitd/main.cpp", '#include "redis/client.hpp"', "public API only")

    def test_library_must_not_install_signal_handlers(self):
        self.assert_rejected(a_file("src/server"), "static void f() { ::signal(SIGPIPE, SIG_IGN); }",
                             "must not change process-wide signal handling")

    def test_allowed_edges_pass(self):
        with TreeCopy() as t:
            t.inject(a_file("src/net"), '#include "ops/log.hpp"')       # net may log
            t.inject(a_file("src/server"), '#include "net/event_loop.hpp"')
            t.inject("apps/conduit/main.cpp", '#include "load/report.hpp"')  # the CLI may use the load generator
            t.inject(a_file("src/net"), "#include <sys/socket.h>")      # sockets belong in net
            t.inject(a_file("src/pubsub"), '#include "redis/client.hpp"')  # the Redis backplane
            t.inject(a_file("src/redis"), '#include "ops/log.hpp"')     # the Redis client logs
            r = run_checker(t.dir)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_wrong_include_fails_the_build_before_compiling(self):
        with TreeCopy() as t:
            wire = a_file("src/wire")
            t.inject(wire, "#include <boost/asio.hpp>")
            build = os.path.join(t.dir, "build")
            c = subprocess.run([CMAKE, "-S", t.dir, "-B", build, "-G", "Ninja", "-DCONDUIT_BUILD_TESTS=OFF",
                                "-DCONDUIT_BUILD_BENCH=OFF", "-DCONDUIT_BUILD_FUZZ=OFF",
                                "-DCONDUIT_BUILD_EXAMPLES=OFF"],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
            b = subprocess.run([CMAKE, "--build", build, "--target", "conduit_wire"], capture_output=True,
                               text=True, timeout=300)
            out = b.stdout + b.stderr
        self.assertNotEqual(b.returncode, 0, out)
        self.assertIn(f"layer violation: {wire}:1: includes <boost/asio.hpp>", out)
        self.assertNotIn("Building CXX", out, "a library compiled although the layer check failed")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
