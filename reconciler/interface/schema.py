"""JSON Schemas of the policy and config formats, generated from the models that validate them, for editors
(the YAML language server) and other tools."""

from __future__ import annotations

import json
from typing import Any

from reconciler.application.config import Config
from reconciler.core.policy import PolicyFile

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def policy_schema() -> dict[str, Any]:
    schema = PolicyFile.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "title": "reconciler policy file (version 1)", **_untitled(schema)}


def config_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(mode="validation")
    schema["properties"].pop("base", None)  # set by the loader, not written by users
    return {"$schema": SCHEMA_DIALECT, "title": "reconciler configuration (reconciler.yaml)", **_untitled(schema)}


def _untitled(schema: dict[str, Any]) -> dict[str, Any]:
    schema.pop("title", None)
    return schema


def schemas() -> dict[str, str]:
    """File name -> text, stable, so that the copies in the repository can be checked for freshness."""
    return {
        "policy.schema.json": json.dumps(policy_schema(), indent=1, sort_keys=True) + "\n",
        "config.schema.json": json.dumps(config_schema(), indent=1, sort_keys=True) + "\n",
    }
