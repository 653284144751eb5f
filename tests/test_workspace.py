"""Opening targets: client settings from config, emulator state persisted, Quick BI credentials checked first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.application.config import Config, TargetConfig
from reconciler.application.workspace import client_settings, open_target
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import DEMO_ORG


def test_client_settings_follow_the_target() -> None:
    settings = client_settings(
        TargetConfig.model_validate(
            {"quickbi": {"region": "cn-hongkong", "signature": "v1"}, "qps": 40, "max_concurrency": 4}
        )
    )
    assert (settings.write_qps, settings.smartq_qps, settings.directory_qps) == (40, 40, 30)
    assert settings.signature == "v1" and settings.max_concurrency == 4
    slow = client_settings(TargetConfig.model_validate({"quickbi": {"region": "cn-hangzhou"}, "qps": 10}))
    assert slow.directory_qps == 10 and slow.paced


def test_an_in_process_emulator_is_unpaced_unless_the_target_sets_a_rate() -> None:
    emulator = {"emulator": {"org": "o.yaml", "state": "s.json"}}
    assert not client_settings(TargetConfig.model_validate(emulator)).paced
    assert client_settings(TargetConfig.model_validate({**emulator, "qps": 20})).paced
    assert client_settings(TargetConfig.model_validate({"quickbi": {"region": "cn-hangzhou"}})).paced


def test_emulator_state_is_saved_on_the_way_out_even_after_an_error(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    config = Config.model_validate(
        {"default_target": "d", "targets": {"d": {"emulator": {"org": str(DEMO_ORG), "state": str(state)}}}}
    )

    async def fail_inside() -> None:
        async with open_target(config, None) as session:
            assert session.cube_readback == "llm_cube" and session.service.cap == 100
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        asyncio.run(fail_inside())
    assert state.exists()


def test_a_quickbi_target_without_credentials_fails_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.adapters.quickbi._credentials.configured_sources", lambda: [])
    monkeypatch.setattr("reconciler.adapters.quickbi._credentials._metadata_service_answers", lambda: False)
    config = Config.model_validate(
        {"default_target": "p", "targets": {"p": {"quickbi": {"endpoint": "http://127.0.0.1:9"}}}}
    )

    async def open_it() -> None:
        async with open_target(config, None):
            pytest.fail("opened without credentials")

    with pytest.raises(ReconcilerError, match="no Alibaba Cloud credentials"):
        asyncio.run(open_it())
