"""Opening the PR/MR of each pending publication request, once per request, and importing
the prompt file of each task whose Git settings are new.

Requests are only acted on once their partition is caught up with the log: while
replaying history, a request looks pending until its outcome event is read. Opening a
PR is idempotent (an open PR for the job's branch is reused), so a crash after the PR
was created and before ``PrCreated`` was written ends with the same single PR.

An import reads the file (read-only), and records what it found in the log, always ending
with a ``PromptImportAttempted``: the version and activation before it carry derived ids,
so an import repeated after a crash re-emits the same events. A file that cannot be read
or holds an invalid prompt activates nothing; the reason is in that event and the log.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from cryptography.fernet import Fernet

from services.pr_publisher import domain
from services.pr_publisher.git_hosts import (
    DEFAULT_ALLOWLIST,
    GitTarget,
    PrError,
    PrRequest,
    PrResult,
    open_pull_request,
    read_prompt_file,
)
from services.pr_publisher.state import PublisherState
from shared import logcontext, metrics, tracing
from shared.events import prompts, prs
from shared.events.base import Event, derive_id
from shared.events.envelope import Envelope
from shared.git_policy import Origin, for_users, prompt_path_problem, refusal, target_url
from shared.kafka.producer import EventLog, LogUnavailable
from shared.secrets import TokenUnreadable, decrypt_token

log = logging.getLogger(__name__)

SOURCE = "pr_publisher"


class Publisher:
    def __init__(
        self,
        state: PublisherState,
        events: EventLog,
        fernet: Fernet,
        *,
        timeout: float = 10,
        git_hosts: tuple[Origin, ...] = DEFAULT_ALLOWLIST,
    ) -> None:
        self.state = state
        self.events = events
        self.fernet = fernet
        self.timeout = timeout
        self.git_hosts = git_hosts
        # Requests answered by this process whose outcome has not come back through the log yet.
        self._answered: set[str] = set()

    async def reconcile(self, partitions: set[int]) -> None:
        for request in await self.state.pending(partitions):
            if request.request_id not in self._answered:
                with (
                    logcontext.bound(
                        job_id=request.job_id, task_id=request.task_id, correlation_id=request.correlation_id
                    ),
                    # A child of the job's latest event this process read (JobCompiled, PrRetryRequested).
                    tracing.resumed(
                        request.job_id, "publish pull request", **{"kaizen.task_id": request.task_id}
                    ),
                ):
                    await self.publish(request)
        for request in await self.state.pending_imports(partitions):
            if request.request_id not in self._answered:
                with logcontext.bound(task_id=request.task_id, correlation_id=request.correlation_id):
                    await self.import_prompt(request)

    async def import_prompt(self, request: Any) -> None:
        """Make the prompt in the task's file (on its base branch) the task's active prompt.

        Never raises for what the host, the file or the task's settings get wrong: those end
        as a ``failed`` outcome a user can read. Only a log that cannot be written leaves the
        request pending, to be tried again on the next round.
        """
        events = await self._import_events(request)
        envelopes = [
            Envelope.wrap(
                event,
                source=SOURCE,
                id=derive_id(
                    "prompt-import", request.request_id, event.TYPE, getattr(event, "blob_sha", None)
                ),
                correlation_id=request.correlation_id,
            ).model_copy(update={"causation_id": request.request_id})
            for event in events
        ]
        try:
            await self.events.append_all(envelopes)
        except LogUnavailable as exc:
            log.warning("task %s: import outcome not written, will retry: %s", request.task_id, exc)
            return
        self._answered.add(request.request_id)
        outcome = events[-1]
        assert isinstance(outcome, prompts.PromptImportAttempted)  # every import ends with one
        level = logging.WARNING if outcome.outcome == "failed" else logging.INFO
        log.log(level, "task %s: prompt file %s %s", request.task_id, outcome.prompt_path, outcome.outcome)
        if outcome.reason:
            log.log(level, "task %s: %s", request.task_id, outcome.reason)

    async def _import_events(self, request: Any) -> list[Event]:
        task_id = uuid.UUID(request.task_id)
        settings, active = await self.state.import_target(request.task_id)
        token: str | None = None
        try:
            token = self._token(settings)
            found = await asyncio.to_thread(
                read_prompt_file, git_target(settings, token), allowed=self.git_hosts, timeout=self.timeout
            )
        except PrError as exc:
            reason = f"the prompt file was not imported: {for_users(exc.reason, token)}"
            return [domain.import_failed(task_id, settings, reason, retryable=exc.retryable)]
        except Exception:
            # A bug must not stop the publisher; the traceback stays in the log, not in the event.
            log.exception("task %s: importing the prompt file failed", request.task_id)
            reason = (
                "the prompt file was not imported: an internal error occurred (see the PR publisher's log)"
            )
            return [domain.import_failed(task_id, settings, reason, retryable=True)]
        return domain.decide_import(
            task_id,
            request.request_id,
            settings,
            prompt=found.prompt,
            branch=found.branch,
            blob_sha=found.blob_sha,
            active_prompt=active,
        )

    async def publish(self, request: Any) -> None:
        ids = {"job_id": uuid.UUID(request.job_id), "task_id": uuid.UUID(request.task_id)}
        pr_request: PrRequest | None = None
        try:
            pr_request = await self._pr_request(request)
            result: PrResult = await asyncio.to_thread(
                open_pull_request, pr_request, allowed=self.git_hosts, timeout=self.timeout
            )
            outcome: Event = prs.PrCreated(
                **ids, pr_url=result.url, number=result.number, branch=pr_request.branch, reused=result.reused
            )
            log.info(
                "job %s: PR %s (%s)", request.job_id, result.url, "reused" if result.reused else "opened"
            )
            metrics.PR_OUTCOMES.labels(pr_request.provider, "reused" if result.reused else "created").inc()
        except PrError as exc:
            # The reason ends up in error_message and the retry-pr 502 detail: the last gate.
            reason = for_users(exc.reason, pr_request.token if pr_request else None)
            outcome = prs.PrFailed(**ids, reason=reason, retryable=exc.retryable)
            log.warning("job %s: PR failed: %s", request.job_id, reason)
            provider = pr_request.provider if pr_request else "unknown"
            metrics.PR_OUTCOMES.labels(provider, "failed").inc()
        envelope = Envelope.wrap(
            outcome,
            source=SOURCE,
            id=derive_id("pr-outcome", request.request_id),
            correlation_id=request.correlation_id,
        )
        await self.events.append(envelope.model_copy(update={"causation_id": request.request_id}))
        self._answered.add(request.request_id)

    async def _pr_request(self, request: Any) -> PrRequest:
        found = await self.state.publication(request.job_id)
        if found is None or found[1] is None:
            raise PrError("the job's compiled prompt version is unknown to the PR publisher", retryable=False)
        job, version, settings = found
        return build_pr_request(settings, job, version.prompt_text, self._token(settings))

    def _token(self, settings: dict[str, Any]) -> str:
        """The task's token in clear, once its settings are complete and its target allowed."""
        missing = [
            k
            for k in ("git_provider", "git_repo", "git_token_encrypted", "prompt_path")
            if not settings.get(k)
        ]
        if missing:
            # Named as the API names them: users set git_token, the publisher sees its ciphertext.
            names = ", ".join(name.removesuffix("_encrypted") for name in missing)
            raise PrError(f"the task's Git settings are incomplete: set {names}", retryable=False)
        self._check_target(settings)
        try:
            return decrypt_token(self.fernet, settings["git_token_encrypted"])
        except TokenUnreadable as exc:
            raise PrError(str(exc), retryable=False) from exc

    def _check_target(self, settings: dict[str, Any]) -> None:
        """Refuse before decrypting: tasks stored before a rule (or the allowlist) changed."""
        target = target_url(settings["git_provider"], settings.get("git_base_url")) or ""
        if (reason := refusal(target, self.git_hosts)) is not None:
            raise PrError(f"the token was not sent: {reason}", retryable=False)
        if (problem := prompt_path_problem(settings["prompt_path"])) is not None:
            raise PrError(f"the task's prompt_path {problem}", retryable=False)


def git_target(settings: dict[str, Any], token: str) -> GitTarget:
    """Where the task's prompt file is: its repository, base branch, path, format and locator."""
    return GitTarget(
        provider=settings["git_provider"],
        base_url=settings.get("git_base_url"),
        repo=settings["git_repo"],
        base_branch=settings.get("git_base_branch"),
        token=token,
        prompt_path=settings["prompt_path"],
        prompt_format=settings.get("prompt_format", "text"),
        prompt_locator=settings.get("prompt_locator"),
    )


def build_pr_request(settings: dict[str, Any], job: Any, prompt_text: str, token: str) -> PrRequest:
    """The PR of a compiled job: branch per job, title and body from the measured figures."""
    meta = job.job_metadata
    name = settings.get("name", "task")
    baseline = float(meta.get("baseline_score") or 0.0)
    optimized = float(meta.get("optimized_score") or 0.0)
    export = meta.get("export_score")
    content = domain.PrContent(
        task_name=name,
        job_id=job.job_id,
        prompt_path=settings["prompt_path"],
        baseline_score=baseline,
        optimized_score=optimized,
        export_score=export,
        train_size=int(meta.get("train_size", 0)),
        val_size=int(meta.get("val_size", 0)),
        trials=int(meta.get("trials_completed", 0)),
        llm_calls=int(meta.get("llm_calls", 0)),
        cost_usd=meta.get("cost_usd"),
        examples=tuple(
            domain.PrExample(
                inputs=tuple(sorted((str(k), str(v)) for k, v in e.get("inputs", {}).items())),
                old_output=str(e.get("before", "")),
                new_output=str(e.get("after") or ""),
            )
            for e in job.examples
        ),
        # "auto" names the rule; the metric it chose is what a reviewer needs.
        metric=meta.get("effective_metric") or meta.get("metric"),
        prompt_version_id=job.version_id,
        test_size=int(meta.get("test_size") or 0),
        test_baseline_score=meta.get("test_baseline_score"),
        test_export_score=meta.get("test_export_score"),
        prompt_contract=settings.get("prompt_contract"),
    )
    target = git_target(settings, token)
    return PrRequest(
        provider=target.provider,
        base_url=target.base_url,
        repo=target.repo,
        base_branch=target.base_branch,
        token=token,
        prompt_path=target.prompt_path,
        prompt_format=target.prompt_format,
        prompt_locator=target.prompt_locator,
        branch=domain.branch_name(name, job.job_id),
        title=domain.pr_title(name, baseline, export if export is not None else optimized),
        body=domain.pr_body(content),
        new_prompt=prompt_text,
        commit_message=f"kaizen: update {settings['prompt_path']} from job {job.job_id}",
        job_id=job.job_id,
    )
