"""conduitd configuration: TOML file, flags, --set; every error names the key and exits with status 2.
--print-config prints the merged configuration; --check validates without binding."""

import os
import socket
import subprocess
import tempfile
import time
import tomllib
import unittest

import conduitd
from conduitd import OP_BINARY, OP_PING, OP_TEXT, Conduitd, RawWS, run_conduitd_to_exit


class ConfigErrors(unittest.TestCase):
    def assert_config_error(self, args, must_name):
        status, out = run_conduitd_to_exit(args)
        self.assertEqual(status, 2, f"conduitd {' '.join(args)} → status {status}, output:\n{out}")
        self.assertIn(must_name, out, f"the message must name {must_name!r}; output:\n{out}")
        self.assertNotIn("listening on", out)
        return out

    def toml(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_unknown_key_via_set(self):
        self.assert_config_error(["--listen", "127.0.0.1:0", "--set", "server.no_such_key=1"], "server.no_such_key")

    def test_unknown_section_via_set(self):
        self.assert_config_error(["--listen", "127.0.0.1:0", "--set", "bogus.key=1"], "bogus.key")

    def test_bad_duration(self):
        for value in ("abc", "10parsecs", "-5s", "ms"):
            self.assert_config_error(["--listen", "127.0.0.1:0", "--set", f"heartbeat.ping_interval={value}"],
                                     "heartbeat.ping_interval")

    def test_bad_number(self):
        self.assert_config_error(["--listen", "127.0.0.1:0", "--set", "limits.max_message_bytes=lots"],
                                 "limits.max_message_bytes")

    def test_bad_mode(self):
        self.assert_config_error(["--listen", "127.0.0.1:0", "--mode", "nonsense"], "mode")

    def test_bad_listen_address(self):
        self.assert_config_error(["--listen", "not-an-address"], "listen")

    def test_unreadable_file(self):
        missing = os.path.join(tempfile.gettempdir(), "conduit-no-such-dir", "conduitd.toml")
        self.assert_config_error(["--config", missing], missing)

    def test_invalid_toml(self):
        path = self.toml("[server\nlisten = \n")
        self.assert_config_error(["--config", path], path)

    def test_unknown_key_in_file(self):
        path = self.toml('[server]\nlisten = "127.0.0.1:0"\nnot_a_key = 3\n')
        self.assert_config_error(["--config", path], "server.not_a_key")

    def test_wrong_type_in_file(self):
        path = self.toml('[limits]\nmax_message_bytes = "big"\n')
        self.assert_config_error(["--config", path, "--listen", "127.0.0.1:0"], "limits.max_message_bytes")

    def test_bad_duration_in_file(self):
        path = self.toml('[server]\nhandshake_timeout = "soon"\n')
        self.assert_config_error(["--config", path, "--listen", "127.0.0.1:0"], "server.handshake_timeout")


class StartupErrors(unittest.TestCase):
    def test_address_in_use_exits_1(self):
        # docs/errors.md "Address in use": refuses to start, names the address, exit status 1.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            status, out = run_conduitd_to_exit(["--mode", "echo", "--listen", f"127.0.0.1:{port}"])
        self.assertEqual(status, 1, out)
        self.assertIn(f"cannot bind 127.0.0.1:{port}", out)
        self.assertIn("Address already in use", out)
        self.assertNotIn("listening on", out)


class ConfigAccepted(unittest.TestCase):
    def test_config_file_is_applied(self):
        f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        f.write('[server]\nmode = "echo"\nhandshake_timeout = "2s"\n\n[limits]\nmax_message_bytes = 100\n')
        f.close()
        self.addCleanup(os.unlink, f.name)
        # --listen on top of the file; the file's limit must be in force
        with Conduitd("--config", f.name) as server, RawWS(server.port) as c:
            c.send_frame(OP_TEXT, b"a" * 100)
            self.assertEqual(c.recv_message()[1], b"a" * 100)
            c.send_frame(OP_TEXT, b"a" * 101)
            c.expect_close(1009)

    def test_set_overrides_file(self):
        f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        f.write('[limits]\nmax_message_bytes = 100\n')
        f.close()
        self.addCleanup(os.unlink, f.name)
        with Conduitd("--config", f.name, sets={"limits.max_message_bytes": 200}) as server, \
                RawWS(server.port) as c:
            c.send_frame(OP_BINARY, b"b" * 200)
            self.assertEqual(c.recv_message()[1], b"b" * 200)
            c.send_frame(OP_BINARY, b"b" * 201)
            c.expect_close(1009)

    def test_durations_in_all_units(self):
        # The effect of heartbeat.ping_interval, read on the wire: a silent client's first ping
        # comes after the interval (not much before: the sweep is coarse, so late but not early)
        # and within a generous bound. (Exact unit arithmetic is covered by the unit tests; this
        # checks the value given with --set is the one in force.)
        for value, earliest, latest in (("300ms", 0.15, 5.0), ("1s", 0.5, 6.0)):
            with self.subTest(value=value), \
                    Conduitd(mode="echo", sets={"heartbeat.ping_interval": value}) as server, \
                    RawWS(server.port) as c:
                start = time.monotonic()
                f = c.recv_frame(timeout=latest)
                waited = time.monotonic() - start
                self.assertEqual(f.opcode, OP_PING, f"ping_interval={value}: expected a ping, got {f}")
                self.assertGreaterEqual(waited, earliest, f"ping_interval={value}: first ping after {waited:.3f}s")
        # Minutes: no ping while a 1 s or 1 ms interval would have produced several.
        with Conduitd(mode="echo", sets={"heartbeat.ping_interval": "1m"}) as server, RawWS(server.port) as c:
            with self.assertRaises((TimeoutError, socket.timeout)):
                f = c.recv_frame(timeout=2.5)
                raise AssertionError(f"ping_interval=1m: unexpected frame within 2.5 s: {f}")
            c.send_frame(OP_TEXT, b"1m")
            self.assertEqual(c.recv_message()[1], b"1m")


def run_split(args, timeout=15.0):
    """Runs conduitd to exit; returns (status, stdout, stderr)."""
    p = subprocess.run([conduitd.CONDUITD] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def temp_toml(test, text):
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(text)
    f.close()
    test.addCleanup(os.unlink, f.name)
    return f.name


class Durations(unittest.TestCase):
    """One duration grammar: a number (decimals allowed) and a unit ms|s|m|h; a bare number is refused."""

    def test_bare_number_is_refused_naming_the_units(self):
        for value in ("10", "0", "1.5"):
            status, out, err = run_split(["--listen", "127.0.0.1:0", "--set", f"heartbeat.ping_interval={value}"])
            self.assertEqual(status, 2, err)
            self.assertIn("heartbeat.ping_interval", err)
            self.assertIn("unit is missing", err)
            self.assertIn("ms, s, m or h", err)

    def test_decimal_durations_are_accepted(self):
        status, out, err = run_split(["--set", "heartbeat.ping_interval=1.5s", "--set", "server.close_timeout=0.25m",
                                      "--print-config"])
        self.assertEqual(status, 0, err)
        merged = tomllib.loads(out)
        self.assertEqual(merged["heartbeat"]["ping_interval"], "1500ms")
        self.assertEqual(merged["server"]["close_timeout"], "15s")


class PrintConfig(unittest.TestCase):
    def test_default_mode_is_pubsub_with_channels_api_and_auth(self):
        status, out, err = run_split(["--set", "channels.namespaces.chat.history_size=0", "--print-config"])
        self.assertEqual(status, 0, err)
        merged = tomllib.loads(out)
        self.assertEqual(merged["server"]["mode"], "pubsub")
        self.assertEqual(merged["channels"]["history_size"], 100)
        self.assertEqual(merged["channels"]["history_ttl"], "5m")
        self.assertEqual(merged["channels"]["max_subscriptions_per_connection"], 128)
        self.assertEqual(merged["channels"]["max_channel_length"], 255)
        self.assertEqual(merged["channels"]["namespaces"], {"chat": {"history_size": 0}})
        self.assertEqual(merged["api"], {"key": "", "max_body_bytes": 65536})
        self.assertEqual(merged["auth"], {"jwt_secret": "", "jwt_secret_file": "", "leeway": "0s"})
        self.assertEqual(merged["limits"]["publish_rate"], 0)

    def test_unreadable_jwt_secret_file_stops_the_start(self):
        missing = os.path.join(tempfile.gettempdir(), "conduit-no-such-dir", "jwt.secret")
        status, out, err = run_split(["--set", f"auth.jwt_secret_file={missing}", "--check"])
        self.assertEqual(status, 2, out + err)
        self.assertIn("auth.jwt_secret_file", err)
        self.assertIn(missing, err)
        self.assertEqual(out, "")

    def test_prints_defaults_file_and_set_merged(self):
        path = temp_toml(self, '[server]\nmax_connections = 50\nmode = "relay"\n\n[limits]\nsend_queue_bytes = "64KiB"\n')
        status, out, err = run_split(["--config", path, "--set", "server.max_connections=70",
                                      "--listen", "127.0.0.1:9999", "--print-config"])
        self.assertEqual(status, 0, err)
        self.assertEqual(err, "")
        merged = tomllib.loads(out)  # valid TOML
        self.assertEqual(merged["server"]["max_connections"], 70)    # --set over the file
        self.assertEqual(merged["server"]["mode"], "relay")          # from the file
        self.assertEqual(merged["server"]["listen"], "127.0.0.1:9999")
        self.assertEqual(merged["limits"]["send_queue_bytes"], 65536)
        self.assertEqual(merged["heartbeat"]["ping_interval"], "25s")  # a default
        self.assertEqual(merged["log"]["level"], "info")
        # Fed back as a file it gives the same configuration.
        again = temp_toml(self, out)
        status, out2, err = run_split(["--config", again, "--print-config"])
        self.assertEqual(status, 0, err)
        self.assertEqual(out2, out)

    def test_every_documented_key_is_printed(self):
        status, out, err = run_split(["--print-config"])
        self.assertEqual(status, 0, err)
        merged = tomllib.loads(out)
        keys = {f"{section}.{key}" for section, table in merged.items() for key in table}
        docs = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "configuration.md")).read()
        for key in keys:
            section, leaf = key.split(".")
            start = docs.find(f"### `[{section}]`")
            self.assertGreaterEqual(start, 0, f"docs/configuration.md has no [{section}] section")
            end = docs.find("\n### ", start + 1)
            self.assertIn(f"| `{leaf}` |", docs[start:end if end > 0 else None],
                          f"{key} is printed but not documented in its section")
        self.assertIn("server.listen", keys)
        self.assertIn("log.format", keys)

    def test_an_error_still_exits_2(self):
        status, out, err = run_split(["--set", "server.threads=many", "--print-config"])
        self.assertEqual(status, 2, err)
        self.assertEqual(out, "")
        self.assertIn("server.threads", err)


class Check(unittest.TestCase):
    def test_valid_configuration_exits_0_without_binding(self):
        # The port is taken: a --check that tried to bind would fail.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            status, out, err = run_split(["--listen", f"127.0.0.1:{port}", "--check"])
        self.assertEqual(status, 0, err)
        self.assertEqual(out, "configuration ok\n")
        self.assertNotIn("listening on", out)

    def test_invalid_configuration_exits_2_naming_the_key(self):
        status, out, err = run_split(["--set", "limits.slow_consumer=maybe", "--check"])
        self.assertEqual(status, 2)
        self.assertEqual(out, "")
        self.assertIn("limits.slow_consumer", err)

    def test_unreadable_tls_files_fail_the_check(self):
        status, out, err = run_split(["--set", "tls.cert=/nonexistent/c.pem", "--set", "tls.key=/nonexistent/k.pem",
                                      "--check"])
        self.assertEqual(status, 2, err)
        self.assertIn("tls.cert", err)

    def test_unknown_key_gets_did_you_mean(self):
        status, out, err = run_split(["--set", "heartbeat.ping_intervl=5s", "--check"])
        self.assertEqual(status, 2)
        self.assertIn("heartbeat.ping_intervl: unknown key", err)
        self.assertIn("did you mean heartbeat.ping_interval?", err)
        path = temp_toml(self, '[limits]\nmax_message_size = 10\n')
        status, out, err = run_split(["--config", path, "--check"])
        self.assertEqual(status, 2)
        self.assertIn("did you mean limits.max_message_bytes?", err)


if __name__ == "__main__":
    conduitd.main()
