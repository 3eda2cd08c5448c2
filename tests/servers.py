"""Real servers for the tests, each on 127.0.0.1 and a free port, stopped on exit.

PostgreSQL is Debian's (`apt-get install postgresql`, done by .ci/run); MLflow and Ray come from
the virtual environment that runs the tests.
"""

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
POSTGRES_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
POSTGRES_BIN = Path(POSTGRES_BIN[-1]) if POSTGRES_BIN else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, limit: float = 120.0) -> None:
    """Until `url` answers 200; fails at once if `process` exits first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} never answered")


class MlflowServer:
    """`mlflow server` over a backend store, artifacts proxied into `artifacts`; restartable."""

    def __init__(self, backend_uri: str, artifacts: Path, log: Path, workers: int = 1) -> None:
        self.backend_uri, self.artifacts, self.log = backend_uri, artifacts, log
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "MlflowServer":
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [str(BIN / "mlflow"), "server", "--backend-store-uri", self.backend_uri,
                 "--artifacts-destination", str(self.artifacts), "--serve-artifacts",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
                cwd=self.artifacts.parent, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for(f"{self.url}/health", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class TeamServer(MlflowServer):
    """`mlflow server --app-name basic-auth`, as docs/team-server.md sets it up: MLflow's own
    logins, READ for every user by default; the admin's password made here and given by the
    environment (it is in no file), users in a sqlite file beside the server's log."""

    def __init__(self, backend_uri: str, artifacts: Path, log: Path) -> None:
        super().__init__(backend_uri, artifacts, log)
        self.admin = ("admin", secrets.token_urlsafe(16))
        self.secret_key = secrets.token_hex(16)

    def start(self) -> "TeamServer":
        config = self.log.parent / "auth.ini"
        config.write_text(f"[mlflow]\ndefault_permission = READ\n"
                          f"database_uri = sqlite:///{self.log.parent / 'auth.db'}\n"
                          f"admin_username = {self.admin[0]}\nauth_cache_ttl_seconds = 60\n")
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config),
               "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin[1],
               "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [str(BIN / "mlflow"), "server", "--app-name", "basic-auth",
                 "--backend-store-uri", self.backend_uri,
                 "--artifacts-destination", str(self.artifacts), "--serve-artifacts",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                cwd=self.artifacts.parent, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env)
        wait_for(f"{self.url}/health", self.process)
        return self

    def create_user(self, name: str) -> dict:
        """A new user, as the admin makes one; returns the client's environment for it."""
        import base64
        import json

        password = secrets.token_urlsafe(16)
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create", method="POST",
            data=json.dumps({"username": name, "password": password}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Basic " +
                     base64.b64encode(":".join(self.admin).encode()).decode()})
        urllib.request.urlopen(request, timeout=30).close()
        return {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}


@contextmanager
def team_server(backend_uri: str, directory: Path):
    server = TeamServer(backend_uri, directory / "artifacts", directory / "server.log")
    server.artifacts.mkdir(parents=True, exist_ok=True)
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def mlflow_server(backend_uri: str, directory: Path, workers: int = 1):
    server = MlflowServer(backend_uri, directory / "artifacts", directory / "server.log", workers)
    server.artifacts.mkdir(parents=True, exist_ok=True)
    try:
        yield server.start()
    finally:
        server.stop()


def _as_postgres_user(command: list) -> list:
    """PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres():
    """A throwaway PostgreSQL cluster with a database `mlflow`; yields its SQLAlchemy URI."""
    directory = Path(tempfile.mkdtemp(prefix="pg-"))  # outside pytest's root-only tmp tree
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data, port = directory / "data", free_port()

    def run(*command: str) -> None:
        subprocess.run(_as_postgres_user(list(command)), check=True, capture_output=True,
                       text=True)

    try:
        run(str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust",
            "-E", "UTF8")
        run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-l", str(directory / "postgres.log"),
            "-w", "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {directory}", "start")
        run(str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow",
            "mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_postgres_user([str(POSTGRES_BIN / "pg_ctl"), "-D", str(data),
                                              "-m", "immediate", "-w", "stop"]),
                           capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def _processes_mentioning(text: str) -> list:
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if text.encode() in Path(cmdline).read_bytes():
                pids.append(int(cmdline.split("/")[2]))
        except OSError:
            pass
    return pids


@contextmanager
def ray_head(num_cpus: int = 2, num_gpus: int = 0):
    """`ray start --head --block` on 127.0.0.1 (logical GPUs may be declared on a CPU box);
    yields what a client needs in its environment: the address and the token. Only this head's
    processes are stopped after (not `ray stop`, which stops every Ray of the machine). Ray's
    socket paths must stay short: a directory straight under /tmp."""
    directory = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port = free_port()
    token = Path(directory) / "auth_token"  # Ray's token authentication, kept out of ~/.ray
    token.write_text(secrets.token_hex(32))
    client_env = {"RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token",
                  "RAY_AUTH_TOKEN_PATH": str(token)}
    log = open(Path(directory) / "head.log", "w")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}",
         "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000",
         f"--temp-dir={directory}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **client_env, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in Path(log.name).read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.3)
        yield client_env
    finally:
        # a throwaway head: nothing to save, so no graceful shutdown (that takes over 30 s)
        for pid in [head.pid, *_processes_mentioning(directory)]:
            try:
                os.killpg(pid, signal.SIGKILL) if pid == head.pid else os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        head.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


class FlakyProxy:
    """A reverse proxy on 127.0.0.1 in front of `upstream`: it forwards, or answers 503 while
    `unavailable` is set; a request it cannot forward (the server stopped) has its connection
    closed without an answer, as a stopped server's would be. `on_request(method, path)` is
    called before each request is handled (a test stops the server there)."""

    def __init__(self, upstream: str, on_request=None) -> None:
        import http.server
        import threading

        self.upstream = upstream.split("://", 1)[1]
        self.on_request = on_request or (lambda method, path: None)
        self.unavailable = threading.Event()
        self.answered_503 = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.on_request(self.command, self.path)
                if proxy.unavailable.is_set():
                    proxy.answered_503 += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                connection = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "connection")}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                except OSError:
                    self.close_connection = True  # as a stopped server: no answer at all
                    return
                finally:
                    connection.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
