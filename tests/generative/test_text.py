"""TextStream: deltas add up to the output, stop strings cut it and never leak partly."""

from __future__ import annotations

from collections.abc import Sequence

from inferd.generative.text import TextStream

PIECES = ["Hel", "lo", " wo", "rld", "!", " bye"]


def _decode(ids: Sequence[int]) -> str:
    return "".join(PIECES[i] for i in ids)


def test_deltas_add_up_to_the_text() -> None:
    stream = TextStream(_decode)
    shown = "".join(stream.push(i) for i in range(len(PIECES))) + stream.flush()
    assert shown == "Hello world! bye"


def test_stop_string_cuts_the_output_and_is_not_shown() -> None:
    stream = TextStream(_decode, stop=["world"])
    deltas = [stream.push(i) for i in range(4)]
    assert stream.stopped
    assert "".join(deltas) == "Hello "
    assert stream.flush() == ""


def test_a_possible_stop_is_held_back_then_released() -> None:
    stream = TextStream(_decode, stop=["rld?"])
    assert "".join(stream.push(i) for i in range(3)) == "Hello wo"
    assert stream.push(3) == ""  # "rld" may become "rld?"
    assert stream.push(4) == "rld!"
    assert not stream.stopped


def test_incomplete_character_waits() -> None:
    pieces = ["a", "", "é"]

    def decode(ids: Sequence[int]) -> str:  # token 1 is the first byte of "é"
        return "".join(pieces[i] for i in ids if i != 1) + ("\ufffd" if ids[-1] == 1 else "")

    stream = TextStream(decode)
    assert stream.push(0) == "a"
    assert stream.push(1) == ""
    assert stream.push(2) == "é"
