"""Pure Modbus layer shared by the collector and the simulators.

- :mod:`modbus.codec` — decode/encode registers for every data type and byte/word order,
  scaling and "not available" sentinels.
- :mod:`modbus.registermap` — register maps (one YAML file per meter model under
  ``modbus/maps/``), validated at load.
- :mod:`modbus.planner` — coalesce fields into read requests (FC1–FC4 only) and decode
  the responses.

Imports only the standard library, pydantic and PyYAML (no transport: pymodbus lives in the
collector and simulator packages).
"""

from modbus.codec import (
    ByteOrder,
    DataType,
    apply_scaling,
    decode,
    decode_value,
    encode,
    normalize_order,
    register_count,
    to_raw,
)
from modbus.planner import (
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    READ_FUNCTION_CODES,
    ReadRequest,
    decode_plan,
    decode_response,
    plan_reads,
)
from modbus.registermap import (
    Kind,
    Quantity,
    Ratio,
    RegisterField,
    RegisterMap,
    RegisterMapError,
    Table,
    available_models,
    load_register_map,
    parse_register_map,
)

__all__ = [
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "READ_FUNCTION_CODES",
    "ByteOrder",
    "DataType",
    "Kind",
    "Quantity",
    "Ratio",
    "ReadRequest",
    "RegisterField",
    "RegisterMap",
    "RegisterMapError",
    "Table",
    "apply_scaling",
    "available_models",
    "decode",
    "decode_plan",
    "decode_response",
    "decode_value",
    "encode",
    "load_register_map",
    "normalize_order",
    "parse_register_map",
    "plan_reads",
    "register_count",
    "to_raw",
]
