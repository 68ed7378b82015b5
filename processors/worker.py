"""Runs the processors: one faust worker per process, N processes as one consumer group."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import faust

from voxledger.config import Settings
from voxledger.processors.app import create_app
from voxledger.processors.cost import load_catalog
from voxledger.processors.cost_agent import CostAgent
from voxledger.processors.metrics import serve_metrics
from voxledger.processors.policy_agent import PolicyAgent, tenant_policies
from voxledger.processors.redact_agent import RedactAgent, pseudonym_secret
from voxledger.processors.redaction import Redactor

log = logging.getLogger("voxledger.processors")


def run_worker(settings: Settings, worker_index: int = 0, loglevel: str = "info") -> None:
    """Run one worker in this process until SIGTERM or SIGINT (graceful: commits, then stops)."""
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)  # logs every call at INFO
    redactor = Redactor()  # loads the language models once, before joining the group
    app = create_app(settings)
    topics = settings.topics
    RedactAgent(settings, redactor, pseudonym_secret(settings)).register(app)
    policies = tenant_policies(settings)  # a bad policy file stops start-up, naming the line
    PolicyAgent(settings, policies).register(app, topics.redacted, topics.findings)
    catalog = load_catalog(settings.processors.price_catalog)
    CostAgent(settings, catalog).register(app, topics.redacted, topics.costs)
    metrics_port = settings.processors.metrics_port
    serve_metrics(
        settings.processors.metrics_host, metrics_port + worker_index if metrics_port else 0
    )
    faust.Worker(app, loglevel=loglevel, override_logging=True).execute_from_commandline()


def run_workers(settings: Settings, workers: int) -> int:
    """Run `workers` worker processes and wait; SIGTERM/SIGINT stop them all."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "voxledger", "processors", "--worker-index", str(index)]
        )
        for index in range(workers)
    ]

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return max(child.wait() for child in children)
