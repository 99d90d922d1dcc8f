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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

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


class Compose(TestCase):
    def test_balanca_on_the_host_network_beside_mariadb_with_real_options(self) -> None:
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        balanca, mariadb = compose["services"]["balanca"], compose["services"]["mariadb"]
        self.assertEqual((balanca["network_mode"], mariadb["network_mode"]), ("host", "host"))
        env = balanca["environment"]
        self.assertEqual(env["MYSQL_HOST"], "127.0.0.1")
        options = Options(environ=env)
        options.parseOptions(balanca["command"])
        parsed = options.settings
        assert parsed is not None
        db = parsed.db
        self.assertEqual(
            (db.dialect, db.host, db.port, db.user, db.password, db.database),
            ("mysql", "127.0.0.1", 3306, "balanca", env["MYSQL_PASSWORD"], "balanca"),
        )
        mapped = [device.split(":")[1] for device in balanca["devices"]]
        self.assertIn(parsed.scale.device, mapped)
        self.assertIn("dialout", balanca["group_add"])
        database = mariadb["environment"]
        self.assertEqual(
            (database["MARIADB_DATABASE"], database["MARIADB_USER"], database["MARIADB_PASSWORD"]),
            (env["MYSQL_DATABASE"], env["MYSQL_USER"], env["MYSQL_PASSWORD"]),
        )
        self.assertIn("--bind-address=127.0.0.1", mariadb["command"])
        self.assertEqual(balanca["depends_on"]["mariadb"]["condition"], "service_healthy")
        self.assertIn(f"balanca-state:{last('WORKDIR').arguments}", balanca["volumes"])
        self.assertIn("mariadb-data:/var/lib/mysql", mariadb["volumes"])
        self.assertEqual(set(compose["volumes"]), {"balanca-state", "mariadb-data"})
