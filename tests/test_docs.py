from tiercli.docgen import DOC, helps, render


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
