"""A Redis password never shows: in every form redis-py reads one (userinfo, the `password`
query field, URL-encoded, with a raw '@', a lone user name, unix:// URLs), on every path
(success, wrong password, server down, bad db, a URL refused), in stdout, stderr, --json, the
saved files and `report`. The CLI runs against a real redis-server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, quote_plus

import pytest
from typer.testing import CliRunner

from logs import call, tag, write
from tiercli.cli import app
from tiercli.redis.server import EmbeddedRedis, free_port

# An '@' and a space: both survive in a URL (redis-py reads up to the last '@'), and each
# fragment is distinctive, so a partial leak ("redis://:***@kX9 PW9@...") is caught too.
PASSWORD = "Zq7@kX9 PW9"
FRAGMENTS = ("Zq7", "kX9", "PW9")


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f for f in FRAGMENTS if f.encode() in data]


def files_that_leak(home: Path) -> list[str]:
    return [str(p) for p in sorted(home.rglob("*")) if p.is_file() and leaks(p.read_bytes())]


@pytest.fixture(scope="module")
def server():
    with EmbeddedRedis(password=PASSWORD, unix_socket=True) as running:
        yield running


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    records = [call(i * 10.0, lead=f"L{i % 3}", prompt=f"question {i % 4}") for i in range(12)]
    return write(tmp_path_factory.mktemp("log") / "log.jsonl", records + [tag(55.0, lead="L1")])


def cli(home: Path, *args) -> SimpleNamespace:
    """The CLI in process (a process start per call would cost seconds, and these tests make
    dozens): its stdout and stderr apart, and any exception that escapes it fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False,
                                env={"TIERCLI_HOME": str(home), "COLUMNS": "200", "TIERCLI_DEBUG": None})
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def assert_nothing_leaks(home: Path, *results: SimpleNamespace) -> None:
    for result in results:
        assert not leaks(result.stdout), result.stdout
        assert not leaks(result.stderr), result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    assert not files_that_leak(home)


def good_urls(server: EmbeddedRedis) -> dict[str, tuple[str, str]]:
    """Every form redis-py accepts, with how tiercli shows it."""
    host = f"127.0.0.1:{server.port}"
    return {
        "userinfo, raw '@' and space": (f"redis://:{PASSWORD}@{host}/0", f"redis://:***@{host}/0"),
        "userinfo, URL-encoded": (f"redis://:{quote(PASSWORD, safe='')}@{host}/0", f"redis://:***@{host}/0"),
        "user:password": (f"redis://default:{quote(PASSWORD, safe='')}@{host}/0", f"redis://default:***@{host}/0"),
        "query, URL-encoded": (f"redis://{host}/0?password={quote(PASSWORD, safe='')}",
                               f"redis://{host}/0?password=***"),
        "query, + for space, with a user": (f"redis://{host}/0?username=default&password={quote_plus(PASSWORD)}",
                                            f"redis://{host}/0?username=default&password=***"),
        "unix socket, query": (f"unix://{server.socket_path}?db=0&password={quote(PASSWORD, safe='')}",
                               f"unix://{server.socket_path}?db=0&password=***"),
        "unix socket, userinfo": (f"unix://:{quote(PASSWORD, safe='')}@{server.socket_path}",
                                  f"unix://:***@{server.socket_path}"),
    }


@pytest.mark.parametrize("form", ["userinfo, raw '@' and space", "userinfo, URL-encoded", "user:password",
                                  "query, URL-encoded", "query, + for space, with a user", "unix socket, query",
                                  "unix socket, userinfo"])
def test_each_form_authenticates_and_never_shows_the_password(server, log, tmp_path, form):
    url, shown = good_urls(server)[form]
    home = tmp_path / "home"
    as_json = cli(home, "replay", log, "--tiers", "l1,l2", "--redis-url", url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    human = cli(home, "replay", log, "--tiers", "l1,l2", "--redis-url", url)
    assert human.returncode == 0, human.stderr
    assert f"L2 in Redis at {shown}" in human.stdout  # it really used Redis, and says where
    report = cli(home, "report")
    report_json = cli(home, "report", "--json")
    runs = cli(home, "runs")
    assert report.returncode == 0 and report_json.returncode == 0 and runs.returncode == 0
    assert_nothing_leaks(home, as_json, human, report, report_json, runs)
    assert shown in as_json.stdout and shown in report.stdout
    saved = list(home.rglob("run.json")) + list(home.rglob("summary.json"))
    assert saved and all(shown in p.read_text() for p in saved if "l2_redis_url" in p.read_text())


def test_a_config_file_password_never_shows(server, log, tmp_path):
    url, shown = good_urls(server)["query, URL-encoded"]
    config = tmp_path / "tiercli.toml"
    config.write_text(f'tiers = ["l1", "l2"]\n[l2]\nredis_url = "{url}"\n')
    home = tmp_path / "home"
    result = cli(home, "replay", log, "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    assert shown in result.stdout
    assert_nothing_leaks(home, result, cli(home, "report"))


def error_urls(server: EmbeddedRedis) -> dict[str, tuple[str, str]]:
    """URLs that fail, and what the error says."""
    host, dead = f"127.0.0.1:{server.port}", f"127.0.0.1:{free_port()}"
    wrong = quote("Zq7@kX9 PW9-wrong", safe="")
    return {
        "wrong password, userinfo": (f"redis://:{wrong}@{host}/0", "authentication failed"),
        "wrong password, query": (f"redis://{host}/0?password={wrong}", "authentication failed"),
        "wrong password, unix": (f"unix://{server.socket_path}?password={wrong}", "authentication failed"),
        # redis-py sends a lone user name as a user with no password; it is often a password meant
        "password given as the user name": (f"redis://{quote(PASSWORD, safe='')}@{host}/0", "authentication failed"),
        "server down, userinfo": (f"redis://:{PASSWORD}@{dead}/0", "cannot use Redis at"),
        "server down, query": (f"redis://{dead}/0?password={quote(PASSWORD, safe='')}", "cannot use Redis at"),
        "server down, unix": (f"unix://{server.socket_path}.gone?password={quote(PASSWORD, safe='')}",
                              "cannot use Redis at"),
        "no such db": (f"redis://{host}/0?db=99&password={quote(PASSWORD, safe='')}", "no such database"),
        "no such db, userinfo": (f"redis://:{PASSWORD}@{host}/99", "no such database"),
    }


@pytest.mark.parametrize("case", ["wrong password, userinfo", "wrong password, query", "wrong password, unix",
                                  "password given as the user name", "server down, userinfo", "server down, query",
                                  "server down, unix", "no such db", "no such db, userinfo"])
def test_errors_never_show_the_password(server, log, tmp_path, case, no_redis_retry_waits):
    url, says = error_urls(server)[case]
    home = tmp_path / "home"
    result = cli(home, "replay", log, "--tiers", "l1,l2", "--redis-url", url, "--redis-timeout", "1s")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and says in lines[0] and lines[1].startswith("hint: "), result.stderr
    assert_nothing_leaks(home, result)


@pytest.mark.parametrize("url", [
    f"redis://:{PASSWORD.replace(' ', '/')}@127.0.0.1:6379/0",  # a raw '/' cuts the userinfo short
    f"redis://:{PASSWORD.replace(' ', '?')}@127.0.0.1:6379/0",
    f"redis://:{PASSWORD.replace(' ', '#')}@127.0.0.1:6379/0",
    f"unix://:{PASSWORD.replace(' ', '/')}@/tmp/redis.sock",
    f"http://:{PASSWORD}@127.0.0.1:6379/0",
    f"{PASSWORD}@127.0.0.1:6379",
])
def test_urls_redis_py_would_misread_are_refused_without_quoting_them(log, tmp_path, url):
    home = tmp_path / "home"
    flag = cli(home, "replay", log, "--tiers", "l1,l2", "--redis-url", url)
    assert flag.returncode == 2, flag.stderr  # a bad flag value is a usage error
    assert "--redis-url" in flag.stderr
    config = tmp_path / "c.toml"
    config.write_text(f'tiers = ["l1", "l2"]\nl2_redis_url = "{url}"\n')
    in_file = cli(home, "replay", log, "--config", config)
    assert in_file.returncode == 1, in_file.stderr  # a bad config value: a config error naming file and key
    assert in_file.stderr.startswith(f"error: {config}: l2_redis_url: "), in_file.stderr
    assert_nothing_leaks(home, flag, in_file)


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", "redis:/127.0.0.1:6379", "redis://127.0.0.1:6379/zero",
                                 "redis://127.0.0.1:99999/0", "redis://127.0.0.1:6379/0?db=x", "unix://"])
def test_a_bad_redis_url_flag_is_a_usage_error(log, tmp_path, url):
    result = cli(tmp_path / "home", "replay", log, "--tiers", "l1,l2", "--redis-url", url)
    assert result.returncode == 2, result.stderr
    assert "--redis-url" in result.stderr and "Traceback" not in result.stderr


def test_the_scheme_is_not_case_sensitive(redis_server, log, tmp_path):
    url = redis_server.url.replace("redis://", "REDIS://")
    result = cli(tmp_path / "home", "replay", log, "--tiers", "l1,l2", "--redis-url", url, "--no-save")
    assert result.returncode == 0, result.stderr
    assert f"L2 in Redis at redis://127.0.0.1:{redis_server.port}/0" in result.stdout


@pytest.mark.parametrize("field, says", [
    # a misspelt or miscased password field: named, its value masked, what was meant suggested
    (f"pasword={quote(PASSWORD, safe='')}", "unknown field pasword=*** after '?'; did you mean password?"),
    (f"Password={quote(PASSWORD, safe='')}", "unknown field Password=*** after '?'; did you mean password?"),
    # an over-encoded '=': the decoded name holds the secret, so the field is named by its place
    (f"password%3D{quote(PASSWORD, safe='')}=x", "unknown field number 2 (name not shown) after '?'; its name holds "
                                                 "an encoded '=' (%3D): write name=value with a plain '='"),
    ("timeout=3", "unknown field timeout=*** after '?'; did you mean socket_timeout?"),
    ("decode_responses=1", "unknown field decode_responses=*** after '?'"),  # would break reading replies
    ("ssl_keyfile=/k.pem", "unknown field ssl_keyfile=*** after '?'; ssl_keyfile applies to rediss:// URLs"),
    ("password=a&password=b", "the field password is given twice after '?'"),
    ("protocol=7", "invalid value for 'protocol'"),
])
def test_every_unknown_or_bad_query_field_is_a_usage_error_naming_it(log, tmp_path, field, says):
    home = tmp_path / "home"
    url = f"redis://127.0.0.1:6379/0?db=0&{field}"
    result = cli(home, "replay", log, "--tiers", "l1,l2", "--redis-url", url)
    assert result.returncode == 2, result.stderr  # before: exit 1 with redis-py's TypeError, at connect time
    assert "--redis-url" in result.stderr and says in " ".join(result.stderr.split()), result.stderr
    assert_nothing_leaks(home, result)
    assert "une***pected" not in result.stderr and "unexpected keyword" not in result.stderr


def test_a_unix_url_takes_no_tcp_keepalive(log, tmp_path):
    result = cli(tmp_path / "home", "replay", log, "--tiers", "l1,l2", "--redis-url",
                 "unix:///tmp/redis.sock?socket_keepalive=true")
    assert result.returncode == 2 and "unknown field socket_keepalive=***" in result.stderr, result.stderr


def test_values_are_masked_by_the_fields_name_and_the_rest_shown_as_written():
    from tiercli.redis.conn import mask_url

    assert mask_url("rediss://cache:6380/1?client_name=tier&ssl_password=s3cr3t&ssl_keyfile=%2Fk.pem&username=u"
                    "&password=p") == "rediss://cache:6380/1?client_name=tier&ssl_password=***&ssl_keyfile=***&" \
                                      "username=u&password=***"
    assert mask_url("redis://u:p@cache:6379/0?db=0") == "redis://u:***@cache:6379/0?db=0"
    assert mask_url("redis://cache:6379/0?Password=x") == "redis://***"  # refused: nothing of it shown


def test_an_error_holding_a_short_password_is_withheld_not_mangled(server, log, tmp_path, no_redis_retry_waits):
    # a one-letter password appears in most words: cutting it out of the server's reply left
    # "WRONGP***SS inv***lid ..."; the reply is withheld whole instead, and the type named
    url = f"redis://127.0.0.1:{server.port}/0?password=a"
    result = cli(tmp_path / "home", "replay", log, "--tiers", "l1,l2", "--redis-url", url, "--redis-timeout", "1s")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0] == (f"error: cannot use Redis at redis://127.0.0.1:{server.port}/0?password=***: "
                                             f"authentication failed (AuthenticationError)"), result.stderr
