"""The documentation site builds with no warning, documents what the code has, and its commands run.

- ``mkdocs build --strict`` (mkdocs.yml sets ``strict: true``): a broken link or anchor, a page left out
  of the navigation, a missing snippet file or a docstring that mkdocstrings cannot parse fails the build.
  mkdocs is installed by the ``docs`` extra; without it this test fails, it does not skip.
- Every constructor argument of every built-in plugin with a page is named on that page, and every recipe
  config of the plugin's config folders is listed there.
- The shell blocks of the getting-started and plugin-authoring pages run, in order, in a copy of the
  repository, on tiny settings: ``CLIPADAPT_DATA`` and ``CLIPADAPT_CACHE`` point at a temporary folder
  whose cached tiny CLIP is a random-init open_clip checkpoint, ``pip`` installs into a temporary target
  (no network, the venv is left unchanged), and every ``python tools/train.py`` / ``tools/test.py``
  command gets :data:`TINY_OPTIONS` appended (a 4-class world, one epoch of batch 4). ``make quickstart``
  and ``make test`` are checked with ``make -n``: the second is this test suite, and the first needs the
  default world and the pretrained tiny CLIP (minutes). Their steps are the commands of the next block.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine import tiny_clip_path
from clipadapt.plugins import registered_plugins
from clipadapt.registry import PLUGINS
from tests.helpers import SMALL_WORLD

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
VENV_BIN = Path(sys.executable).parent

WORLD = SMALL_WORLD
_OPTION = lambda v: "[" + ",".join(v) + "]" if isinstance(v, list) else v  # noqa: E731
TINY_OPTIONS = [f"synthetic_world.{k}={_OPTION(v)}" for k, v in WORLD.items()] + [
    "train_cfg.max_epochs=1",
    "train_dataloader.batch_size=4",
    "train_dataloader.dataset.num_shots=4",
    "val_dataloader.batch_size=8",
    "test_dataloader.batch_size=8",
]
RUNNER_TOOL = re.compile(r"^python\s+(\S*/)?tools/(train|test)\.py\s")

# Plugin page -> (plugin type, config folders whose every file the page must list).
PLUGIN_PAGES = {
    "plugins/vpt.md": ("VPT", ["vpt"]),
    "plugins/maple.md": ("MaPLe", ["maple"]),
    "plugins/coop.md": ("CoOp", ["coop"]),
    "plugins/cocoop.md": ("CoCoOp", ["cocoop"]),
    "plugins/ivlp.md": ("IVLP", ["ivlp", "promptsrc"]),
    "plugins/longclip.md": ("LongCLIP", ["longclip"]),
    "plugins/moe.md": ("MoEUpcycle", ["moe"]),
    "plugins/fgclip.md": ("RegionAlign", ["fgclip"]),
    "plugins/cloc.md": ("CLOCPrompter", ["cloc"]),
}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OMP_NUM_THREADS="1", **extra)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"mkdocs build --strict failed (pip install -e '.[docs]'):\n{log[-6000:]}"
    assert not re.search(r"^(WARNING|ERROR)\b", log, flags=re.M), log[-6000:]
    return out


def test_site_builds_strictly_with_every_page_and_the_api(site: Path) -> None:
    for page in ["getting-started", "plugin-authoring", "concepts/plugins", "plugins/maple", "distributed"]:
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "factory" / "index.html").read_text()
    assert 'id="clipadapt.factory.create_model"' in api  # generated from the docstring
    for image in ["lora_curves.png", "maple_tiny_b2n.png", "benchmark_vit-b-16_cpu.png", "synthetic_world.png"]:
        assert (site / "assets" / "plots" / image).is_file(), image


def _page_text(site: Path, page: str) -> str:
    html = (site / page.removesuffix(".md") / "index.html").read_text()
    return re.sub(r"<[^>]+>", "", html)  # the rendered text, snippets expanded


@pytest.mark.parametrize("page", sorted(PLUGIN_PAGES))
def test_plugin_page_documents_every_key_and_recipe(site: Path, page: str) -> None:
    plugin, folders = PLUGIN_PAGES[page]
    assert plugin in registered_plugins()
    text = _page_text(site, page)
    keys = [p for p in inspect.signature(PLUGINS.get(plugin).__init__).parameters if p != "self"]
    assert keys and not [k for k in keys if k not in text], f"{page} does not name the {plugin} keys"
    configs = sorted(p.relative_to(ROOT).as_posix() for f in folders for p in (ROOT / "configs" / f).glob("*.py"))
    assert configs and not [c for c in configs if c not in text], f"{page} does not list every recipe config"


def shell_commands(markdown: str) -> list[list[str]]:
    """The ```bash blocks of a page, each as its logical commands (continuations joined, heredocs kept whole)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.M | re.S)
    out = []
    for block in blocks:
        commands: list[str] = []
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            heredoc = re.search(r"<<\s*'?(\w+)'?", line)
            if heredoc:  # the heredoc's body up to its terminator belongs to this command
                end = lines.index(heredoc.group(1), i + 1)
                line = "\n".join([line, *lines[i + 1 : end + 1]])
                i = end
            if line.strip():
                commands.append(line)
            i += 1
        out.append(commands)
    return out


def tiny(command: str) -> str:
    """The command on tiny settings: runner tools get TINY_OPTIONS appended (a later --cfg-options merges in)."""
    if RUNNER_TOOL.match(command):
        return f"{command} --cfg-options {' '.join(shlex.quote(o) for o in TINY_OPTIONS)}"
    return command


def test_shell_block_parsing() -> None:
    page = "```bash\nmake a   # x\npython tools/train.py c.py \\\n    --work-dir w\n```\n```python\nno\n```\n"
    page += "```bash\npython - <<'EOF'\nprint(1)\nEOF\necho done\n```\n"
    blocks = shell_commands(page)
    assert blocks == [
        ["make a   # x", "python tools/train.py c.py  --work-dir w"],
        ["python - <<'EOF'\nprint(1)\nEOF", "echo done"],
    ]
    assert tiny(blocks[0][1]).endswith("test_dataloader.batch_size=8") and "--cfg-options" in tiny(blocks[0][1])
    assert tiny(blocks[1][0]) == blocks[1][0]


def _repo_copy(tmp_path: Path) -> Path:
    """The files git would commit (tracked and new, not ignored): no venv, data, checkpoints or work dirs."""
    repo = tmp_path / "repo"
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:  # not a git checkout: copy the tree without what .gitignore names
        ignore = shutil.ignore_patterns(".venv", ".git", "work_dirs", "site", "data", "checkpoints", "__pycache__",
                                        "*.egg-info", "build", "dist", ".pytest_cache", ".ruff_cache")  # fmt: skip
        return Path(shutil.copytree(ROOT, repo, ignore=ignore))
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted from the work tree is still listed until the deletion is staged
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    return repo


def _tiny_env(tmp_path: Path) -> dict[str, str]:
    """Caches in tmp_path; the cached tiny CLIP is a random-init open_clip checkpoint (pretraining takes minutes)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    torch.manual_seed(0)
    config = json.loads((ROOT / "clipadapt" / "model_configs" / "tiny-vit.json").read_text())
    torch.save(open_clip.model.CLIP(**config).state_dict(), cache / tiny_clip_path().name)  # the recipe's name
    # The world the pages' commands ask for, where data_dir() points (a world of other parameters would
    # live in a hash-keyed sibling folder, and the page's `data_dir() / ...` paths would not find it).
    ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    site_packages = tmp_path / "site-packages"
    return _env(
        CLIPADAPT_CACHE=str(cache),
        CLIPADAPT_DATA=str(tmp_path / "world"),
        PIP_TARGET=str(site_packages),
        PIP_NO_DEPS="1",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip reads a "no-" option's variable inverted: 0 = --no-build-isolation
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONPATH=os.pathsep.join([str(site_packages), os.environ.get("PYTHONPATH", "")]),
    )


def _check_make(command: str, repo: Path, env: dict[str, str]) -> None:
    target = shlex.split(command.split("#")[0])[1]
    installed = [arg for part in ("core", "dev", "docs", "mmdet") for arg in ("-o", f".venv/.stamp-{part}")]
    done = subprocess.run(["make", "-n", *installed, target], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, f"make {target}: {done.stderr}"
    recipe = done.stdout
    expected = {"quickstart": "tools/quickstart.py", "test": "pytest"}[target]
    assert expected in recipe, recipe
    if target == "quickstart":
        assert (repo / "tools" / "quickstart.py").is_file()


def run_page(page: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """Run every shell block of ``page`` in order in a copy of the repository; the copy and each output."""
    repo = _repo_copy(tmp_path)
    env = _tiny_env(tmp_path)
    outputs = []
    for number, block in enumerate(shell_commands((DOCS / page).read_text()), 1):
        for command in block:
            if command.startswith("make "):
                _check_make(command, repo, env)
                continue
            script = f"set -euo pipefail\n{tiny(command)}\n"
            done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
            log = done.stdout + done.stderr
            assert done.returncode == 0, f"{page}, block {number}: {command}\n{log[-4000:]}"
            outputs.append(done.stdout)
    return repo, outputs


@pytest.mark.slow
def test_getting_started_commands_run(tmp_path: Path) -> None:
    repo, outputs = run_page("getting-started.md", tmp_path)
    checkpoint = Path((repo / "work_dirs" / "vpt" / "last_checkpoint").read_text().strip())
    assert checkpoint.is_file() and checkpoint.stat().st_size < 100_000  # the adapter, not the CLIP
    assert (repo / "work_dirs" / "vpt" / "curves.png").stat().st_size > 10_000
    assert "'a red circle.'" in outputs[-1] and "weights: " in outputs[-1]


@pytest.mark.slow
def test_plugin_authoring_commands_run(tmp_path: Path) -> None:
    repo, outputs = run_page("plugin-authoring.md", tmp_path)
    assert "'LoRA'" in outputs[1]
    assert (tmp_path / "site-packages" / "clipadapt_lora").is_dir()  # installed where PIP_TARGET says
    assert (repo / "work_dirs" / "lora" / "curves.png").is_file()
    state = torch.load(Path((repo / "work_dirs" / "lora" / "last_checkpoint").read_text().strip()),
                       map_location="cpu", weights_only=False)["state_dict"]  # fmt: skip
    assert sum(k.endswith(("lora_a", "lora_b")) for k in state) == 16
