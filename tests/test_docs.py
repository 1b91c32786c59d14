import importlib.util
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest
from typer.testing import CliRunner

import tiercli
from conftest import ROOT
from tiercli.cli import app
from tiercli.docgen import DOC, helps, render

DOCS = ROOT / "docs"


def test_cli_reference_is_generated_from_the_help():
    assert DOC.read_text() == render(), "docs/cli.md is out of date: run python -m tiercli.docgen"


def test_every_help_keeps_its_examples_one_per_line():
    """A docstring must mark an example block with click's real \\b (a backspace in the string):
    a literal backslash-b is printed as is, and the examples are run together into a paragraph."""
    with_examples = []
    for path, command, text in helps():
        assert "\\b" not in text and "\b" not in text, f"{path} --help prints a \\b marker:\n{text}"
        examples = [line.strip() for line in (command.help or "").splitlines() if line.strip().startswith("tiercli ")]
        lines = {line.strip() for line in text.splitlines()}
        for example in examples:
            assert example in lines, f"{path} --help does not show this example on a line of its own: {example}"
        if examples:
            with_examples.append(path)
    assert {"tiercli replay", "tiercli report", "tiercli tune-ttl", "tiercli sample"} <= set(with_examples)


# Every `##`/`###` heading of README.md before the manual moved into docs/ (at 60b1f58): each
# section was moved, none dropped, so each is still a heading of some page.
MOVED_HEADINGS = [
    'Quick start (a fresh machine)', 'What it reports', 'Log format', 'Replay semantics', 'Keys and scope',
    'Cost', 'Latency', 'How L3 searches', 'Is a cached answer right?', 'Answer rules', 'The noise floor',
    'What L3 embeds', 'Saved runs and reports', 'L2 on a real Redis',
    'tune-ttl: choosing TTLs under a staleness budget', 'How the sweep shares work', 'Compare the options',
    'The sample', 'Provider prompt caching: the rules', 'Running on Ray', 'The exact partitioned replay',
    'Embedding on Ray', 'What Ray costs and what it would take (a paper estimate)',
    'Live mode: checking against the real API', 'Recording logs from your application',
    'Run it in your application', 'Bring your logs', '`tiercli inspect`: what tiercli reads in a log',
    'OpenTelemetry traces (OTLP JSON), including OpenInference: `--format otel`',
    'Langfuse (`--format langfuse`)', 'LiteLLM (`--format litellm`)', 'Helicone (`--format helicone`)',
    'Any JSON, CSV or Parquet log with a field map (`--format map`)', 'Settings', 'The sample log',
    'Before and after a per-task configuration', 'Benchmarks', 'Development',
]


def headings(text: str) -> list[str]:
    """A page's Markdown headings, any level, not counting `#` lines inside code blocks."""
    return re.findall(r"^#+ (.*)$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), re.M)


def test_every_section_of_the_old_readme_is_a_heading_in_the_docs():
    found = {heading for page in DOCS.rglob("*.md") for heading in headings(page.read_text())}
    assert [h for h in MOVED_HEADINGS if h not in found] == []


def test_the_readme_is_short_and_links_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert {"docs/getting-started.md", "docs/cli.md", "docs/logs/index.md"} <= linked
    for target in linked:  # relative links, so that they work on GitHub too (mkdocs checks docs/ itself)
        assert (ROOT / target).exists(), f"README links {target}, which is not there"


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")}
    assert {page for page in pages if f": {page}\n" not in nav} == set()


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (the test extra has it)")
def test_the_site_builds_strict(tmp_path):
    """mkdocs build --strict: a broken link or anchor, or a page left out of the nav, fails."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "logs" / "langfuse" / "index.html").exists()


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"tiercli {metadata.version('tiercli')}\n"
    assert metadata.version("tiercli") == tiercli.__version__  # pyproject.toml and tiercli/__init__.py agree


def test_help_lists_the_commands_in_the_order_a_user_needs_them():
    text = CliRunner().invoke(app, ["--help"], terminal_width=80).stdout
    listed = text.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == [
        "sample", "inspect", "replay", "report", "tune-ttl", "compare", "verify", "runs"]
    for line in listed:  # one line each, whole: not click's sentence cut at 45 characters
        assert line.rstrip().endswith(".") and not line.rstrip().endswith("..."), line
    assert "--install-completion" in text and "--version" in text
