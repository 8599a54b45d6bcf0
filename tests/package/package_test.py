#!/usr/bin/python3
"""The installed package, used the way a user's project uses it.

1. `cmake --install BUILD --prefix TMP` and the files a user needs are there
   (headers, libraries, binaries, docs, CMake package, pkg-config file), and
   nothing of the build or source tree leaks into the CMake package.
2. examples/ configured as a separate CMake project against TMP only
   (find_package(conduit CONFIG) → conduit::conduit) builds every example.
3. One example compiled and linked with nothing but
   `pkg-config --cflags --libs conduit`.
4. The programs built both ways run: the echo and chat examples answer the
   installed `conduit` CLI, the coroutine client talks to the echo server,
   and each server exits 0 on SIGTERM.

Usage: package_test.py BUILD_DIR SOURCE_DIR CXX_COMPILER
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

STEP = 60  # seconds for one run of a built program; compiling gets longer below


def run(cmd, timeout, env=None, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


class Server:
    """A built example server on a free port, stopped by SIGTERM."""

    def __init__(self, exe):
        self.proc = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # bounded: the process prints it or exits (EOF)
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)$", line.strip())
        if not m:
            self.proc.kill()
            raise AssertionError(f"{exe}: no 'listening on' line, got {line!r}; stderr: {self.proc.stderr.read()}")
        self.url = f"ws://127.0.0.1:{m.group(1)}/"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit after SIGTERM")
        assert status == 0, f"server exited {status} after SIGTERM; stderr: {self.proc.stderr.read()}"


def check_echo(server_exe, conduit_cli, coro_client):
    server = Server(server_exe)
    try:
        res = run([conduit_cli, "send", server.url, "hello package", "--wait", "1"], STEP)
        assert res.stdout == "hello package\n", res.stdout
        if coro_client:
            res = run([coro_client, server.url, "3"], STEP)
            assert res.stdout == "message 1\nmessage 2\nmessage 3\n", res.stdout
    finally:
        server.stop()


def check_chat(server_exe, conduit_cli):
    server = Server(server_exe)
    try:
        res = run([conduit_cli, "send", server.url, "hi all", "--wait", "2"], STEP)
        lines = res.stdout.splitlines()
        assert len(lines) == 2 and re.fullmatch(r"\* user \d+ joined", lines[0]) and \
            re.fullmatch(r"<\d+> hi all", lines[1]), res.stdout
    finally:
        server.stop()


def main():
    build_dir, source_dir, cxx = sys.argv[1:4]
    prefix = tempfile.mkdtemp(prefix="conduit-package-")
    try:
        # 1. install
        run(["cmake", "--install", build_dir, "--prefix", prefix], 300)
        for path in ["include/conduit/server.hpp", "include/conduit/client.hpp", "include/conduit/client_coro.hpp",
                     "include/conduit/signals.hpp", "include/conduit/version.hpp",
                     "bin/conduitd", "bin/conduit", "share/doc/conduit/README.md",
                     "share/doc/conduit/cli.md", "lib/cmake/conduit/conduitConfig.cmake",
                     "lib/cmake/conduit/conduitConfigVersion.cmake", "lib/pkgconfig/conduit.pc"]:
            assert os.path.exists(os.path.join(prefix, path)), f"{path} not installed"
        # Every library conduit.pc links is installed: static by default, shared with BUILD_SHARED_LIBS=ON.
        pc_libs = re.search(r"^Libs: (.*)$", open(os.path.join(prefix, "lib/pkgconfig/conduit.pc")).read(), re.M)
        libs = re.findall(r"-l(\S+)", pc_libs.group(1))
        assert "conduit_wire" in libs, f"conduit.pc links {libs}"
        for lib in libs:
            assert any(os.path.exists(os.path.join(prefix, f"lib/lib{lib}.{ext}")) for ext in ("a", "so")), \
                f"lib{lib} (in conduit.pc) not installed"
        assert not os.path.exists(os.path.join(prefix, "include/conduit/load.hpp")), "load.hpp is not in the package"
        for name in os.listdir(os.path.join(prefix, "lib/cmake/conduit")):
            text = open(os.path.join(prefix, "lib/cmake/conduit", name)).read()
            for tree in (os.path.realpath(source_dir), os.path.realpath(build_dir)):
                assert tree not in text, f"{name} refers to {tree}: the package must not need the build tree"
        # --version names the commit the binaries were built from: HEAD, or one
        # of its ancestors when commits were made after the build.
        head = subprocess.run(["git", "-C", source_dir, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=STEP)
        if head.returncode == 0:
            for exe in ("conduit", "conduitd"):
                version = run([os.path.join(build_dir, exe), "--version"], STEP).stdout
                m = re.search(r"\(git ([0-9a-f]{12})(-dirty)?\)", version)
                assert m, f"{exe} --version names no commit although built from git: {version!r}"
                ancestor = subprocess.run(["git", "-C", source_dir, "merge-base", "--is-ancestor", m.group(1),
                                           head.stdout.strip()], capture_output=True, timeout=STEP)
                assert ancestor.returncode == 0, f"{exe} --version: {m.group(1)} is not HEAD or an ancestor of it"
        installed_cli = os.path.join(prefix, "bin/conduit")
        version = run([installed_cli, "--version"], STEP).stdout
        assert re.fullmatch(r"conduit \d+\.\d+\.\d+( \(git [0-9a-f]+(-dirty)?\))?\n", version), version
        version = run([os.path.join(prefix, "bin/conduitd"), "--version"], STEP).stdout
        assert re.fullmatch(r"conduitd \d+\.\d+\.\d+( \(git [0-9a-f]+(-dirty)?\))?\n", version), version

        # 2. examples/ as its own project against the prefix only
        examples_build = os.path.join(prefix, "examples-build")
        configure = ["cmake", "-S", os.path.join(source_dir, "examples"), "-B", examples_build, "-G", "Ninja",
                     "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCMAKE_CXX_COMPILER={cxx}"]
        if shutil.which("ccache"):
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        run(configure, 300)
        run(["cmake", "--build", examples_build, "-j2"], 1200)
        sources = sorted(f[:-4] for f in os.listdir(os.path.join(source_dir, "examples")) if f.endswith(".cpp"))
        for name in sources:
            assert os.access(os.path.join(examples_build, name), os.X_OK), f"example {name} not built"

        # 3. pkg-config alone
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib/pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "conduit"], STEP, env=env).stdout.split()
        echo_pc = os.path.join(prefix, "echo_server_pkgconfig")
        # The rpath only matters for a shared build (pkg-config gives no run path).
        run([cxx, "-O1", "-o", echo_pc, os.path.join(source_dir, "examples/echo_server.cpp"), *flags,
             f"-Wl,-rpath,{os.path.join(prefix, 'lib')}"], 600)

        # 4. run them
        check_echo(os.path.join(examples_build, "echo_server"), installed_cli,
                   os.path.join(examples_build, "coro_client"))
        check_echo(echo_pc, installed_cli, None)
        check_chat(os.path.join(examples_build, "chat_server"), installed_cli)
        print(f"package ok: installed, {len(sources)} examples built with find_package, one with pkg-config, run")
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    main()
