"""Slurm's command line, wrapped: submit, read job states, cancel, run sacctmgr.

Knows Slurm 22.05 (data v0.0.38) as Debian ships it, and nothing about commonlab's database.
Two things about this Slurm shape the code, both seen on a real cluster:

- `squeue --json` ignores `--jobs` and every other filter: it lists every job slurmctld holds,
  so the wanted ids are picked out here.
- `sacct --json` reports a job that exited 3 as `{"status": "SUCCESS", "return_code": 0}`
  (while `sacct -P` says `3:0`), so accounting is read with `--parsable2` and
  `SLURM_TIME_FORMAT=%s` instead.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commonlab.errors import CommonlabError, Conflict, InvalidInput

__all__ = [
    "FINAL_STATES",
    "SlurmCli",
    "SlurmError",
    "SlurmJob",
    "SlurmRefused",
    "SlurmUnavailable",
    "parse_sacct",
    "parse_squeue",
]

# A job in one of these states has ended for good (a requeued job goes back to PENDING).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

# Fields read from `sacct --parsable2`, in this order.
_SACCT_FIELDS = ("JobIDRaw", "State", "ExitCode", "ElapsedRaw", "AllocTRES", "Start", "End")
_SACCT_FIELDS += ("Reason", "Account")
# Lines in Slurm's stderr that mean "no answer" rather than "no".
_UNAVAILABLE_HINTS = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "connection timed out",
    "could not establish a configuration source",
    "unable to process configuration file",
    "problem talking to the database",
    "accounting storage is disabled",
    "unable to establish connection",
    "zero bytes were transmitted",
    "communication connection failure",
    "slurm_persist_conn_open",
    "munge",
    "protocol authentication error",
    "fatal:",
)
# What a job's environment starts from: never the submitter's (it may hold secrets).
_JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
_SACCT_CHUNK = 500


class SlurmError(CommonlabError):
    """Base of the errors Slurm's command line causes."""


class SlurmUnavailable(SlurmError):
    """Slurm did not answer: a daemon is down, a command is missing, or it timed out."""

    status = 503
    slug = "slurm-unavailable"
    title = "Slurm unavailable"


class SlurmRefused(SlurmError, Conflict):
    """Slurm answered and said no (e.g. an account it does not know); `slurm_message` is its
    own words."""

    slug = "slurm-refused"
    title = "Slurm refused"

    def __init__(self, message: str, *, slurm_message: str, command: str) -> None:
        super().__init__(message, slurm_message=slurm_message, command=command)
        self.slurm_message = slurm_message
        self.command = command


@dataclass(frozen=True)
class SlurmJob:
    """One job as Slurm reports it. `exit_code` is None until the job has run and ended; a job
    killed by a signal reports 128 + the signal, as a shell would."""

    slurm_id: int
    state: str
    exit_code: int | None
    elapsed_seconds: int
    alloc_tres: dict[str, int]  # only the TRES Slurm reports; memory in MiB
    start: datetime | None
    end: datetime | None
    reason: str  # why it is pending, or ""
    account: str
    # Known from slurmctld (squeue) only, for jobs it still holds:
    submitted: datetime | None = None  # when it was (last re)queued
    requested_tres: dict[str, int] = field(default_factory=dict)  # what it asks for
    restarts: int = 0  # how often it was requeued after it had started
    priority: int = 0  # its priority now (multifactor's factors, less its Nice)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def requeued(self) -> bool:
        """Waiting again after it ran: requeued (by the share controller, say), not new."""
        return self.state == "PENDING" and self.restarts > 0


class SlurmCli:
    """Slurm's commands, each run with a timeout and without a shell.

    `env` is added to this process's environment for every command (e.g. `SLURM_CONF`, or a
    `PATH` that finds other binaries).
    """

    def __init__(self, *, timeout: float = 30.0, env: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self._env = {**os.environ, **(env or {})}

    # Commands ------------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise SlurmUnavailable unless both slurmctld and slurmdbd answer."""
        try:
            out = self._run(["scontrol", "ping"])
        except SlurmRefused as exc:
            raise SlurmUnavailable(f"slurmctld is not answering: {exc.slurm_message}") from exc
        if "is UP" not in out:
            raise SlurmUnavailable(f"slurmctld is not answering: {_one_line(out)}")
        try:
            self._run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"])
        except SlurmRefused as exc:
            raise SlurmUnavailable(f"slurmdbd is not answering: {exc.slurm_message}") from exc

    def submit(
        self,
        script: str,
        *,
        account: str,
        partition: str,
        job_name: str,
        time_limit_minutes: int,
        cpus: int,
        memory_mb: int,
        gpus: int,
        workdir: Path,
        stdout: Path,
        stderr: Path,
        nodes: int = 1,
        uid: int | None = None,
        gid: int | None = None,
        comment: str = "",
        environment: Mapping[str, str] | None = None,
    ) -> int:
        """Submit a batch script (given on stdin) and return Slurm's job id.

        The job gets `nodes` nodes with one task each; `cpus`, `memory_mb` and `gpus` are
        what each node's task gets. The script runs on the first node and starts the tasks
        on every node itself (`srun`).

        Every job may be requeued (`--requeue`, whatever the site's JobRequeue): the share
        controller takes capacity back that way (`requeue`). The job then receives SIGTERM,
        has KillWait seconds to checkpoint (the workloads' training loop finishes its step and
        saves one), and later runs again from the top in the same folder, where it finds
        its checkpoint.

        Root passes `uid` (and `gid`, else the user's own group) to run the job as that user;
        a job never runs as root.
        The job's environment is PATH, HOME, USER, LOGNAME and LANG for that user, plus
        `environment`, plus Slurm's own SLURM_* variables: nothing leaks from this process.
        """
        runs_as = os.getuid() if uid is None else uid
        if runs_as == 0:
            raise InvalidInput("Slurm jobs never run as root: pass the uid of the user to run as")
        user = pwd.getpwuid(runs_as)
        if uid is not None and gid is None:
            gid = user.pw_gid
        job_env = {
            "PATH": _JOB_PATH,
            "HOME": user.pw_dir,
            "USER": user.pw_name,
            "LOGNAME": user.pw_name,
            "LANG": "C.UTF-8",
            **(environment or {}),
        }
        args = [
            "sbatch",
            "--parsable",
            f"--account={account}",
            f"--partition={partition}",
            f"--job-name={job_name}",
            f"--time={time_limit_minutes}",
            f"--nodes={nodes}",
            "--ntasks-per-node=1",
            f"--cpus-per-task={cpus}",
            f"--mem={memory_mb}M",
            f"--chdir={workdir}",
            f"--output={stdout}",
            f"--error={stderr}",
            "--requeue",
        ]
        if gpus:
            args.append(f"--gres=gpu:{gpus}")
        if uid is not None:
            args += [f"--uid={uid}", f"--gid={gid}"]
        if comment:
            args.append(f"--comment={comment}")
        # --export-file replaces the submitter's environment (and survives commas and newlines
        # in values, which --export=NAME=value does not).
        with tempfile.NamedTemporaryFile("wb", prefix="commonlab-sbatch-env-") as env_file:
            env_file.write(_export_file(job_env))
            env_file.flush()
            out = self._run([*args, f"--export-file={env_file.name}"], stdin=script)
        try:
            return int(out.strip().split(";")[0])
        except ValueError:
            raise SlurmUnavailable(f"sbatch answered without a job id: {_one_line(out)}") from None

    def jobs(self, ids: Iterable[int]) -> dict[int, SlurmJob]:
        """What Slurm knows about these jobs; a job it does not know is absent.

        Accounting (sacct) is the record for jobs that have ended. For a job slurmctld still
        holds and has not finished in accounting yet, slurmctld's view (squeue) is fresher.
        """
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        found: dict[int, SlurmJob] = {}
        for i in range(0, len(wanted), _SACCT_CHUNK):
            chunk = wanted[i : i + _SACCT_CHUNK]
            found.update(
                parse_sacct(
                    self._run(
                        [
                            "sacct",
                            "--allusers",
                            "--allocations",
                            # Every run of a requeued job, each one's time to charge.
                            "--duplicates",
                            "--noheader",
                            "--parsable2",
                            f"--jobs={','.join(map(str, chunk))}",
                            f"--format={','.join(_SACCT_FIELDS)}",
                        ],
                        # Only here: sbatch would pass any SLURM_* variable on to the job.
                        env={"SLURM_TIME_FORMAT": "%s"},
                    )
                )
            )
        live = {job_id for job_id in wanted if job_id not in found or not found[job_id].finished}
        if live:
            queued = parse_squeue(self._run(["squeue", "--json"]), now=datetime.now(UTC))
            found.update({job_id: job for job_id, job in queued.items() if job_id in live})
        return {job_id: found[job_id] for job_id in wanted if job_id in found}

    def find(self, job_name: str) -> int | None:
        """The newest job slurmctld holds or accounting remembers under this name, or None.

        commonlab names each job uniquely (facility and job number), so after a crash between
        `sbatch` and saving its answer, the job is found again instead of submitted twice."""
        live = json.loads(self._run(["squeue", "--json"]) or "{}").get("jobs", [])
        named = [int(job["job_id"]) for job in live if job.get("name") == job_name]
        if named:
            return max(named)
        out = self._run(
            [
                "sacct",
                "--allusers",
                "--allocations",
                "--noheader",
                "--parsable2",
                "--starttime=now-30days",
                f"--name={job_name}",
                "--format=JobIDRaw",
            ]
        )
        remembered = [int(line) for line in out.split() if line.strip().isdigit()]
        return max(remembered) if remembered else None

    def queue(self) -> dict[int, SlurmJob]:
        """Every job slurmctld holds that has not ended (running, pending, requeued), with
        its account, what it asks for, when it was submitted and when it started."""
        held = parse_squeue(self._run(["squeue", "--json"]), now=datetime.now(UTC))
        return {job_id: job for job_id, job in held.items() if not job.finished}

    def requeue(self, slurm_id: int) -> None:
        """Stop a running job and put it back in the queue under the same id (`scontrol
        requeue`): it receives SIGTERM, then SIGKILL after KillWait, and Slurm holds it for a
        short while (Reason BeginTime) before it may start again."""
        self._run(["scontrol", "requeue", str(slurm_id)])

    def pin(self, slurm_id: int, nice: int) -> None:
        """Put a pending job ahead of every other until it starts: a negative Nice (`scontrol
        update`; only an operator may lower one) is taken from its priority."""
        self._run(["scontrol", "update", f"JobId={slurm_id}", f"Nice={-nice}"])

    def cancel(self, slurm_id: int) -> None:
        """Cancel a job; one that has already ended (or that Slurm forgot) is not an error."""
        try:
            self._run(["scancel", str(slurm_id)])
        except SlurmRefused as exc:
            if "invalid job id" in exc.slurm_message.lower():
                return
            if "already completing or completed" in exc.slurm_message.lower():
                return
            raise

    def sacctmgr(self, *args: str) -> str:
        """Run `sacctmgr ARGS` and return its stdout."""
        return self._run(["sacctmgr", *args])

    # Plumbing ------------------------------------------------------------------------------

    def _run(
        self, argv: list[str], *, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        command = argv[0]
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
                env={**self._env, **env} if env else self._env,
                check=False,
            )
        except FileNotFoundError:
            raise SlurmUnavailable(f"{command} is not on PATH: is Slurm installed here?") from None
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"{command} did not answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise SlurmUnavailable(f"{command} could not be run: {exc}") from None
        if proc.returncode != 0:
            said = _slurm_message(proc.stderr) or _slurm_message(proc.stdout)
            said = said or f"exit status {proc.returncode}"
            if any(hint in said.lower() for hint in _UNAVAILABLE_HINTS):
                raise SlurmUnavailable(f"{command}: {said}")
            raise SlurmRefused(f"{command} refused: {said}", slurm_message=said, command=command)
        return proc.stdout


# Parsers (pure: tested on real output saved in tests/compute/data) ---------------------------


def parse_squeue(text: str, *, now: datetime) -> dict[int, SlurmJob]:
    """Jobs from `squeue --json` (v0.0.38). `now` dates the elapsed time of running jobs."""
    document = json.loads(text)
    jobs: dict[int, SlurmJob] = {}
    for raw in document.get("jobs", []):
        state = _base_state(raw.get("job_state"))
        tres = _parse_tres(raw.get("tres_alloc_str") or "")
        # A pending job's start_time is a forecast; one cancelled while pending shows its
        # cancel time there. Only a job that was given resources has started.
        start = _from_epoch(raw.get("start_time")) if tres else None
        # For a job that has not ended, end_time is when its time limit would run out.
        end = _from_epoch(raw.get("end_time")) if state in FINAL_STATES else None
        elapsed = 0 if start is None else max(0, int(((end or now) - start).total_seconds()))
        exit_code = None
        if state in FINAL_STATES and start is not None:
            exit_code = _from_wait_status(raw.get("exit_code"))
        reason = raw.get("state_reason") or ""
        jobs[int(raw["job_id"])] = SlurmJob(
            slurm_id=int(raw["job_id"]),
            state=state,
            exit_code=exit_code,
            elapsed_seconds=elapsed,
            alloc_tres=tres,
            start=start,
            end=end,
            reason=reason if state == "PENDING" and reason != "None" else "",
            account=raw.get("account") or "",
            submitted=_from_epoch(raw.get("submit_time")),
            requested_tres=_parse_tres(raw.get("tres_req_str") or ""),
            restarts=int(raw.get("restart_cnt") or 0),
            priority=_number(raw.get("priority")),
        )
    return jobs


def _number(value: object) -> int:
    """An integer of squeue's JSON: plain in v0.0.38, `{"set": …, "number": …}` later."""
    if isinstance(value, dict):
        value = value.get("number") if value.get("set", True) else 0
    return int(value) if isinstance(value, int | float) else 0


def parse_sacct(text: str) -> dict[int, SlurmJob]:
    """Jobs from `sacct --allocations --duplicates --noheader --parsable2` with
    `_SACCT_FIELDS`, times as epoch seconds (`SLURM_TIME_FORMAT=%s`). A requeued job has a
    record per run, the earlier ones REQUEUED and the current one last: the job is its
    current run, with the elapsed time of every run requeued before it (a requeue by the
    share controller keeps the work up to the job's last checkpoint: that time was
    delivered). A run that ended otherwise (NODE_FAIL, say) is not counted: a failure of
    the facility's is not the researcher's to pay."""
    jobs: dict[int, SlurmJob] = {}
    earlier: dict[int, int] = {}  # seconds of a job's runs before the one read last
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != len(_SACCT_FIELDS):
            raise SlurmUnavailable(f"sacct answered a line this version cannot read: {line!r}")
        row = dict(zip(_SACCT_FIELDS, fields, strict=True))
        job_id_text = row["JobIDRaw"].split(".")[0]
        if not job_id_text.isdigit():
            continue
        state = row["State"].split()[0] if row["State"] else "UNKNOWN"  # "CANCELLED by 0"
        start = _from_epoch(row["Start"])
        end = _from_epoch(row["End"]) if state in FINAL_STATES else None
        exit_code = None
        if state in FINAL_STATES and start is not None:
            exit_code = _from_code_and_signal(row["ExitCode"])
        reason = row["Reason"]
        job_id = int(job_id_text)
        if (before := jobs.get(job_id)) is not None and before.state == "REQUEUED":
            earlier[job_id] = before.elapsed_seconds
        jobs[job_id] = SlurmJob(
            slurm_id=job_id,
            state=state,
            exit_code=exit_code,
            elapsed_seconds=earlier.get(job_id, 0) + int(row["ElapsedRaw"] or 0),
            alloc_tres=_parse_tres(row["AllocTRES"]),
            start=start,
            end=end,
            reason=reason if state == "PENDING" and reason != "None" else "",
            account=row["Account"],
        )
    return jobs


def _base_state(value: Any) -> str:
    # 22.05 gives a string; later data versions give a list of flags, base state first.
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "UNKNOWN").split()[0]


def _from_epoch(value: Any) -> datetime | None:
    """Slurm's times: epoch seconds; 0, None, "Unknown" and "None" mean not (yet) known."""
    if value is None:
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _from_wait_status(value: Any) -> int | None:
    """squeue's exit_code is the raw wait(2) status."""
    if value is None:
        return None
    status = int(value)
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF


def _from_code_and_signal(value: str) -> int | None:
    """sacct's ExitCode is `code:signal`."""
    code, _, signal = value.partition(":")
    try:
        if signal and int(signal):
            return 128 + int(signal)
        return int(code)
    except ValueError:
        return None


_MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def _parse_tres(text: str) -> dict[str, int]:
    """`cpu=2,mem=2000M,node=1,billing=2,gres/gpu=1` → counts, memory in MiB."""
    tres: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not value:
            continue
        scale: float = 1
        if value[-1].upper() in _MEMORY_UNITS:
            scale = _MEMORY_UNITS[value[-1].upper()]
            value = value[:-1]
        try:
            tres[name] = round(float(value) * scale)
        except ValueError:
            continue
    return tres


def _export_file(env: Mapping[str, str]) -> bytes:
    """NUL-separated NAME=value pairs, as `sbatch --export-file` reads them."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise InvalidInput(f"job environment variable {name!r} cannot be passed to Slurm")
    return b"".join(f"{name}={value}".encode() + b"\0" for name, value in env.items())


def _slurm_message(text: str) -> str:
    """Slurm's complaint on one line, without the `sbatch: error: ` prefixes."""
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):  # scontrol ping's banner around "RESTORE SLURMCTLD DAEMON"
            continue
        for prefix in ("error:", "fatal:"):
            _, sep, rest = line.partition(f": {prefix} ")
            if sep:
                line = rest if prefix == "error:" else f"fatal: {rest}"
                break
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
