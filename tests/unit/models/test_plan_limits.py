"""Plan and chain limits (configurable through PlanLimits / Settings) and how a chain becomes a plan."""

from __future__ import annotations

import json

from ains.core.platform.settings import Settings
from ains.models.chains import MAX_CHAIN_STEPS, ChainCreate
from ains.models.plans import MAX_PLAN_DEPTH, MAX_PLAN_STEPS, PlanCreate, PlanLimits, validate_plan


def _codes(plan: PlanCreate, limits: PlanLimits = PlanLimits(), **kwargs: bool) -> list[str]:
    return [p.code for p in validate_plan(plan, None, limits, **kwargs)]


def test_defaults_match_settings() -> None:
    defaults = {name: Settings.model_fields[name].default for name in ("max_plan_steps", "max_plan_depth")}
    assert defaults == {"max_plan_steps": MAX_PLAN_STEPS, "max_plan_depth": MAX_PLAN_DEPTH}
    assert Settings.model_fields["max_chain_steps"].default == MAX_CHAIN_STEPS == 1000


def test_a_thousand_step_plan_is_valid_and_one_more_is_not() -> None:
    steps = [{"name": f"s{i}", "type": "echo", "depends_on": [f"s{i // 2}"] if i else []} for i in range(1000)]
    assert _codes(PlanCreate.model_validate({"steps": steps})) == []
    steps.append({"name": "extra", "type": "echo"})
    assert _codes(PlanCreate.model_validate({"steps": steps})) == ["too_many_steps"]
    assert _codes(PlanCreate.model_validate({"steps": steps}), PlanLimits(max_steps=2000)) == []


def test_depth_limit_is_configurable() -> None:
    steps = [{"name": f"s{i}", "type": "echo", "depends_on": [f"s{i - 1}"] if i else []} for i in range(60)]
    plan = PlanCreate.model_validate({"steps": steps})
    assert _codes(plan) == []
    assert _codes(plan, PlanLimits(max_depth=60)) == []
    assert _codes(plan, PlanLimits(max_depth=59)) == ["too_deep"]


def test_long_chain_depends_on_its_previous_step_and_may_reference_any_earlier_one() -> None:
    steps = [
        {"name": f"s{i}", "type": "echo", "input": {"first": {"$ref": "steps.s0.output"}} if i else {}}
        for i in range(1000)
    ]
    chain = ChainCreate.model_validate({"steps": steps})
    plan_steps = chain.as_plan_steps()
    assert [s.depends_on for s in plan_steps[:3]] == [[], ["s0"], ["s1"]]
    # The spec stays linear in the chain's length (it was quadratic with every earlier step as a dependency).
    assert len(json.dumps([s.model_dump(mode="json") for s in plan_steps])) < 300_000
    plan = PlanCreate(steps=plan_steps)
    limits = PlanLimits(max_steps=1000, max_depth=1000)
    assert _codes(plan, limits, reference_ancestors=True) == []
    # Plans keep the stricter rule: a reference names a direct dependency.
    assert set(_codes(plan, limits)) == {"reference_without_dependency"}


def test_chain_cannot_reference_a_later_step() -> None:
    chain = ChainCreate.model_validate(
        {
            "steps": [
                {"name": "a", "type": "echo", "input": {"x": {"$ref": "steps.b.output"}}},
                {"name": "b", "type": "echo"},
            ]
        }
    )
    assert _codes(PlanCreate(steps=chain.as_plan_steps()), reference_ancestors=True) == ["reference_without_dependency"]
