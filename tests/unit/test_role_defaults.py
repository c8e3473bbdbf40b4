"""Each role's defaults/main.yml and meta/argument_specs.yml say the same thing: every default is a documented
option, a default the spec states is the defaults file's value, an optional option the spec gives no default has
one in the defaults file, and a templated default the spec cannot state is described in the spec. A user reads
the spec (ansible-doc, docs/roles.md); the role runs with the defaults file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in REPO.glob("roles/*/meta/argument_specs.yml"))

# Options the spec leaves without a default that the defaults file need not hold either, with the reason.
# (None today; an entry is "ROLE.OPTION": "why".)
ALLOWED_WITHOUT_DEFAULT: dict[str, str] = {}


def _description(option: dict) -> str:
    text = option.get("description", "")
    return " ".join(text) if isinstance(text, list) else str(text)


def disagreements(role: Path) -> list[str]:
    """What the role's defaults file and its argument specs disagree on, one line each (no values of secrets:
    the defaults files hold none, and only option names are reported for them)."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    entry_points = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    main = entry_points["main"].get("options", {})
    documented = {name for entry in entry_points.values() for name in entry.get("options", {})}
    found = []
    for name in defaults:
        if name.startswith(f"{role.name}__"):
            continue  # internal (double underscore), not an option
        if name not in main and name not in documented:
            found.append(f"{name}: in defaults/main.yml but an option of no entry point of the spec")
    for entry_name, entry in entry_points.items():
        for name, option in entry.get("options", {}).items():
            where = f"{entry_name}.{name}"
            if "default" in option:
                if name not in defaults:
                    found.append(f"{where}: the spec gives a default, defaults/main.yml has none")
                elif option["default"] != defaults[name]:
                    # YAML values compared as values; a Jinja string is compared as its text.
                    found.append(f"{where}: the spec's default {option['default']!r} is not defaults/main.yml's "
                                 f"{defaults[name]!r}")
            elif name in defaults:
                value = defaults[name]
                if option.get("required"):
                    continue  # required: the defaults file's value (an empty placeholder) is never used
                if not (isinstance(value, str) and "{{" in value):
                    found.append(f"{where}: defaults/main.yml has {value!r}, which the spec could state as default")
                elif not re.search(r"default", _description(option), re.IGNORECASE):
                    found.append(f"{where}: the templated default of defaults/main.yml is not described in the spec")
            elif not option.get("required") and f"{role.name}.{name}" not in ALLOWED_WITHOUT_DEFAULT:
                found.append(f"{where}: optional, without a default in the spec or in defaults/main.yml")
    return found


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_the_defaults_file_and_the_spec_agree(role):
    assert disagreements(role) == []


def test_the_allowlist_names_options_that_exist_and_says_why():
    for key, reason in ALLOWED_WITHOUT_DEFAULT.items():
        role, name = key.split(".", 1)
        spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
        assert any(name in e.get("options", {}) for e in spec["argument_specs"].values()), key
        assert reason.strip(), key


def _role(tmp_path: Path, defaults: str, spec: str) -> Path:
    role = tmp_path / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(defaults)
    (role / "meta" / "argument_specs.yml").write_text(spec)
    return role


SPEC = """
argument_specs:
  main:
    options:
      demo_port: {description: Port., type: int, default: 51820}
      demo_impl: {description: "Implementation; by default the other role's fact.", type: str}
      demo_name: {description: Name., type: str, required: true}
"""


def test_a_role_whose_files_agree_passes(tmp_path):
    role = _role(tmp_path, "demo_port: 51820\ndemo_impl: \"{{ x | default('auto') }}\"\ndemo__internal: 1\n", SPEC)
    assert disagreements(role) == []


@pytest.mark.parametrize(("defaults", "spec", "named"), [
    ("demo_port: 51821\ndemo_impl: '{{ x }}'\n", SPEC, "main.demo_port"),             # defaults differ
    ("demo_port: '51820'\ndemo_impl: '{{ x }}'\n", SPEC, "main.demo_port"),           # same text, not same value
    ("demo_port: 51820\ndemo_impl: '{{ x }}'\ndemo_extra: 1\n", SPEC, "demo_extra"),  # undocumented default
    ("demo_port: 51820\n", SPEC, "main.demo_impl"),                                   # optional, no default at all
    ("demo_impl: '{{ x }}'\n", SPEC, "main.demo_port"),                               # spec default, file has none
    ("demo_port: 51820\ndemo_impl: '{{ x }}'\n", SPEC.replace("; by default the other role's fact", ""),
     "main.demo_impl"),                                                               # template not described
    ("demo_port: 51820\ndemo_impl: auto\n", SPEC, "main.demo_impl"),                  # a plain value left unstated
])
def test_a_disagreement_is_found_naming_the_option(tmp_path, defaults, spec, named):
    found = disagreements(_role(tmp_path, defaults, spec))
    assert len(found) == 1 and found[0].startswith(named), found


def test_the_roles_readme_lists_every_role():
    readme = (REPO / "roles" / "README.md").read_text()
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", readme, re.MULTILINE))
    assert listed == {r.name for r in ROLES}
