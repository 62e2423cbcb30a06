"""Silence matchers as Alertmanager's: equality and regex (whole value), on rule, priority, error_code and labels."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from otel_monitor.monitor.alerting.silences.matchers import Matcher, matches_all, parse_matcher
from tests.support.alerts import make_alert

ALERT = make_alert(labels={"service": "gemini", "env": "prod"})  # rule ProviderInvalidKey, P0, GEMINI_INVALID_API_KEY


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("service=gemini", True),
        ("service=stability", False),
        ("service!=stability", True),
        ("service!=gemini", False),
        ("rule=~Provider.*", True),
        ("rule=~Provider", False),  # a regex matches the whole value
        ("rule!~Gemini.*", True),
        ("priority=P0", True),
        ("priority=~P[12]", False),
        ("error_code=GEMINI_INVALID_API_KEY", True),
        ("env=prod", True),
        ("region=", True),  # a label the alert lacks reads as empty
        ("region!=", False),
        ("region=~.*", True),
        ('service="gemini"', True),  # quoted values as amtool writes them
    ],
)
def test_matcher_on_an_alert(text, matches):
    """Each operator on each kind of field, the regex anchored at both ends."""
    assert matches_all([parse_matcher(text)], ALERT) is matches


def test_every_matcher_must_match():
    """Several matchers: all must match."""
    assert matches_all([parse_matcher("service=gemini"), parse_matcher("priority=P0")], ALERT)
    assert not matches_all([parse_matcher("service=gemini"), parse_matcher("priority=P1")], ALERT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("service=~gem.*", Matcher(name="service", value="gem.*", operator="=~")),
        ("a!=b", Matcher(name="a", value="b", operator="!=")),
        (" rule !~ X ", Matcher(name="rule", value="X", operator="!~")),
        ("a==b", Matcher(name="a", value="=b", operator="=")),
    ],
)
def test_parse_matcher(text, expected):
    """The longest operator wins; spaces around are dropped."""
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("service", "not a matcher"),
        ("1service=x", "not a matcher"),
        ("rule=~(unclosed", "not a regular expression"),
        ("service<>x", "not a matcher"),
    ],
)
def test_bad_matchers_are_refused(text, message):
    """Unparseable text and regexes that do not compile are refused, saying why."""
    with pytest.raises(ValueError, match=message):
        parse_matcher(text)


def test_unknown_operator_is_refused():
    """Only =, !=, =~ and !~."""
    with pytest.raises(ValidationError, match="operator"):
        Matcher.model_validate({"name": "service", "value": "x", "operator": "=="})
