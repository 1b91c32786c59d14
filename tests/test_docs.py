from tiercli.docgen import DOC, render


def test_cli_reference_is_generated_from_the_help():
    assert DOC.read_text() == render(), "docs/cli.md is out of date: run python -m tiercli.docgen"
