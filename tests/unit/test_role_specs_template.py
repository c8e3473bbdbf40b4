"""Every string of the roles' argument specs parses as a Jinja template: validate_argument_spec templates them
(descriptions included) before a role's first task, so a syntax error there stops the role on every host."""
from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted(REPO.glob("roles/*/meta/argument_specs.yml"))


def _strings(node, where):
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{where}[{i}]")


@pytest.mark.parametrize("spec", SPECS, ids=[p.parts[-3] for p in SPECS])
def test_every_string_of_the_spec_is_a_valid_template(spec):
    env = jinja2.Environment()
    bad = []
    for where, text in _strings(yaml.safe_load(spec.read_text()), spec.parts[-3]):
        try:
            env.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            bad.append(f"{where}: {exc}")
    assert not bad, bad


def test_the_check_finds_a_broken_template():
    with pytest.raises(jinja2.TemplateSyntaxError):
        jinja2.Environment().parse("Default: V({{ lookup('env', 'HOME'\\) }})")
