"""Bad input to the dataset steps: a one-line error naming the file/row, exit code ≠ 0, and the
output an earlier run wrote is left exactly as it was. Real subprocesses, real files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_script

STEP_01 = "dataset_builder/step_01_process_tweets.py"
STEP_02 = "dataset_builder/step_02_process_financial_phrasebank.py"

PREVIOUS_OUTPUT = "Article,JSON\nkept from an earlier run,{}\n"


def assert_fails_cleanly(script: str, input_path: Path, output: Path, *must_name: str) -> str:
    output.write_text(PREVIOUS_OUTPUT, encoding="utf-8")
    result = run_script(script, "--input", input_path, "--output", output)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in must_name:
        assert name in errors[0], errors[0]
    assert output.read_text(encoding="utf-8") == PREVIOUS_OUTPUT
    assert sorted(p.name for p in output.parent.iterdir() if p.name.startswith(f".{output.name}")) == []
    return errors[0]


TWEETS_HEADER = ("tweet_id,airline_sentiment,airline_sentiment_confidence,negativereason,"
                 "negativereason_confidence,airline,airline_sentiment_gold,name,negativereason_gold,"
                 "retweet_count,text,tweet_coord,tweet_created,tweet_location,user_timezone")


def tweets_file(tmp_path: Path, body: str, header: str = TWEETS_HEADER, encoding: str = "utf-8") -> Path:
    path = tmp_path / "Tweets.csv"
    path.write_bytes(f"{header}\n{body}".encode(encoding))
    return path


GOOD_TWEET = "1,negative,0.8,Late Flight,0.7,Delta,,ann,,0,@Delta late again,,24-02-2015 11.35,,\n"


@pytest.mark.parametrize("case", ["missing file", "missing column", "wrong encoding", "empty file",
                                  "header only", "unknown label", "bad confidence"])
def test_step_01_bad_input(tmp_path, case):
    output = tmp_path / "out" / "tweets.csv"
    output.parent.mkdir()
    if case == "missing file":
        path, names = tmp_path / "nope.csv", ["nope.csv", "not found"]
    elif case == "missing column":
        header = TWEETS_HEADER.replace("airline_sentiment_confidence,", "")
        path, names = tweets_file(tmp_path, GOOD_TWEET.replace("0.8,", "", 1), header), ["airline_sentiment_confidence"]
    elif case == "wrong encoding":
        path = tweets_file(tmp_path, GOOD_TWEET + GOOD_TWEET.replace("late again", "café délai"), encoding="latin-1")
        names = ["Tweets.csv", "line 3", "utf-8"]
    elif case == "empty file":
        path, names = tweets_file(tmp_path, "", header=""), ["Tweets.csv", "empty"]
    elif case == "header only":
        path, names = tweets_file(tmp_path, ""), ["Tweets.csv", "no data rows"]
    elif case == "unknown label":
        path = tweets_file(tmp_path, GOOD_TWEET + GOOD_TWEET.replace("negative", "furious"))
        names = ["Tweets.csv", "line 3", "furious"]
    else:
        path = tweets_file(tmp_path, GOOD_TWEET.replace("0.8", "high"))
        names = ["line 2", "airline_sentiment_confidence", "high"]
    assert_fails_cleanly(STEP_01, path, output, *names)


@pytest.fixture
def phrasebank_copy(repo_root, tmp_path) -> Path:
    """The examples under the dataset's own file names (Sentences_<level>.txt)."""
    folder = tmp_path / "fpb"
    folder.mkdir()
    for sample in (repo_root / "examples" / "financial_phrasebank").glob("finsent_sample_*.txt"):
        shutil.copyfile(sample, folder / sample.name.replace("finsent_sample_", "Sentences_"))
    return folder


def test_step_02_two_files_for_one_level(repo_root, tmp_path):
    folder = tmp_path / "fpb"
    shutil.copytree(repo_root / "examples" / "financial_phrasebank", folder)
    shutil.copyfile(folder / "finsent_sample_66Agree.txt", folder / "copy_66Agree.txt")
    output = tmp_path / "out" / "fpb.csv"
    output.parent.mkdir()
    assert_fails_cleanly(STEP_02, folder, output, "several files for agreement level 66Agree",
                         "copy_66Agree.txt", "finsent_sample_66Agree.txt")


@pytest.mark.parametrize("case", ["missing folder", "missing file", "wrong encoding", "re-saved as utf-8",
                                  "empty file", "unknown label", "no label"])
def test_step_02_bad_input(phrasebank_copy, tmp_path, case):
    output = tmp_path / "out" / "fpb.csv"
    output.parent.mkdir()
    folder = phrasebank_copy
    sixty_six = folder / "Sentences_66Agree.txt"
    if case == "missing folder":
        folder, names = tmp_path / "absent", ["absent", "not found"]
    elif case == "missing file":
        sixty_six.unlink()
        names = ["Sentences_66Agree.txt", "not found"]
    elif case == "wrong encoding":  # saved as UTF-16 by a spreadsheet
        sixty_six.write_bytes(sixty_six.read_text(encoding="iso-8859-1").encode("utf-16"))
        names = ["Sentences_66Agree.txt", "iso-8859-1"]
    elif case == "re-saved as utf-8":  # would decode as mojibake ('Ã¤') without the check
        sixty_six.write_bytes(sixty_six.read_text(encoding="iso-8859-1").encode("utf-8"))
        names = ["Sentences_66Agree.txt", "UTF-8", "phrasebank_encoding"]
    elif case == "empty file":
        sixty_six.write_bytes(b"")
        names = ["Sentences_66Agree.txt", "empty"]
    elif case == "unknown label":
        sixty_six.write_bytes(sixty_six.read_bytes() + b"Profit doubled .@bullish\n")
        names = ["Sentences_66Agree.txt", "line 33", "bullish"]
    else:
        sixty_six.write_bytes(sixty_six.read_bytes() + b"Profit doubled .\n")
        names = ["Sentences_66Agree.txt", "line 33", "sentence@label"]
    assert_fails_cleanly(STEP_02, folder, output, *names)
