#!/usr/bin/python3
"""docs/cli.md and the `--help` texts agree: every command reachable from
`conduit --help` has a `## conduit ...` heading (or is listed in its parent's
section), every `--flag` and positional argument in a command's help appears
on the page, and every exit status in the help's exit-code list is in the
page's table.

Usage: cli_docs_test.py PATH_TO_CONDUIT PATH_TO_CLI_MD
"""
import re
import subprocess
import sys


def help_text(conduit, words):
    run = subprocess.run([conduit, *words, "--help"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, f"{' '.join(words)} --help exited {run.returncode}: {run.stderr}"
    return run.stdout


def section(text, title):
    """Lines under `title:` up to the next blank line."""
    lines = text.splitlines()
    if f"{title}:" not in lines:
        return []
    start = lines.index(f"{title}:") + 1
    out = []
    for line in lines[start:]:
        if not line.strip():
            break
        out.append(line)
    return out


def main():
    conduit, page_path = sys.argv[1], sys.argv[2]
    page = open(page_path, encoding="utf-8").read()
    headings = set(re.findall(r"^## (conduit[^\n]*)$", page, flags=re.M))
    problems = []
    pending = [[]]
    commands = 0
    while pending:
        words = pending.pop()
        commands += 1
        text = help_text(conduit, words)
        name = " ".join(["conduit", *words])
        if len(words) == 1 and name not in headings:
            problems.append(f"no '## {name}' heading")
        for line in section(text, "Options"):
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line.split("  ")[1] if line.startswith("  ") else line):
                if flag == "--help":
                    continue
                if f"`{flag}" not in page:
                    problems.append(f"{name}: {flag} is not on the page")
        for line in section(text, "Positionals"):
            positional = line.split()[0]
            if f"`{positional}`" not in page:
                problems.append(f"{name}: positional {positional} is not on the page")
        for line in section(text, "Exit codes"):
            status = line.split()[0]
            if not re.search(rf"^\| {status} \|", page, flags=re.M):
                problems.append(f"{name}: exit status {status} is not in the page's table")
        for line in section(text, "Subcommands"):
            pending.append([*words, line.split()[0]])
    for p in problems:
        print("FAIL", p)
    print(f"{commands} commands checked, {len(problems)} problems")
    sys.exit(1 if problems or commands < 4 else 0)


if __name__ == "__main__":
    main()
