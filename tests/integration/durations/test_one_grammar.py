#!/usr/bin/env python3
"""One duration grammar for conduitd's keys and the conduit CLI's flags: the same texts are accepted
and refused by both, and a refusal names the units.

    test_one_grammar.py CONDUITD CONDUIT
"""
import subprocess
import sys
import unittest

CONDUITD, CONDUIT = sys.argv[1], sys.argv[2]
ACCEPTED = ["250ms", "1.5s", "25s", "0.5m", "2h", "0s", "0.001s"]
REFUSED = ["10", "0", "1.5", "10S", "1d", "-5s", "5 s", "1.5ms", "abc", ""]


def daemon(value):
    p = subprocess.run([CONDUITD, "--set", f"heartbeat.ping_interval={value}", "--check"], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stderr


def cli(value):
    # Nothing listens on port 1: an accepted duration gets as far as connecting (exit 3, refused);
    # a refused one stops at the command line (exit 2).
    p = subprocess.run([CONDUIT, "send", "--ping-interval", value, "ws://127.0.0.1:1/", "hi"], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stderr


class OneGrammar(unittest.TestCase):
    def test_accepted_by_both(self):
        for value in ACCEPTED:
            with self.subTest(value=value):
                rc, err = daemon(value)
                self.assertEqual(rc, 0, err)
                rc, err = cli(value)
                self.assertEqual(rc, 3, err)
                self.assertNotIn("bad duration", err)

    def test_refused_by_both_naming_the_units(self):
        for value in REFUSED:
            with self.subTest(value=value):
                rc, err = daemon(value)
                self.assertEqual(rc, 2, err)
                self.assertIn("heartbeat.ping_interval", err)
                rc, err = cli(value)
                self.assertEqual(rc, 2, err)
                self.assertIn("bad duration", err)
                self.assertIn("ms, s, m or h", err)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
