"""Command-line conventions: --json where a command lists things, completion scripts, the kubectl plugin,
choices shown in help, one option name for one meaning."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import pytest
from click.testing import CliRunner

from cniscope.cli import cli, main
from cniscope.models import MODELS
from tests.paths import REPO


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), terminal_width=200)
    return result.exit_code, result.output


def test_models_list_as_json_and_each_model_as_json() -> None:
    code, out = invoke("models", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)["models"]] == list(MODELS)
    code, out = invoke("models", "show", "calico-vxlan", "--json")
    page = json.loads(out)
    assert code == 0 and page["name"] == "calico-vxlan" and page["encaps"][0]["port"] == 4789


def test_models_show_and_analyze_model_list_their_choices() -> None:
    _, shown = invoke("models", "show", "--help")
    _, analyze = invoke("analyze", "--help")
    for name in MODELS:
        assert name in shown.replace("\n", " ")
    assert "--model [" + "|".join(MODELS) + "]" in analyze
    code, out = invoke("analyze", "--model", "flannel", "x.pcap")
    assert code == 2 and "'flannel' is not one of 'kube-router'" in out


def test_lab_list_as_json() -> None:
    code, out = invoke("lab", "list", "--json")
    assert code == 0 and isinstance(json.loads(out)["labs"], list)


def test_capture_dry_run_as_json_holds_the_same_commands() -> None:
    args = ["capture", "--via", "ssh", "--nodes", "n1,admin@n2", "--filter", "port 80", "--duration", "5", "--dry-run"]
    _, text = invoke(*args)
    code, out = invoke(*args, "--json")
    planned = json.loads(out)
    assert code == 0 and [n["name"] for n in planned["nodes"]] == ["n1", "n2"] and planned["filter"] == "port 80"
    commands = [shlex.join(s["argv"]) for n in planned["nodes"] for s in n["steps"] if s["stdin"] is None]
    assert len(commands) == 2 * 3 and all(f"  {c}\n" in text for c in commands)


def test_lab_capture_says_duration_like_capture() -> None:
    _, lab = invoke("lab", "capture", "--help")
    _, capture = invoke("capture", "--help")
    assert "--duration" in lab and "--duration" in capture
    assert "--timeout" not in lab  # the old name still works, unshown


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef cniscope"),
                                          ("fish", "complete --no-files --command cniscope")])
def test_completion_scripts(shell: str, marker: str) -> None:
    code, out = invoke("completion", shell)
    assert code == 0 and marker in out and "_CNISCOPE_COMPLETE" in out


def test_completion_answers_as_the_bash_script_asks() -> None:
    env = {**os.environ, "COMP_WORDS": "cniscope lab fa", "COMP_CWORD": "2", "_CNISCOPE_COMPLETE": "bash_complete",
           "PYTHONPATH": str(REPO / "src")}
    answer = subprocess.run([sys.executable, "-m", "cniscope"], capture_output=True, text=True, env=env, timeout=60)
    assert answer.stdout.split() == ["plain,fault"]


def test_kubectl_plugin_entry_point_captures_through_kubectl(tmp_path: Path) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["kubectl-cniscope"].partition(":")
    assert callable(getattr(import_module(module), function))
    # kubectl finds plugins on PATH by name: `kubectl cniscope ...` runs `kubectl-cniscope ...`
    shim = tmp_path / "kubectl-cniscope"
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO / 'src')!r})\n"
                    f"from {module} import {function}\nsys.exit({function}())\n")
    shim.chmod(0o755)
    kubectl = subprocess.run(["which", "kubectl"], capture_output=True, text=True).stdout.strip()
    if not kubectl:
        pytest.skip("needs kubectl (its plugin mechanism runs the entry point)")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    run = subprocess.run([kubectl, "cniscope", "capture", "--nodes", "node1", "--dry-run"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "capture plan: 1 node(s) via kubectl" in run.stdout and "kubectl exec -n default cniscope-capture-" in run.stdout


def test_main_takes_defaults_like_the_plugin() -> None:
    assert main(["capture", "--nodes", "n1", "--dry-run"], defaults={"capture": {"via": "kubectl"}}) == 0
