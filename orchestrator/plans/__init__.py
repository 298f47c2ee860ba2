"""recovery_strategies.json: typed models, loading with layered defaults, and the one validation translator."""

from orchestrator.plans.load import env_defaults, load_plans, parse_plans
from orchestrator.plans.models import (
    Approval,
    Backoff,
    Breaker,
    Budget,
    CrashLoop,
    Limits,
    Plan,
    PlanSet,
    Step,
    StepDefaults,
    Verify,
)

__all__ = ["Approval", "Backoff", "Breaker", "Budget", "CrashLoop", "Limits", "Plan", "PlanSet",
           "Step", "StepDefaults", "Verify", "env_defaults", "load_plans", "parse_plans"]
