"""The optimizer's worker process does not inherit Kaizen's secrets (issue 11, finding 8).

A stand-in worker speaks the protocol and reports the environment it was really given.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.optimizer.spec import Example, JobFailed, JobSpec
from services.optimizer.subprocess_runner import _worker_env, run_in_subprocess

pytestmark = pytest.mark.integration

REPORT_ENVIRONMENT = (
    "import json, os, sys; sys.stdin.read(); "
    "print(json.dumps({'type': 'failure', 'failure': {'kind': 'error', "
    "'error_message': json.dumps(dict(os.environ))}}))"
)
SECRETS = {
    "KAIZEN_SECRET_KEY": "fernet-key-material",
    "KAIZEN_DATABASE_URL": "postgresql+asyncpg://kaizen:hunter2@db/kaizen",
    "KAIZEN_BOOTSTRAP_TOKEN": "bootstrap-secret-0123456789",
    "KAIZEN_KAFKA_SASL_PASSWORD": "kafka-secret",
    "GITHUB_TOKEN": "ghp_secret",
    "GITLAB_TOKEN": "glpat-secret",
    "PGPASSWORD": "hunter2",
    "DATABASE_URL": "postgresql://kaizen:hunter2@db/kaizen",
}
NEEDED = {
    "OPENAI_API_KEY": "sk-provider-key",
    "ANTHROPIC_API_KEY": "sk-ant-provider-key",
    "AWS_ACCESS_KEY_ID": "AKIA-for-bedrock",
    "KAIZEN_LOG_LEVEL": "DEBUG",
}


def spec() -> JobSpec:
    return JobSpec(
        job_id=uuid.uuid4(),
        task_id=uuid.uuid4(),
        task_name="t",
        input_fields=["ticket"],
        examples=[Example(inputs={"ticket": "a"}, output="b", score=1.0)],
    )


async def test_a_worker_gets_provider_keys_but_no_kaizen_or_git_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**SECRETS, **NEEDED}.items():
        monkeypatch.setenv(name, value)

    async def ignore(_: object) -> None:
        return None

    with pytest.raises(JobFailed) as reported:
        await run_in_subprocess(spec(), ignore, asyncio.Event(), 60, worker=("-c", REPORT_ENVIRONMENT))
    environment = json.loads(reported.value.failure.error_message)

    assert not set(SECRETS) & set(environment), "a secret reached the worker"
    assert not any(value in json.dumps(environment) for value in SECRETS.values())
    assert {name: environment.get(name) for name in NEEDED} == NEEDED
    assert environment["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_every_kaizen_setting_but_the_log_level_is_dropped() -> None:
    parent = {"KAIZEN_HOME": "/srv", "kaizen_secret_key": "x", "KAIZEN_LOG_LEVEL": "INFO", "PATH": "/bin"}
    env = _worker_env(parent)
    assert {k: env[k] for k in ("KAIZEN_LOG_LEVEL", "PATH")} == {"KAIZEN_LOG_LEVEL": "INFO", "PATH": "/bin"}
    assert "KAIZEN_HOME" not in env and "kaizen_secret_key" not in env
