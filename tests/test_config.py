from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.checks import CHECKS
from monitor.config.loader import config_json_schema, load_config, parse_config
from monitor.config.yamlsource import expand_env
from monitor.core.configtypes import format_duration, parse_byte_size, parse_duration
from monitor.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
KINDS = ", ".join(sorted(CHECKS))


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "m.yaml", env or {})
    return [str(i) for i in info.value.issues]


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25),
         ("1w", 604800), ("1.5s", 1.5), ("1h0m5s", 3605)],
    )  # fmt: skip
    def test_parses(self, text: str, seconds: float) -> None:
        assert parse_duration(text).total_seconds() == seconds

    @pytest.mark.parametrize("bad", ["30", "5 minutes", "m5", "", "-5s", "1h 30m", "5sec"])
    def test_rejects_with_hint(self, bad: str) -> None:
        with pytest.raises(ValueError, match="30s"):
            parse_duration(bad)

    @pytest.mark.parametrize("bad", [30, 1.5, True, None])
    def test_bare_numbers_need_a_unit(self, bad: object) -> None:
        with pytest.raises(ValueError, match="with a unit"):
            parse_duration(bad)

    @given(st.integers(min_value=0, max_value=10**9))
    def test_format_round_trips(self, ms: int) -> None:
        delta = timedelta(milliseconds=ms)
        assert parse_duration(format_duration(delta)) == delta

    @pytest.mark.parametrize(
        ("text", "size"), [(4096, 4096), ("512KiB", 524288), ("1MiB", 1048576), ("10MB", 10**7)]
    )
    def test_sizes(self, text: object, size: int) -> None:
        assert parse_byte_size(text) == size


class TestEnv:
    @pytest.mark.parametrize(
        ("text", "env", "out", "missing"),
        [
            ("${A}", {"A": "x"}, "x", []),
            ("a-${A}-b", {"A": "x"}, "a-x-b", []),
            ("${A:-dflt}", {}, "dflt", []),
            ("${A:-}", {}, "", []),
            ("${A:-dflt}", {"A": ""}, "", []),
            ("$$", {}, "$", []),
            ("$${A}", {"A": "x"}, "${A}", []),
            ("cost: $5", {}, "cost: $5", []),
            ("${NOPE}", {}, "", ["NOPE"]),
        ],
    )
    def test_expand(self, text: str, env: dict[str, str], out: str, missing: list[str]) -> None:
        assert expand_env(text, env) == (out, missing)

    def test_values_expand_and_coerce(self) -> None:
        config = parse_config(
            "daemon: {listen: '${HOST}:${PORT:-9999}'}\n"
            "checks:\n"
            "  - {name: a, kind: http, url: '${BASE}/x', headers: {Authorization: 'Bearer ${TOKEN}'}}\n",
            "m.yaml",
            {"HOST": "0.0.0.0", "BASE": "http://h", "TOKEN": "s3cr$t"},
        )
        assert config.daemon.listen == "0.0.0.0:9999"
        check = config.checks[0]
        assert check.url == "http://h/x"  # type: ignore[attr-defined]
        assert check.headers == {"Authorization": "Bearer s3cr$t"}  # type: ignore[attr-defined]

    def test_comments_are_not_expanded(self) -> None:
        config = parse_config("# uses ${UNSET}\nchecks: []\n", "m.yaml", {})
        assert config.checks == ()

    def test_missing_variable_is_located(self) -> None:
        errors = issues_of("checks:\n  - name: a\n    kind: http\n    url: ${URL}\n")
        assert errors == [
            "m.yaml:4:10: checks[0].url: environment variable URL is not set "
            "(set it, or give a default: ${URL:-value})"
        ]


class TestErrors:
    def test_every_error_at_once_with_line_column_and_path(self) -> None:
        text = (
            "defaults:\n"
            "  interval: 30\n"  # 2
            "checks:\n"
            "  - name: home\n"  # 4
            "    kind: http\n"
            "    url: https://example.org\n"
            "    intervall: 5s\n"  # 7
            "    expect:\n"
            "      status: [200, 2xx, 700]\n"  # 9
            "  - name: home\n"  # 10
            "    kind: ftp\n"  # 11
            "  - name: c\n"
            "    kind: http\n"  # 13: url missing
        )
        errors = issues_of(text)
        assert errors == [
            "m.yaml:2:13: defaults.interval: expected a duration with a unit such as 30s, 5m, "
            "1h30m or 2d, got 30",
            "m.yaml:7:5: checks[0].intervall: unknown key 'intervall'; did you mean 'interval'?",
            "m.yaml:9:26: checks[0].expect.status[2]: expected a status code (100-599) or a "
            "class such as 2xx, got 700",
            "m.yaml:10:11: checks[1].name: duplicate check name 'home' (first used by checks[0])",
            f"m.yaml:11:11: checks[1].kind: unknown kind 'ftp' (known kinds: {KINDS})",
            "m.yaml:12:5: checks[2].url: missing required key 'url'",
        ]

    def test_wrong_types(self) -> None:
        errors = issues_of(
            "limits: {max_concurrency: many}\n"
            "checks: [{name: a, kind: http, url: 'http://x', tags: web, enabled: maybe}]\n"
        )
        assert any(e.startswith("m.yaml:1:27: limits.max_concurrency: ") for e in errors)
        assert any("checks[0].tags: Input should be a valid list" in e for e in errors)
        assert any("checks[0].enabled: Input should be a valid boolean" in e for e in errors)

    def test_yaml_syntax_error_is_located(self) -> None:
        errors = issues_of("checks:\n  - name: a\n   kind: http\n")
        assert len(errors) == 1
        assert errors[0].startswith("m.yaml:3:")
        assert "YAML syntax" in errors[0]

    def test_duplicate_yaml_keys(self) -> None:
        errors = issues_of("checks: []\ndaemon: {}\nchecks: []\n")
        assert errors == ["m.yaml:3:1: checks: duplicate key 'checks'"]

    def test_missing_kind(self) -> None:
        errors = issues_of("checks: [{name: a, url: 'http://x'}]\n")
        assert errors == [
            f"m.yaml:1:10: checks[0].kind: missing required key 'kind' (one of: {KINDS})"
        ]

    @pytest.mark.parametrize(
        ("snippet", "expected"),
        [
            ("body_regex: ['(']", "invalid regular expression '('"),
            ("json: [{path: 'a..b', equals: 1}]", "invalid JSON path 'a..b'"),
            ("json: [{path: a}]", "give a test"),
        ],
    )
    def test_assertions_validated_at_load(self, snippet: str, expected: str) -> None:
        text = (
            f"checks:\n  - name: a\n    kind: http\n    url: http://x\n    expect: {{{snippet}}}\n"
        )
        errors = issues_of(text)
        assert len(errors) == 1
        assert errors[0].startswith("m.yaml:5:")
        assert expected in errors[0]

    def test_bounds_read_as_durations(self) -> None:
        errors = issues_of("defaults: {timeout: 0s}\nchecks: []\n")
        assert errors == [
            "m.yaml:1:21: defaults.timeout: Input should be greater than 0s (got '0s')"
        ]

    def test_not_a_mapping(self) -> None:
        assert issues_of("- a\n- b\n")[0].endswith(
            "the config must be a mapping (defaults:, checks:, …)"
        )

    def test_unreadable_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read config"):
            load_config(tmp_path / "absent.yaml")


class TestDefaults:
    def test_checks_inherit_defaults_and_override(self) -> None:
        config = parse_config(
            "defaults: {interval: 30s, timeout: 5s, retries: 2}\n"
            "checks:\n"
            "  - {name: a, kind: http, url: 'http://x'}\n"
            "  - {name: b, kind: http, url: 'http://x', interval: 5m, retries: 0, enabled: false}\n",
            "m.yaml",
            {},
        )
        a, b = config.checks
        assert (a.interval_s, a.timeout_s, a.retries) == (30, 5, 2)
        assert (b.interval_s, b.timeout_s, b.retries) == (300, 5, 0)
        assert [c.name for c in config.enabled_checks] == ["a"]

    def test_empty_file_is_refused_an_empty_list_runs_nothing(self) -> None:
        for text in ("", "# nothing yet\n", "defaults: {interval: 1m}\n"):
            with pytest.raises(ConfigError, match=r"m\.yaml:1:1: no checks defined"):
                parse_config(text, "m.yaml", {})
        assert parse_config("checks: []\n", "m.yaml", {}).checks == ()

    def test_merge_keys_and_anchors(self) -> None:
        config = parse_config(
            "checks:\n"
            "  - &base {name: a, kind: http, url: 'http://x', timeout: 3s}\n"
            "  - {<<: *base, name: b}\n",
            "m.yaml",
            {},
        )
        assert [(c.name, c.timeout_s) for c in config.checks] == [("a", 3), ("b", 3)]


class TestReferenceConfig:
    def test_bundled_monitors_yaml_is_valid(self) -> None:
        config = load_config(ROOT / "monitors.yaml", env={})
        by_name = {c.name: c for c in config.checks}
        kinds = {name: c.kind for name, c in by_name.items()}
        assert {kinds[n] for n in ("homepage", "docs", "playground")} == {"http"}
        assert kinds["npm-winglang"] == kinds["npm-winglang-sdk"] == "npm"
        assert kinds["npm-versions-in-sync"] == "version_sync"
        assert kinds["vscode-extension"] == "vscode_marketplace"
        assert kinds["main-build"] == kinds["pr-builds"] == kinds["canary"] == "github_actions"
        assert all(c.runbook for c in config.checks)
        # The project is dormant: nothing may go stale forever by default, except the
        # hourly canary, whose staleness is only informational (degraded).
        stale_capable = {n for n, c in by_name.items() if getattr(c, "max_age", None) is not None}
        assert stale_capable == {"canary"}

    def test_schema_describes_the_kinds(self) -> None:
        schema = config_json_schema()
        assert schema["additionalProperties"] is False
        text = json.dumps(schema)
        assert '"http"' in text
        assert "HttpCheckConfig" in schema["$defs"]

    def test_bundled_schema_file_is_current(self) -> None:
        # monitors.yaml points editors at monitors.schema.json; it must match the code.
        on_disk = json.loads((ROOT / "monitors.schema.json").read_text())
        assert on_disk == config_json_schema(), "run: monitor schema > monitors.schema.json"


class TestValidateCommand:
    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60
        )

    def test_valid(self) -> None:
        done = self.run("validate", "-c", str(ROOT / "monitors.yaml"))
        assert done.returncode == 0, done.stderr
        enabled = len(load_config(ROOT / "monitors.yaml", env={}).enabled_checks)
        assert f"ok ({enabled} checks enabled" in done.stdout

    def test_invalid_lists_every_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("defaults: {interval: 5}\nchecks: [{name: a, kind: http}]\n")
        done = self.run("validate", "-c", str(bad))
        assert done.returncode == 1
        assert f"{bad}:1:22: defaults.interval:" in done.stderr
        assert f"{bad}:2:10: checks[0].url: missing required key 'url'" in done.stderr
        assert "2 error(s)" in done.stderr

    def test_config_from_environment(self, tmp_path: Path) -> None:
        path = tmp_path / "env.yaml"
        path.write_text("checks: []\n")
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "validate"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={"MONITOR_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert str(path) in done.stdout

    def test_schema_command_prints_json_schema(self) -> None:
        done = self.run("schema")
        assert done.returncode == 0
        assert json.loads(done.stdout)["title"] == "monitors.yaml"


def test_errors_never_repeat_a_notifier_value_that_may_be_a_secret() -> None:
    secret = "https-hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
    issues = issues_of(
        "checks: []\n"
        "notifiers:\n"
        f"  s: {{type: slack, url: {secret}}}\n"
        "  p: {type: pagerduty, routing_key: 12345, url: not-a-url-token-abc}\n"
    )
    text = "\n".join(issues)
    assert "notifiers.s.url" in text
    assert "notifiers.p.url" in text
    assert secret not in text
    assert "not-a-url-token-abc" not in text


def test_errors_still_repeat_plain_values() -> None:
    issues = issues_of(
        "checks:\n  - {name: a, kind: http, url: 'https://x.test/', retries: many}\n"
    )
    assert any("(got 'many')" in i for i in issues), issues


def test_runbook_of_an_incident_is_its_checks_else_its_rules() -> None:
    cfg = parse_config(
        "checks:\n"
        "  - {name: docs, kind: http, url: 'https://d.test/', runbook: 'https://r.test/docs'}\n"
        "  - {name: site, kind: http, url: 'https://s.test/'}\n"
        "severity:\n"
        "  - {name: web, match: {kinds: [http]}, severity: P1, runbook: 'https://r.test/web'}\n"
        "  - {match: {checks: [x]}, severity: P2, runbook: 'https://r.test/x'}\n",
        "m.yaml",
        {},
    )
    assert cfg.runbook_for("docs", "web") == "https://r.test/docs"
    assert cfg.runbook_for("site", "web") == "https://r.test/web"
    assert cfg.runbook_for(None, "severity[1]") == "https://r.test/x"
    assert cfg.runbook_for("site", "default") is None
    assert cfg.runbook_for("gone", None) is None


class TestGroups:
    TEXT = """
checks:
  - {name: site, kind: http, url: "http://127.0.0.1:1/", tags: [website, user-facing]}
  - {name: api-docs, kind: http, url: "http://127.0.0.1:1/", tags: [website], group: docs}
  - {name: bare, kind: http, url: "http://127.0.0.1:1/"}
"""

    def test_a_check_is_in_its_group_else_its_first_tag_else_other(self) -> None:
        from monitor.core.configtypes import group_of

        config = parse_config(self.TEXT, "m.yaml", {})
        assert [group_of(c) for c in config.checks] == ["website", "docs", "other"]

    def test_a_groups_entry_is_kept(self) -> None:
        config = parse_config(
            self.TEXT + "groups:\n  docs: {description: The docs}\n", "m.yaml", {}
        )
        assert config.groups["docs"].description == "The docs"

    def test_a_group_without_checks_and_a_bad_group_name_are_located(self) -> None:
        text = self.TEXT + "groups:\n  docs: {}\n  typo: {}\n  'a b': {}\n"
        with pytest.raises(ConfigError) as err:
            parse_config(text, "m.yaml", {})
        found = [(i.line, i.path) for i in err.value.issues]
        assert found == [(8, "groups.typo"), (9, "groups['a b']")]
        assert "has no checks" in str(err.value)

    def test_a_group_name_follows_the_check_name_pattern(self) -> None:
        with pytest.raises(ConfigError) as err:
            parse_config(self.TEXT.replace("group: docs", "group: 'a b'"), "m.yaml", {})
        assert "checks[1].group" in str(err.value)


def test_a_group_from_a_tag_that_is_not_a_string_is_the_schema_s_error() -> None:
    text = (
        "checks:\n  - {name: a, kind: http, url: 'http://127.0.0.1:1/', tags: [[[[]]]]}\n"
        "groups:\n  web: {}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "m.yaml", {})
    message = str(err.value)
    assert "checks[0].tags" in message
    assert "could not be validated" not in message
