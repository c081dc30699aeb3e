"""The report's reproduction, as a CI job runs it: the real CLI in its own process, with a
secret in the environment, in after_script's `sweep` and in `config show`. The template must
not run `id` (its output never appears) nor touch the canary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli_process


@pytest.mark.parametrize("argv", [["config", "show"], ["sweep", "--dry-run"], ["build", "--dry-run", "."]])
def test_the_reported_payload_runs_nothing_on_the_host(tmp_path: Path, argv: list[str]) -> None:
    canary = tmp_path / "CANARY"
    (tmp_path / "ci-toolkit.yaml").write_text(
        "registry-password: '{{ env.REG_PW }}'\n"
        f"job-id: \"{{{{ cycler.__init__.__globals__.os.popen('id; touch {canary}').read() }}}}\"\n"
    )
    env = {"GITLAB_CI": "true", "CI": "true", "CI_JOB_ID": "4242", "REG_PW": "hunter2secret"}
    result = run_cli_process(argv, env=env, cwd=tmp_path, timeout=60)
    assert result.code == 2
    assert "uid=" not in result.out + result.err
    assert result.err.count("error:") == 1 and "ci-toolkit.yaml:2: job-id: template refused" in result.err
    assert not canary.exists()
