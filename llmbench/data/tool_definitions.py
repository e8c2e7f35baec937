"""A tool-calling sample's functions: checked, in OpenAI's `tools` form, and each one's parameters by name.

A sample's `tools` field is a list (or a JSON text of one) of `{"type": "function", "function": {"name",
"description", "parameters"}}`; a bare `{"name", "description", "parameters"}` is taken as the function
itself. `parameters` is a JSON Schema object (no parameters: an empty object schema).
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmbench.errors import DataError
from llmbench.types import ToolDefinition

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # what OpenAI's API accepts as a function name
MAX_TOOLS = 128  # functions offered in one request (OpenAI's own limit)


def tool_definitions(value: Any, where: str) -> tuple[ToolDefinition, ...]:
    """The sample's functions as OpenAI tools; anything else is a DataError that names `where`."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise DataError(f"{where}: 'tools' is not valid JSON") from None
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: 'tools' must be a non-empty list of function definitions")
    if len(value) > MAX_TOOLS:
        raise DataError(f"{where}: {len(value)} tools, more than the {MAX_TOOLS} one request may offer")
    tools: list[ToolDefinition] = []
    names: set[str] = set()
    for i, item in enumerate(value):
        function = _function(item, f"{where}: tools[{i}]")
        if function["name"] in names:
            raise DataError(f"{where}: tools[{i}]: the function name '{function['name']}' is given twice")
        names.add(function["name"])
        tools.append({"type": "function", "function": function})
    return tuple(tools)


def _function(item: Any, where: str) -> dict[str, Any]:
    if isinstance(item, dict) and item.get("type") == "function":
        item = item.get("function")
    if not isinstance(item, dict):
        raise DataError(f"{where}: a tool is an object with a function's name, description and parameters")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DataError(
            f"{where}: the function name must be 1-64 letters, digits, '_', '.' or '-' (got {name!r})"
        )
    parameters = item.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict) or not isinstance(parameters.get("properties", {}), dict):
        raise DataError(f"{where}: '{name}': parameters must be a JSON Schema object with properties")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(r in parameters.get("properties", {}) for r in required):
        raise DataError(f"{where}: '{name}': every required parameter must be one of its properties")
    function = {"name": name, "parameters": parameters}
    if isinstance(item.get("description"), str):
        function["description"] = item["description"]
    return function


def parameter_schemas(tools: tuple[ToolDefinition, ...]) -> dict[str, dict[str, Any]]:
    """Each function's parameter schema, by function name."""
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}
