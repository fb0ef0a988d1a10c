"""Readiness of the operator: started, and answered by the API server recently."""

from __future__ import annotations

from siprtmp_operator.web import API_ANSWER_VALID_SECONDS, is_ready


def test_not_ready_before_start_even_if_the_api_answered() -> None:
    assert not is_ready(False, 100.0, 101.0)


def test_not_ready_until_the_api_server_first_answers() -> None:
    assert not is_ready(True, None, 101.0)


def test_ready_while_the_last_answer_is_fresh() -> None:
    assert is_ready(True, 100.0, 100.0 + API_ANSWER_VALID_SECONDS)


def test_not_ready_once_the_api_server_stopped_answering() -> None:
    assert not is_ready(True, 100.0, 100.0 + API_ANSWER_VALID_SECONDS + 0.1)
