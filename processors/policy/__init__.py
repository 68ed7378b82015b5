"""Compliance policy: versioned rules judge each redacted session into findings and a verdict.

The rules, their parameters and phrase sets live in `default.yaml`; `load_policy` validates
it (and a tenant override merged over it). `SessionPolicy` judges one session envelope by
envelope; `check_log` judges every session of a JSONL file.
"""

from voxledger.processors.policy._log import CheckResult, SessionResult, check_log
from voxledger.processors.policy._model import Policy, Rule, load_policy
from voxledger.processors.policy._session import (
    FINDING_NAMESPACE,
    Evidence,
    Finding,
    SessionPolicy,
    Verdict,
)
from voxledger.processors.policy.exceptions import EventLogError, PolicyError, PolicyFileError

__all__ = [
    "FINDING_NAMESPACE",
    "CheckResult",
    "EventLogError",
    "Evidence",
    "Finding",
    "Policy",
    "PolicyError",
    "PolicyFileError",
    "Rule",
    "SessionPolicy",
    "SessionResult",
    "Verdict",
    "check_log",
    "load_policy",
]
