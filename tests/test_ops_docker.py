"""The container deployment without a Docker engine (CI has none): the Dockerfile's steps
replayed in a temporary folder build a venv whose ENTRYPOINT and CMD serve, as a non-root user,
what its HEALTHCHECK accepts; docker-compose.yml's services agree with the image and with each
other, and their command and environment are real balanca options."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import yaml
from twisted.trial.unittest import TestCase

from balanca.tap import Options
from tests.base import skip_or_fail
from tests.test_listeners import in_namespace

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
"""The uid and gid that stand for the image's `balanca` user."""


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """The exec form (a JSON list) or the shell form, as words."""
        if self.arguments.startswith("["):
            return list(json.loads(self.arguments))
        return shlex.split(self.arguments)


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            steps.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return steps


def last(keyword: str) -> Instruction:
    return [step for step in dockerfile() if step.keyword == keyword][-1]


def dockerignored(path: Path) -> bool:
    """Whether .dockerignore leaves `path` out of the build context (its patterns are `NAME`
    at the top of the checkout, or `**/NAME` anywhere)."""
    relative = path.relative_to(ROOT).as_posix()
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        if pattern.startswith("**/"):
            if fnmatch.fnmatch(path.name, pattern.removeprefix("**/")):
                return True
        elif fnmatch.fnmatch(relative, pattern):
            return True
    return False


@dataclass
class Replay:
    """Runs a Dockerfile's steps on this machine, with the image's own paths (/src, /opt/balanca,
    /var/lib/balanca) moved under `root`; all but the `useradd` step."""

    root: Path
    env: dict[str, str]
    cwd: Path = Path("/")
    declared: set[str] = field(default_factory=set)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)

    PATHS = re.compile(r"(?<![\w./-])/(?:src|opt/balanca|var/lib/balanca)\b")

    def path(self, text: str) -> str:
        """`text` with the image's paths moved under the replay's root."""
        return self.PATHS.sub(lambda m: f"{self.root}{m.group(0)}", text)

    def run(self, steps: list[Instruction]) -> None:
        for step in steps:
            getattr(self, step.keyword)(step)

    def FROM(self, step: Instruction) -> None:
        assert re.fullmatch(r"python:3\.\d+-slim", step.arguments), step.arguments

    def ENV(self, step: Instruction) -> None:
        for word in step.words():
            name, _, value = word.partition("=")
            self.env[name] = self.path(Template(value).safe_substitute(self.env))
            self.declared.add(name)

    def RUN(self, step: Instruction) -> None:
        if step.arguments.startswith("useradd "):
            return  # the test runs the image's steps as NOBODY instead
        run = subprocess.run(
            ["/bin/sh", "-c", self.path(step.arguments)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert run.returncode == 0, f"RUN {step.arguments}\n{run.stdout}{run.stderr}"[-4000:]

    def WORKDIR(self, step: Instruction) -> None:
        self.cwd = Path(self.path(step.arguments))
        self.cwd.mkdir(parents=True, exist_ok=True)

    def COPY(self, step: Instruction) -> None:
        *sources, target = step.words()
        into = Path(self.path(target)) if target.startswith("/") else self.cwd / target
        for source in sources:
            origin = ROOT / source
            assert origin.exists() and not dockerignored(origin), f"COPY {source}"
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    into,
                    dirs_exist_ok=True,
                    ignore=lambda folder, names: [
                        n for n in names if dockerignored(Path(folder, n))
                    ],
                )
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, into / origin.name if target.endswith("/") else into)

    def ENTRYPOINT(self, step: Instruction) -> None:
        self.entrypoint = [self.path(word) for word in step.words()]

    def CMD(self, step: Instruction) -> None:
        self.cmd = [self.path(word) for word in step.words()]

    def HEALTHCHECK(self, step: Instruction) -> None:
        command = Instruction("CMD", step.arguments.partition(" CMD ")[2])
        self.healthcheck = [self.path(word) for word in command.words()]

    def USER(self, step: Instruction) -> None:
        """The test runs the service as NOBODY; volumes and ports are Docker's business."""

    VOLUME = EXPOSE = USER

    def container_env(self, **runtime: str) -> dict[str, str]:
        """What a container of the image has in its environment: the ENV lines, the user's
        home, and what `docker run -e` adds."""
        return {
            **{name: self.env[name] for name in self.declared},
            "HOME": str(self.cwd),
            **runtime,
        }


def base_python(version: str) -> Path:
    """A system `python3.X`, as the base image has, that the image's user may run too (unlike
    an interpreter under /root)."""
    found = [
        path
        for path in (Path(folder, f"python{version}") for folder in ("/usr/local/bin", "/usr/bin"))
        if path.exists()
    ]
    if not found:
        skip_or_fail(f"the base image's python{version} is not in /usr/local/bin or /usr/bin")
    return found[0]


def as_user(env: dict[str, str], command: list[str]) -> str:
    """A shell line that runs `command` as the image's user, with only `env`."""
    assignments = [f"{name}={value}" for name, value in env.items()]
    switch = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return shlex.join([*switch, "env", "-i", *assignments, *command])


class Image(TestCase):
    timeout = 600

    def test_the_image_is_a_slim_python_running_twistd_balanca_as_a_user_in_dialout(self) -> None:
        steps = dockerfile()
        self.assertRegex(steps[0].arguments, r"^python:3\.\d+-slim$")
        (useradd,) = [s.words() for s in steps if s.arguments.startswith("useradd ")]
        self.assertEqual(useradd[-1], "balanca")
        self.assertIn("dialout", useradd[useradd.index("--groups") + 1].split(","))
        self.assertEqual(last("USER").arguments, "balanca")
        home = useradd[useradd.index("--home-dir") + 1]
        self.assertEqual((last("WORKDIR").arguments, last("VOLUME").words()), (home, [home]))
        self.assertEqual(
            last("ENTRYPOINT").words(), ["twistd", "-n", "--pidfile=", "--logfile=-", "balanca"]
        )
        options = Options(environ={})
        options.parseOptions(last("CMD").words())
        self.assertIn("/api/health", (ROOT / "contrib/docker/healthcheck.py").read_text())

    def test_the_dockerfile_steps_build_a_venv_that_passes_its_healthcheck_as_non_root(
        self,
    ) -> None:
        if not shutil.which("setpriv"):
            skip_or_fail("setpriv (util-linux) is needed to run as another user")
        root = Path(tempfile.mkdtemp(prefix="balanca-image-"))
        self.addCleanup(shutil.rmtree, root, True)
        root.chmod(0o755)  # the image's user must reach the venv under it
        tools = root / "bin"
        tools.mkdir()
        version = re.sub(r"^python:(3\.\d+).*", r"\1", dockerfile()[0].arguments)
        (tools / "python").symlink_to(base_python(version))
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BALANCA_", "MYSQL_", "PYTHON", "VIRTUAL_ENV"))
        }
        image = Replay(root, {**inherited, "PATH": f"{tools}:{os.environ['PATH']}"})
        image.run(dockerfile())
        self.assertFalse((root / "src").exists(), "the sources stay in the image")
        plugins = root.glob("opt/balanca/venv/lib/python*/site-packages/twisted/plugins")
        self.assertTrue(all((folder / "dropin.cache").exists() for folder in plugins))
        home = image.cwd
        token = home / "read-token"
        token.write_text("s3cret\n")
        for path in (home, token):
            os.chown(path, NOBODY, NOBODY)
        env = image.container_env(BALANCA_READ_TOKEN_FILE=str(token), BALANCA_TOKEN="writer")
        without_token = image.container_env()
        script = f"""
            cd {shlex.quote(str(home))}
            {as_user(env, image.entrypoint + image.cmd)} > service.log 2>&1 &
            service=$!
            healthy=no
            for _ in $(seq 100); do
                if {as_user(env, image.healthcheck)} > health.log 2>&1; then
                    healthy=yes
                    break
                fi
                sleep 0.2
            done
            {as_user(without_token, image.healthcheck)} > no-token.log 2>&1 || true
            kill -TERM $service
            wait $service || true
            echo "healthy=$healthy"
        """
        run = in_namespace(script)  # its own loopback, so that port 8080 is free
        logs = {name: (home / f"{name}.log").read_text() for name in ("service", "health")}
        self.assertIn("healthy=yes", run.stdout, f"{run.stderr}\n{logs}")
        self.assertEqual(json.loads(logs["health"])["db"], "ok")
        self.assertTrue((home / "no-token.log").read_text().startswith("401"))
        self.assertIn("listening on [::]:8080 (dual-stack IPv4+IPv6)", logs["service"])
        self.assertNotIn("plugin cache", logs["service"].lower())
        self.assertTrue((home / "balanca.sqlite3").exists())


def compose(*files: str) -> dict[str, Any]:
    """The compose files merged as `docker compose -f A -f B` does for what they use:
    mappings merge, `volumes` lists add up, other values are replaced."""

    def merge(base: Any, over: Any, key: str = "") -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            out = dict(base)
            for k, v in over.items():
                out[k] = merge(base[k], v, k) if k in base else v
            return out
        if key == "volumes" and isinstance(base, list) and isinstance(over, list):
            return base + [v for v in over if v not in base]
        return over

    merged: dict[str, Any] = {}
    for name in ("docker-compose.yml", *files):
        merged = merge(merged, yaml.safe_load((ROOT / name).read_text()))
    return merged


def interpolate(value: str, env: dict[str, str]) -> str:
    """`${NAME:?message}` and `${NAME:-default}` as compose fills them from `.env`."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        assert kind == ":-", f"{name} must be set: {rest}"
        return rest

    return re.sub(r"\$\{(\w+)(:[?-])([^}]*)\}", one, value)


def options_of(service: dict[str, Any], dotenv: dict[str, str]) -> Any:
    env = {k: interpolate(str(v), dotenv) for k, v in service["environment"].items()}
    options = Options(environ=env)
    options.parseOptions(service["command"])
    assert options.settings is not None
    return options.settings


DOTENV = {"MARIADB_PASSWORD": "pw", "BALANCA_SERIAL_DEVICE": "/dev/serial/by-id/usb-FTDI-if00"}


class Compose(TestCase):
    def test_balanca_on_the_host_network_beside_mariadb_with_real_options(self) -> None:
        merged = compose()
        balanca, mariadb = merged["services"]["balanca"], merged["services"]["mariadb"]
        self.assertEqual((balanca["network_mode"], mariadb["network_mode"]), ("host", "host"))
        env = balanca["environment"]
        self.assertEqual(env["MYSQL_HOST"], "127.0.0.1")
        db = options_of(balanca, DOTENV).db
        self.assertEqual(
            (db.dialect, db.host, db.port, db.user, db.password, db.database),
            ("mysql", "127.0.0.1", 3306, "balanca", "pw", "balanca"),
        )
        database = mariadb["environment"]
        self.assertEqual(
            (database["MARIADB_DATABASE"], database["MARIADB_USER"], database["MARIADB_PASSWORD"]),
            (env["MYSQL_DATABASE"], env["MYSQL_USER"], env["MYSQL_PASSWORD"]),
        )
        self.assertIn("--bind-address=127.0.0.1", mariadb["command"])
        self.assertEqual(balanca["depends_on"]["mariadb"]["condition"], "service_healthy")
        self.assertIn(f"balanca-state:{last('WORKDIR').arguments}", balanca["volumes"])
        self.assertIn("mariadb-data:/var/lib/mysql", mariadb["volumes"])
        self.assertEqual(set(merged["volumes"]), {"balanca-state", "mariadb-data"})

    def test_the_default_file_starts_on_any_host_the_simulator_on_8080_as_the_user(self) -> None:
        balanca = compose()["services"]["balanca"]
        settings = options_of(balanca, DOTENV)
        self.assertEqual(settings.scale.kind, "simulator")
        self.assertEqual([d for d, _ in settings.http], ["dualstack:8080"])
        self.assertEqual(settings.ws, [])
        for needs_the_host in ("devices", "device_cgroup_rules", "user", "cap_add", "privileged"):
            self.assertNotIn(needs_the_host, balanca)

    def test_the_serial_override_reads_the_by_id_device_and_survives_a_replug(self) -> None:
        balanca = compose("docker-compose.serial.yml")["services"]["balanca"]
        scale = options_of(balanca, DOTENV).scale
        self.assertEqual((scale.kind, scale.device, scale.protocol), ("serial", DOTENV["BALANCA_SERIAL_DEVICE"], "toledo"))  # fmt: skip
        self.assertNotIn("devices", balanca, "resolved once, at creation: no replug")
        self.assertIn("c 188:* rmw", balanca["device_cgroup_rules"])
        self.assertIn("/dev:/dev", balanca["volumes"])
        self.assertIn("dialout", balanca["group_add"])
        with self.assertRaises(AssertionError):  # no device named: compose refuses to start
            options_of(balanca, {"MARIADB_PASSWORD": "pw"})

    def test_the_port81_override_binds_as_root_with_one_capability_then_runs_as_the_user(
        self,
    ) -> None:
        balanca = compose("docker-compose.port81.yml")["services"]["balanca"]
        settings = options_of(balanca, DOTENV)
        self.assertEqual([d for d, _ in settings.ws], ["dualstack:81"])
        self.assertEqual((balanca["user"], balanca["cap_drop"]), ("root", ["ALL"]))
        self.assertEqual(set(balanca["cap_add"]), {"NET_BIND_SERVICE", "SETUID", "SETGID"})
        entry = balanca["entrypoint"]
        self.assertEqual(entry[-1], "balanca")
        self.assertIn("--uid=balanca", entry)
        self.assertEqual([w for w in entry if not w.startswith("-")], ["twistd", "balanca"])
        self.assertEqual(entry[:4], last("ENTRYPOINT").words()[:4])


LOW_PORT = """
run() {{ # run WHO... -- twistd balanca on port 81; "up" once it answers, else its exit status
    "$@" {python} -c 'from twisted.scripts.twistd import run; run()' -n --pidfile= \\
        {uid} balanca --http tcp:81 --db sqlite:{work}/x.sqlite3 > {work}/$name.log 2>&1 &
    pid=$!
    for _ in $(seq 150); do
        if {python} -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:81/api/time")' 2>/dev/null; then
            echo "$name=up uid=$(awk '/^Uid:/ {{print $2}}' /proc/$pid/status)"
            kill -TERM $pid; wait $pid || true; return
        fi
        if ! kill -0 $pid 2>/dev/null; then
            status=0; wait $pid || status=$?; echo "$name=exit$status"; return
        fi
        sleep 0.1
    done
    echo "$name=timeout"; kill -KILL $pid
}}
cd {work}
nobody="setpriv --reuid={nobody} --regid={nobody} --clear-groups"
name=denied uid= run $nobody
name=root_switch uid="--uid={nobody} --gid={nobody}" run setpriv --bounding-set=-all,+net_bind_service,+setuid,+setgid --inh-caps=-all
sysctl -qw net.ipv4.ip_unprivileged_port_start=81
name=sysctl uid= run $nobody
"""


class LowPorts(TestCase):
    timeout = 180

    def test_port_81_as_non_root_is_one_clear_line_and_works_with_the_capability_or_sysctl(
        self,
    ) -> None:
        if not shutil.which("setpriv"):
            skip_or_fail("setpriv (util-linux) is needed to run as another user")
        work = Path(tempfile.mkdtemp(prefix="balanca-port81-"))
        self.addCleanup(shutil.rmtree, work, True)
        work.chmod(0o777)
        # A system interpreter with this one's packages: the image's user may run it, also
        # once twistd has switched to that user (an interpreter under /root it could not).
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        packages = ":".join(p for p in sys.path if p.endswith("site-packages"))
        python = f"env PYTHONPATH={packages}:{ROOT} {base_python(version)}"
        script = LOW_PORT.format(python=python, work=work, nobody=NOBODY, uid="$uid")
        run = in_namespace(script)  # its own network: its own port 81 and sysctl
        logs = {p.stem: p.read_text() for p in work.glob("*.log")}
        self.assertIn("denied=exit1", run.stdout, (run.stdout, run.stderr, logs))
        denied = [line for line in logs["denied"].splitlines() if "cannot listen" in line]
        self.assertEqual(len(denied), 1, logs["denied"])
        self.assertIn("cannot listen on tcp:81 (Permission denied): ports below 1024 need root, CAP_NET_BIND_SERVICE or net.ipv4.ip_unprivileged_port_start", denied[0])  # fmt: skip
        self.assertNotIn("Traceback", logs["denied"])
        self.assertIn(f"root_switch=up uid={NOBODY}", run.stdout, (run.stdout, logs))
        self.assertIn(f"sysctl=up uid={NOBODY}", run.stdout, (run.stdout, logs))
