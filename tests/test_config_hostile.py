"""Hostile and careless config files: each gets located errors, never a traceback,
a hang or a crash (`parse_config`, `monitor validate`)."""

from __future__ import annotations

import re
import resource
import sys
import tracemalloc
from pathlib import Path

import pytest

from monitor.checks.http.check import HttpCheckConfig
from monitor.config.loader import load_config, parse_config
from monitor.config.yamlsource import MAX_BYTES
from monitor.core.errors import ConfigError
from tests.proc import run_cli

CHECK = '  - {name: a, kind: http, url: "http://x/"}\n'
BASE = "checks:\n" + CHECK
LOCATED = re.compile(r"^m\.yaml:(\d+):(\d+): ")


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "m.yaml", env or {})
    issues = [str(i) for i in info.value.issues]
    assert issues
    assert all(LOCATED.match(i) for i in issues), issues
    return issues


def billion_laughs(per_level: int = 9, levels: int = 6) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * per_level)}]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * per_level)}]")
    return "\n".join(lines) + "\n" + BASE


def merge_bomb(per_level: int = 9, levels: int = 8) -> str:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3}"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*m{i - 1}"] * per_level)
        lines.append(f"m{i}: &m{i} {{<<: [{refs}], x{i}: [*m{i - 1}, *m{i - 1}, *m{i - 1}]}}")
    return "\n".join(lines) + "\n" + BASE


# (name, document, the one error expected: its line:col and text)
KILLERS = [
    ("int tag", 'x: !!int "abc"\n' + BASE, "1:4: x: 'abc' is not a valid !!int"),
    ("python tag", "x: !!python/name:os.system ''\n" + BASE,
     "1:4: x: tag '!!python/name:os.system' is not allowed here"),
    ("custom tag", "x: !custom foo\n" + BASE, "1:4: x: tag '!custom' is not allowed here"),
    ("set tag", "x: !!set {a: null}\n" + BASE, "1:4: x: tag '!!set' is not allowed here"),
    ("float tag", 'x: !!float "abc"\n' + BASE, "1:4: x: 'abc' is not a valid !!float"),
    ("bool tag", 'x: !!bool "maybe"\n' + BASE, "1:4: x: 'maybe' is not a valid !!bool"),
    ("timestamp tag", 'x: !!timestamp "2020-13-45"\n' + BASE,
     "1:4: x: '2020-13-45' is not a valid !!timestamp"),
    ("merge on a scalar", "x: {<<: 5}\n" + BASE,
     "1:4: x: a merge key (<<) takes a mapping or a list of mappings"),
    ("4,301 digits", "defaults: {retries: " + "9" * 4301 + "}\n" + BASE,
     "1:21: defaults.retries: integer out of range (64 bits at most)"),
    ("2^63", "defaults: {retries: 9223372036854775808}\n" + BASE,
     "1:21: defaults.retries: integer out of range (64 bits at most)"),
    ("infinite float", "x: .inf\n" + BASE, "1:4: x: numbers must be finite"),
    ("weeks overflow", "defaults: {interval: 99999999999999w}\n" + BASE,
     "1:22: defaults.interval: duration '99999999999999w' is too long: at most 3650d"),
    ("400 nines", "defaults: {interval: " + "9" * 400 + "s}\n" + BASE,
     "1:22: defaults.interval: invalid duration '9999"),
    ("huge repetition", "checks:\n  - {name: a, kind: http, url: 'http://x/', "
     "expect: {body_regex: ['a{4294967296}']}}\n",
     "2:66: checks[0].expect.body_regex: repetition {4294967296} in a regular expression"),
    ("nested groups", "checks:\n  - {name: a, kind: http, url: 'http://x/', "
     "expect: {body_regex: ['" + "(" * 400 + "a" + ")" * 400 + "']}}\n",
     "2:66: checks[0].expect.body_regex: regular expression nests groups deeper than 20"),
    ("thousands of groups", "checks:\n  - {name: a, kind: http, url: 'http://x/', "
     "record: {regex: '" + "(" * 5000 + "a" + ")" * 5000 + "'}}\n",
     "2:53: checks[0].record: regular expression of 10,001 characters; at most 1,000"),
    ("bad regex", "checks:\n  - {name: a, kind: http, url: 'http://x/', "
     "expect: {body_regex: ['(']}}\n",
     "2:66: checks[0].expect.body_regex: invalid regular expression '(': missing )"),
    ("a mapping as a name", 'checks: [{name: {a: 1}, kind: http, url: "http://x/"}]\n',
     "1:17: checks[0].name: Input should be a valid string"),
    ("a bare mapping as a name", "checks: [{name: {a: 1}}]\n",
     "1:10: checks[0].kind: missing required key 'kind'"),
    ("a CA bundle that does not load", "checks:\n  - {name: a, kind: http, url: 'https://x/', "
     "tls_ca_file: /nonexistent/ca.pem}\n",
     "2:59: checks[0].tls_ca_file: cannot load the CA bundle: No such file or directory"),
    ("a list as a person", 'oncall: {people: [{name: []}]}\n'
     'escalation: {policies: {p: {steps: [{page: [x]}]}}}\n' + BASE,
     "1:26: oncall.people[0].name: Input should be a valid string"),
    ("billion laughs", billion_laughs(),
     "aliases and merge keys expand to more than 100,000 values"),
    ("merge bomb", merge_bomb(), "aliases and merge keys expand to more than 100,000 values"),
    ("NUL on line 2", BASE + "x: a\x00b\n",
     "3:5: YAML syntax: character U+0000 is not allowed in YAML"),
    ("unknown notifier type", "notifiers: {n: {type: nosuch}}\n" + BASE,
     "1:23: notifiers.n.type: unknown type 'nosuch' (known notifier types: console, discord,"),
    ("notifier name with a line break", 'notifiers: {"a\\nb": {type: console}}\n' + BASE,
     "1:13: notifiers['a\\nb']: a notifier name is letters, digits and _.:-"),
    ("header value with a line break",
     'notifiers: {w: {type: webhook, url: "https://h/x", headers: {X-A: "1\\r\\nX-B: 2"}}}\n'
     + BASE, "1:61: notifiers.w.headers: the value of header X-A must be one line"),
    ("empty file", "", "1:1: no checks defined"),
    ("no checks", "defaults: {interval: 1m}\n", "1:1: no checks defined"),
    ("deep flow nesting", "x: " + "[" * 200_000 + "]" * 200_000 + "\n" + BASE,
     "1:67: nested deeper than 64 levels"),
    ("deep block nesting", "x:\n" + "".join("  " * i + "- \n" for i in range(100)) + BASE,
     "nested deeper than 64 levels"),
    ("recursive alias", "x: &x [*x]\n" + BASE, "1:4: x[0]: recursive YAML alias"),
    ("recursive merge", "x: &x {<<: *x}\n" + BASE, "1:4: x: recursive YAML alias"),
    ("unknown alias", "x: *nope\n" + BASE, "1:4: YAML syntax: unknown alias *nope"),
    ("two documents", BASE + "---\nchecks: []\n", "3:1: YAML syntax: expected one document"),
    ("key that is a list", "? [a]\n: 1\n" + BASE, "1:1: mapping keys must be plain scalars"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "expected"), [k[1:] for k in KILLERS], ids=[k[0] for k in KILLERS]
)
def test_every_killer_input_is_one_located_error(document: str, expected: str) -> None:
    issues = issues_of(document)
    assert any(expected in i for i in issues), issues


def test_every_yaml_and_value_error_is_reported_together() -> None:
    issues = issues_of(
        'a: !!int "x"\nb: !!bool "maybe"\n'
        "defaults: {interval: 99999999999999w}\n"
        + "checks:\n  - {name: a, kind: http, url: 'http://x/', expect: {body_regex: ['(']}}\n"
    )
    assert [i.split(": ")[0] for i in issues] == [
        "m.yaml:1:4",
        "m.yaml:2:4",
        "m.yaml:3:22",
        "m.yaml:5:66",
    ]


def test_merge_keys_keep_their_meaning() -> None:
    config = parse_config(
        "checks:\n"
        "  - &b {name: base, kind: http, url: 'http://x/', timeout: 3s, enabled: false}\n"
        "  - &m {name: more, kind: http, url: 'http://y/', timeout: 9s, retries: 2}\n"
        "  - {<<: [*b, *m], name: a}\n"  # the first merged mapping wins
        "  - {<<: *b, name: b, timeout: 4s}\n",  # keys written in the mapping win
        "m.yaml",
        {},
    )
    _, _, a, b = config.checks
    assert isinstance(a, HttpCheckConfig)
    assert isinstance(b, HttpCheckConfig)
    assert (a.url, a.timeout_s, a.retries, a.enabled) == ("http://x/", 3, 2, False)
    assert (b.url, b.timeout_s) == ("http://x/", 4)


def test_duplicate_key_next_to_a_merge_is_still_a_duplicate() -> None:
    issues = issues_of(
        "checks:\n  - &b {name: a, kind: http, url: 'http://x/'}\n  - {<<: *b, name: b, name: c}\n"
    )
    assert issues == ["m.yaml:3:23: checks[1].name: duplicate key 'name'"]


def test_largest_file_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    # Real checks up to the limit: accepted, within the size and value bounds.
    item = '  - {name: c%06d, kind: http, url: "http://x/%06d"}\n'
    count = (MAX_BYTES - len("checks:\n")) // len(item % (0, 0))
    text = "checks:\n" + "".join(item % (i, i) for i in range(count))
    text += "#" * (MAX_BYTES - len(text) - 1) + "\n"
    path = tmp_path / "m.yaml"
    path.write_text(text)
    assert len(load_config(path, {}).checks) == count
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=r"larger than 1,048,576 bytes"):
        load_config(path, {})


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(BASE.encode() + b"x: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}:3:7: cannot read config: not UTF-8 (byte 0xe9)"


def test_validator_faults_are_still_a_located_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.config.loader

    def broken(*_args: object) -> list[object]:
        raise RuntimeError("bug")

    monkeypatch.setattr(monitor.config.loader, "_cross_checks", broken)
    assert issues_of(BASE) == [
        "m.yaml:1:1: the config could not be validated (RuntimeError); please report this"
    ]


class TestSecretsStayOut:
    """Errors never repeat a value that came from `${VAR}`, nor one under a key that
    sounds secret."""

    SECRET = "s3cr3t-Planted-Value"

    @pytest.mark.parametrize(
        "document",
        [
            "defaults: {interval: '${NPM_TOKEN}'}\n" + BASE,
            "checks:\n  - {name: a, kind: npm, package: x, registry: '${NPM_TOKEN}'}\n",
            "checks:\n  - {name: a, kind: github_actions, repo: o/r, workflow: ci.yml, "
            "api_url: 'ftp://${GITHUB_TOKEN}@h'}\n",
            "daemon: {listen: 'x${NPM_TOKEN}'}\n" + BASE,
            "checks:\n  - {name: a, kind: http, url: 'http://x/', "
            "expect: {body_regex: ['(${NPM_TOKEN}']}}\n",
            "checks:\n  - {name: a, kind: http, url: 'http://x/', headers: {X-Api-Key: 5}}\n",
        ],
    )
    def test_values_from_the_environment_are_never_echoed(self, document: str) -> None:
        env = {"NPM_TOKEN": self.SECRET, "GITHUB_TOKEN": self.SECRET}
        issues = issues_of(document, env)
        assert not [i for i in issues if self.SECRET in i or "s3cr3t" in i], issues

    def test_secret_looking_keys_are_never_echoed(self) -> None:
        issues = issues_of(
            f"api: {{token: [{self.SECRET}]}}\n"
            f"notifiers: {{s: {{type: slack, webhook_url: '{self.SECRET}'}}}}\n" + BASE
        )
        assert len(issues) == 3
        assert not [i for i in issues if "s3cr3t" in i], issues


async def test_validate_answers_every_killer_input_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    chosen = {"int tag", "python tag", "weeks overflow", "merge bomb", "NUL on line 2",
              "unknown notifier type", "notifier name with a line break"}  # fmt: skip
    for name, document, expected in [k for k in KILLERS if k[0] in chosen]:
        path.write_text(document)
        code, out, err = await run_cli("validate", "-c", str(path))
        assert code == 1, name
        assert "Traceback" not in err + out, name
        assert f"{path}:" in err, (name, err)
        assert expected.split(": ")[-1][:20] in err, (name, err)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
async def test_billion_laughs_is_refused_within_time_and_memory(tmp_path: Path) -> None:
    """`validate` of the alias bomb ends at once, in a fraction of its former 1.2 GB."""
    path = tmp_path / "m.yaml"
    path.write_text(billion_laughs())
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code, _, err = await run_cli("validate", "-c", str(path))
    assert code == 1
    assert "aliases and merge keys expand to more than 100,000 values" in err
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mb < 200 or before / 1024 >= 200, peak_mb


def test_a_url_with_a_password_is_never_echoed() -> None:
    issues = issues_of(
        "checks:\n  - {name: a, kind: http, url: 'http://x/', runbook: 'ftp://u:s3cr3t@h/'}\n"
    )
    assert issues == [
        "m.yaml:2:54: checks[0].runbook: String should match pattern '^https?://\\S+$'"
    ]


def test_a_huge_key_is_cut_in_the_message() -> None:
    (issue,) = issues_of(BASE + "? " + "x" * 100_000 + "\n: 1\n")
    assert len(issue) < 200
    assert issue.endswith("unknown key 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…")


def test_the_largest_valid_file_is_parsed_within_100_mb() -> None:
    """At the 1 MiB limit the costly files are the valid ones: 18,724 checks. The raw tree
    and its positions are dropped after validation and each check is replaced by its
    resolved copy, so the peak is about one set of models (tracemalloc: 72 MB; 103 MB when
    the originals were kept to the end)."""
    item = '  - {name: c%06d, kind: http, url: "http://x/%06d"}\n'
    count = (MAX_BYTES - 8) // len(item % (0, 0))
    text = "checks:\n" + "".join(item % (i, i) for i in range(count))
    assert len(text) <= MAX_BYTES
    parse_config("checks: []\n", "m.yaml", {})  # validators built outside the measure
    tracemalloc.start()
    try:
        config = parse_config(text, "m.yaml", {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(config.checks) == count
    assert config.checks[0].name == "c000000"
    assert config.checks[-1].name == f"c{count - 1:06d}"  # file order kept
    assert peak < 100_000_000, peak / 1e6  # MB
