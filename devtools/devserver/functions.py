"""The Lambda side: each function of the template, imported once and called one request at a time."""

from __future__ import annotations

import importlib
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devtools.devserver.log import log
from devtools.lambda_context import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_SECONDS, LambdaContext


@dataclass(frozen=True)
class FunctionConfig:
    """What the server needs to know about one function of the template."""

    logical_id: str
    handler: str  # "ordering.handler.lambda_handler"
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS

    @property
    def folder(self) -> str:
        return self.handler.split(".", 1)[0]

    def context(self) -> LambdaContext:
        return LambdaContext(f"user-credits-{self.folder}-local", self.memory_mb, self.timeout_seconds)


def function_configs(template: dict[str, Any] | None = None) -> dict[str, FunctionConfig]:
    """Function folder -> config, from the template's functions (memory and timeout fall back to Globals)."""
    from devtools.cfn import load_template, resources_of_type

    template = template or load_template()
    defaults = (template.get("Globals") or {}).get("Function") or {}
    configs = {}
    for logical_id, resource in resources_of_type("AWS::Serverless::Function", template).items():
        props = resource.get("Properties") or {}
        memory = props.get("MemorySize", defaults.get("MemorySize", DEFAULT_MEMORY_MB))
        timeout = props.get("Timeout", defaults.get("Timeout", DEFAULT_TIMEOUT_SECONDS))
        config = FunctionConfig(
            logical_id,
            props["Handler"],
            memory if isinstance(memory, int) else DEFAULT_MEMORY_MB,
            timeout if isinstance(timeout, int) else DEFAULT_TIMEOUT_SECONDS,
        )
        configs[config.folder] = config
    return configs


class HandlerRegistry:
    """Imports each function's entry point once and calls it one request at a time per function."""

    def __init__(self, configs: dict[str, FunctionConfig]) -> None:
        self.configs = configs
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._errors: dict[str, str] = {}
        self._locks = {name: threading.Lock() for name in configs}
        self._import_lock = threading.Lock()

    def load(self, folder: str) -> Callable[[dict[str, Any], Any], Any] | None:
        """The function's ``lambda_handler`` (imported on first use); ``None`` and a stored error if it fails."""
        with self._import_lock:
            if folder in self._handlers or folder in self._errors:
                return self._handlers.get(folder)
            config = self.configs.get(folder) or FunctionConfig(folder, f"{folder}.handler.lambda_handler")
            module_name, _, attribute = config.handler.rpartition(".")
            try:
                self._handlers[folder] = getattr(importlib.import_module(module_name), attribute)
            except Exception as exc:  # noqa: BLE001 - the server must keep serving the other functions
                self._errors[folder] = f"{type(exc).__name__}: {exc}"
                log(f"cannot import {config.handler}: {self._errors[folder]}; its routes answer 500")
                if not (isinstance(exc, ModuleNotFoundError) and exc.name == module_name):
                    traceback.print_exc()
            return self._handlers.get(folder)

    def error(self, folder: str) -> str | None:
        return self._errors.get(folder)

    def invoke(self, folder: str, event: dict[str, Any]) -> Any:
        """Run the function on ``event`` (raises what the handler raises)."""
        handler = self.load(folder)
        if handler is None:
            raise HandlerUnavailableError(f"{folder} could not be imported: {self._errors[folder]}")
        config = self.configs.get(folder) or FunctionConfig(folder, f"{folder}.handler.lambda_handler")
        with self._locks.setdefault(folder, threading.Lock()):
            return handler(event, config.context())


class HandlerUnavailableError(RuntimeError):
    """The function's module could not be imported (its route answers 500 with the reason)."""
