import pytest

from utils.schema import ResponseParseError, SentimentResponse, parse_sentiment_response

GOOD = '{"reasoning": "Profit rose.", "sentiment": 0.7, "confidence": 0.9}'


def test_bare_object_parses():
    answer = parse_sentiment_response(GOOD)
    assert answer == SentimentResponse(reasoning="Profit rose.", sentiment=0.7, confidence=0.9)


def test_json_fence_and_prose_around_it():
    text = f"Sure! Here is my analysis:\n```json\n{GOOD}\n```\nHope this helps."
    assert parse_sentiment_response(text).sentiment == 0.7
    assert parse_sentiment_response(f"My answer is {GOOD} -- done").confidence == 0.9


def test_first_valid_object_wins_over_an_invalid_one():
    text = '{"note": "draft"} then ' + GOOD
    assert parse_sentiment_response(text).reasoning == "Profit rose."


@pytest.mark.parametrize("text, reason", [
    ("", "empty answer"),
    ("   ", "empty answer"),
    ("The news is positive.", "no JSON object"),
    ('{"reasoning": "Profit rose.", "sentiment": 0.7, "conf', "truncated"),
    ('{"reasoning": "x", "sentiment": 3.0, "confidence": 0.5}', "sentiment: Input should be less than or equal to 1"),
    ('{"reasoning": "x", "sentiment": 0.1}', "confidence: Field required"),
    ('{"reasoning": "x", "sentiment": 0.1, "confidence": 0.5, "ticker": "MSFT"}', "ticker: Extra inputs"),
    ('{"reasoning": "  ", "sentiment": 0.1, "confidence": 0.5}', "reasoning"),
    ('{"reasoning": "x", "sentiment": true, "confidence": 0.5}', "boolean"),
    ('{"reasoning": "x", "sentiment": "high", "confidence": 0.5}', "sentiment"),
])
def test_says_precisely_why_not(text, reason):
    with pytest.raises(ResponseParseError, match=reason):
        parse_sentiment_response(text)


def test_numeric_strings_are_accepted_as_numbers():
    answer = parse_sentiment_response('{"reasoning": "x", "sentiment": "-0.5", "confidence": "1"}')
    assert (answer.sentiment, answer.confidence) == (-0.5, 1.0)
