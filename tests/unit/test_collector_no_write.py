"""The collector never sends a Modbus write function code: by construction and by source scan."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from collector.guard import ReadOnlyModbus, WriteRefusedError
from modbus import READ_FUNCTION_CODES, ReadRequest, load_register_map, plan_reads

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"
READ_METHODS = {"read_coils", "read_discrete_inputs", "read_holding_registers",
                "read_input_registers"}
# every pymodbus client method that sends something other than FC1-FC4
FORBIDDEN_METHODS = {
    "write_coil", "write_coils", "write_register", "write_registers", "mask_write_register",
    "readwrite_registers", "write_file_record", "read_file_record", "read_fifo_queue",
    "read_exception_status", "report_device_id", "read_device_information",
    "diag_restart_communication", "diag_force_listen_only", "diag_clear_counters",
    "diag_query_data", "diag_change_ascii_input_delimeter", "diag_getclear_modbus_response",
    "diag_clear_overrun_counter", "diag_get_comm_event_counter", "diag_get_comm_event_log",
}


class RecordingClient:
    """Looks like a pymodbus client; records every method that is called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return SimpleNamespace(isError=lambda: False, registers=[0] * kwargs.get("count", 1),
                                   bits=[False] * kwargs.get("count", 1))
        return method


@pytest.mark.parametrize("fc", [0, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43, 99])
def test_guard_refuses_every_non_read_function_code(fc: int) -> None:
    client = RecordingClient()
    guard = ReadOnlyModbus(client)
    request = SimpleNamespace(unit_id=1, function_code=fc, address=0, count=1)
    with pytest.raises(WriteRefusedError, match=f"function code {fc} refused"):
        asyncio.run(guard.read(request))
    assert client.calls == []  # nothing was sent


@pytest.mark.parametrize(("fc", "method"), [(1, "read_coils"), (2, "read_discrete_inputs"),
                                            (3, "read_holding_registers"),
                                            (4, "read_input_registers")])
def test_guard_maps_each_read_function_code_to_its_read_call(fc: int, method: str) -> None:
    client = RecordingClient()
    guard = ReadOnlyModbus(client)
    result = asyncio.run(guard.read(SimpleNamespace(unit_id=7, function_code=fc, address=10,
                                                    count=2)))
    assert client.calls == [method] and len(result) == 2


def test_guard_exposes_only_reads_and_hides_the_client() -> None:
    public = {n for n in dir(ReadOnlyModbus) if not n.startswith("_")}
    assert public == {"connect", "close", "connected", "read"}
    guard = ReadOnlyModbus(RecordingClient())
    with pytest.raises(AttributeError):
        guard.write_register  # noqa: B018
    with pytest.raises(AttributeError):
        guard.client  # noqa: B018
    with pytest.raises(AttributeError):
        guard.extra = 1  # type: ignore[attr-defined]


def test_planned_requests_are_reads_for_every_shipped_map() -> None:
    from modbus import available_models

    for model in available_models():
        for request in plan_reads(load_register_map(model), 1, max_gap=10):
            assert request.function_code in READ_FUNCTION_CODES
    with pytest.raises(ValueError, match="not a read function code"):
        ReadRequest(1, 6, 0, 1, ())


def _attribute_names(tree: ast.AST) -> set[str]:
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
              and isinstance(n.value, str)}
    names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names


def test_collector_source_names_no_write_call_and_reads_only_in_the_guard() -> None:
    """Static scan: no module names a pymodbus write/other-FC method; only guard.py names
    the four read methods; nothing imports pymodbus' PDU classes or bypasses the guard."""
    files = sorted(COLLECTOR.rglob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _attribute_names(tree)
        bad = names & FORBIDDEN_METHODS
        assert not bad, f"{path.name} refers to {sorted(bad)}"
        writeish = {n for n in names if n.startswith(("write_", "diag_"))}
        assert not writeish, f"{path.name} refers to {sorted(writeish)}"
        if path.name == "guard.py":  # the raw PDU door of pymodbus stays shut too
            assert not names & {"execute", "pdu_send", "ctx", "transaction"}
        else:
            assert not names & READ_METHODS, f"{path.name} calls pymodbus directly"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("pymodbus.pdu"), path.name
                if node.module.startswith("pymodbus"):
                    assert path.name == "guard.py", f"{path.name} imports pymodbus"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("pymodbus") or path.name == "guard.py"


def test_collector_imports_only_core_of_this_project() -> None:
    ours = {"collector", "core", "ingest", "api", "simulators", "benchmarks", "accounting",
            "modbus", "fleet", "storage", "app",
            "tests", "perf"}
    for path in sorted(COLLECTOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ours or top in ("collector", "core", "modbus"), (path.name, name)
