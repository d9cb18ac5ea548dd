"""A person approves (or rejects) a model version: Airflow's human-in-the-loop ApprovalOperator
with the version's evaluation summary as the request body, and the answer tagged on the version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param

from airflow_mlops.operators.base import MLOpsBaseOperator, Result
from airflow_mlops.operators.events import announce

GATES = ("promotion", "rollout")


class ModelApprovalOperator(MLOpsBaseOperator, ApprovalOperator):
    """Wait for a person to approve a model version; the answer is tagged on the version.

    The request appears under the task's *Required actions* in the Airflow UI with the
    evaluation summary (gates with figures, metrics against the champion, ONNX parity, the
    latency profile, top features) as its Markdown body, and an optional *comment* field.
    On Airflow 3.3+ the task waits in the ``awaiting_input`` state (no worker slot, no
    triggerer); the scheduler applies ``on_timeout`` when ``timeout_hours`` pass.

    Approve: downstream tasks run. Reject: the version gets ``mlops.approval.<gate>.*`` tags
    and ``mlops.promotion = rejected at the <gate> approval by <user>: <comment>``; for the
    ``promotion`` gate the downstream promote task is skipped (a rejection is an outcome, not
    an error); for the ``rollout`` gate the task fails so the rollback task
    (``trigger_rule="one_failed"``) puts all traffic back on the champion.

    :param gate: ``promotion`` or ``rollout`` (names the tags and the subject).
    :param model: the ``RegisterModelOperator`` result, or an alias / version number of the
        config's model (templated).
    :param evaluation: the ``EvaluateModelOperator`` result, shown in the body (templated).
    :param profile: the ``ProfileModelOperator`` result, shown in the body (templated).
    :param timeout_hours: hours to wait; ``None`` waits forever.
    :param on_timeout: ``reject``, ``approve`` or ``fail`` (see ``core.approval``).
    :param assigned_users: ``[{"id", "name"}]`` allowed to answer (default: anyone).
    """

    template_fields: Sequence[str] = (
        *MLOpsBaseOperator.template_fields,
        "subject",
        "model",
        "evaluation",
        "profile",
    )
    ui_color = "#fdf2d0"
    announces_events: ClassVar[bool] = True  # promotion_rejected

    def __init__(
        self,
        *,
        gate: str,
        model: Result,
        evaluation: Result = None,
        profile: Result = None,
        timeout_hours: float | None = 24.0,
        on_timeout: str = "reject",
        assigned_users: Sequence[dict[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        defaults = {"reject": ApprovalOperator.REJECT, "approve": ApprovalOperator.APPROVE}
        kwargs.setdefault("subject", f"Approve the {gate} of a model version?")
        # Inside a DAG with params, Airflow hands them to every task as ``params``: the form
        # of this task is its own (the DAG's params stay readable from the run's conf).
        kwargs.pop("params", None)
        super().__init__(
            defaults=defaults.get(on_timeout),
            response_timeout=timedelta(hours=timeout_hours) if timeout_hours else None,
            assigned_users=[dict(u) for u in assigned_users] or None,  # type: ignore[misc]
            params={"comment": Param("", type=["null", "string"], title="Why (optional)")},
            fail_on_reject=gate == "rollout",
            **kwargs,
        )
        self.gate = gate
        self.model = model
        self.evaluation = evaluation
        self.profile = profile
        self.timeout_hours = timeout_hours
        self.on_timeout = on_timeout

    def _version(self) -> Any:
        from airflow_mlops.core.registry import versions as registry

        config = self.model_config()
        ref = self.model
        if isinstance(ref, dict):
            name, version = ref.get("name", config.name), str(ref["version"])
        else:
            name, version = config.name, str(ref)
        found = registry.get_version(self.tracking(), name, version)
        if found is None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{name}: no version or alias {version!r} to approve")
        return found

    def execute(self, context: Any) -> Any:
        from airflow_mlops.core.pipeline.approval import approval_body

        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {list(GATES)}, got {self.gate!r}")
        failed = [
            r.get("summary") or r.get("message")
            for r in (self.evaluation, self.profile)
            if isinstance(r, dict) and r.get("passed") is False
        ]
        if failed:
            # Promotion refuses a version that failed a gate whatever a person says: asking
            # would only make someone wait; the promote task tags the refusal.
            self.log.info("not asking for approval: %s", "; ".join(map(str, failed)))
            return {"asked": False, "reason": "; ".join(map(str, failed))}
        found = self._version()
        purpose = (
            f"Approve to give it `{'champion' if self.gate == 'promotion' else 'all traffic'}`"
            f"; reject to keep the current champion. On timeout ({self.timeout_hours} h): "
            f"{self.on_timeout}."
        )
        self.subject = f"{found.name} v{found.version}: approve the {self.gate}?"
        self.body = approval_body(
            found.name,
            found.version,
            purpose=purpose,
            tags=found.tags,
            evaluation=self.evaluation if isinstance(self.evaluation, dict) else None,
            profile=self.profile if isinstance(self.profile, dict) else None,
            links={"MLflow version": found.version_url, "MLflow run": found.run_url},
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from airflow_mlops.core.pipeline.approval import decision_tags
        from airflow_mlops.core.registry import versions as registry

        if "error" not in event:
            chosen = list(event.get("chosen_options") or [])
            user = event.get("responded_by_user") or {}
            at = event.get("responded_at")
            found = self._version()
            approved = chosen == [self.APPROVE]
            tags = decision_tags(
                approved,
                by=user.get("name") or user.get("id"),
                comment=(event.get("params_input") or {}).get("comment"),
                when=str(at.isoformat() if at is not None and hasattr(at, "isoformat") else at),
                gate=self.gate,
                timed_out=bool(event.get("timedout")),
            )
            registry.set_version_tags(self.tracking(), found.name, found.version, tags)
            self.log.info("%s v%s: %s", found.name, found.version, tags)
            if not approved:
                announce(
                    context,
                    kind="promotion_rejected",
                    model=found.name,
                    version=found.version,
                    message=tags["mlops.promotion"],
                    details={"gate": self.gate},
                )
        return super().execute_complete(context, event)
