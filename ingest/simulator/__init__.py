"""A local stand-in for the OpenAI Realtime API that plays scripted calls, GA and beta."""

from voxledger.ingest.simulator.exceptions import ScenarioError, SimulatorError
from voxledger.ingest.simulator.scenarios import (
    AssistantTurn,
    Scenario,
    UserTurn,
    is_beta_model,
    load_all_scenarios,
    load_scenario,
    parse_scenario,
    scenario_names,
)
from voxledger.ingest.simulator.server import SimulatorServer, run_simulator, start_simulator

__all__ = [
    "AssistantTurn",
    "Scenario",
    "ScenarioError",
    "SimulatorError",
    "SimulatorServer",
    "UserTurn",
    "is_beta_model",
    "load_all_scenarios",
    "load_scenario",
    "parse_scenario",
    "run_simulator",
    "scenario_names",
    "start_simulator",
]
