"""parse_mail on real mail collections: CPython's own test mails and the Zammad sample corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.core.mail.parse import MailParseError, parse_mail
from tests.support.corpora import CPYTHON_EMAIL_DATA as _DATA
from tests.support.corpora import CPYTHON_SAMPLES as _SAMPLES

# --- CPython's own test mails ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_every_cpython_test_file_parses_or_raises_mail_parse_error(name: str) -> None:
    try:
        parsed = parse_mail(_SAMPLES[name])
    except MailParseError as error:
        assert str(error).endswith(".")
        return
    assert isinstance(parsed.subject, str)
    assert all(a.size >= 0 for a in parsed.attachments)


def test_pictures_and_a_headerless_text_are_not_mails() -> None:
    assert _DATA is not None, "CPython's test_email data is missing from this interpreter"
    for name in ("python.png", "python.gif", "msg_19.txt"):
        with pytest.raises(MailParseError, match="no mail headers"):
            parse_mail(_SAMPLES[name])


def test_cpython_dingus_fish_lists_its_gif_and_keeps_its_text() -> None:
    assert _DATA is not None, "CPython's test_email data is missing from this interpreter"
    parsed = parse_mail(_SAMPLES["msg_07.txt"])
    assert parsed.subject == "Here is your dingus fish"
    assert [(a.name, a.content_type) for a in parsed.attachments] == [("dingusfish.gif", "image/gif")]
    assert parsed.attachments[0].size > 0
    assert parsed.text and "Hi there" in parsed.text


# --- the Zammad corpus (AGPL test data, read in place, never copied here) ------------------------------


def _zammad_corpus() -> Path | None:
    repo = Path(__file__).resolve().parents[2]
    for candidate in (
        repo.parent / "shared" / "corpora" / "zammad-mail",
        Path("/work/shared/corpora/zammad-mail"),
    ):
        if (candidate / "expected.json").is_file():
            return candidate
    return None


def test_the_zammad_corpus_scores_at_least_104_subjects_and_102_senders() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        import zammad_corpus
    finally:
        sys.path.pop(0)
    corpus = _zammad_corpus()
    assert corpus is not None, "the Zammad sample mail corpus (shared/corpora/zammad-mail beside the repository) was not found"
    (subjects, senders, names), misses = zammad_corpus.score(corpus, zammad_corpus.postroom_fields)
    assert subjects >= 104 and senders >= 102 and names >= 100, misses
